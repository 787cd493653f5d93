#!/bin/bash
# Guest side of scripts/vm: runs as root inside the virtme-ng VM (PID 1's
# child, host root file system shared read-only over 9p). Invoked as
#
#     bash SHARE/guest.sh SHARE
#
# where SHARE is the per-run host folder that virtme-ng mounts read-write at
# the same path. Everything this script hands back to the host goes through
# files in SHARE, because neither vng's exit status nor its stdout can be
# trusted:
#
#   booted        written first thing: the kernel came up and ran us
#   dmesg         the guest's kernel log, followed live (dmesg --follow)
#   setup.log     output of modprobe & co. (shown by the host on failure)
#   infra-error   one-line reason why CMD was not run (device check, cwd, ...)
#   stdout        CMD's standard output  (streamed by the host while we run)
#   stderr        CMD's standard error   (streamed by the host while we run)
#   timed-out     CMD was killed by the --timeout watchdog
#   rc            CMD's exit status; written last, atomically
#
# SHARE/config.sh (written by the host) sets the variables used below;
# SHARE/env.sh exports the environment selected for CMD.

set -u
share=$1
cd / || exit 125
# Our own tools come from the guest's usual places, whatever CMD's PATH is.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

: >"$share/booted"

# Keep the kernel log from the very start, even if CMD hangs or the kernel
# dies later: dmesg --follow prints the existing ring buffer first.
dmesg --follow >"$share/dmesg" 2>&1 &
dmesg_pid=$!

infra_error() {
    printf '%s\n' "$*" >"$share/infra-error"
    stop_dmesg
    exit 125
}

stop_dmesg() {
    sleep 0.2 # let dmesg --follow catch up with the last messages
    kill "$dmesg_pid" 2>/dev/null
    wait "$dmesg_pid" 2>/dev/null
}

# Defaults, overridden by config.sh.
VM_CMD=()
VM_CWD=/
VM_MODULES=(vgem virtio-gpu bochs)
VM_DEVICE_CHECK=1
VM_EXPECT_DRIVERS=(vgem virtio_gpu bochs-drm)
VM_HUGEPAGES=
VM_TIMEOUT=0
# shellcheck source=/dev/null
. "$share/config.sh" || infra_error "cannot read $share/config.sh"

exec 3>>"$share/setup.log"

# Drivers. modprobe may fail for a module that is built in, so only the
# device check below decides whether the VM is usable.
if [ "${#VM_MODULES[@]}" -gt 0 ]; then
    modprobe -a "${VM_MODULES[@]}" >&3 2>&3 ||
        echo "modprobe -a ${VM_MODULES[*]} failed (exit $?)" >&3
fi

# The DRM driver name of /sys/class/drm/cardN. debugfs' dri/<minor>/name
# ("virtio_gpu dev=0000:00:0a.0 unique=...") is the only place that names the
# DRM driver itself: the sysfs device/driver link names the bus driver
# (virtio-pci for virtio-gpu) and vgem, a bare platform device, has none.
drm_driver_of() {
    local card=$1 minor name=
    minor=${card##*card}
    if [ -r "/sys/kernel/debug/dri/$minor/name" ]; then
        read -r name _ <"/sys/kernel/debug/dri/$minor/name"
    fi
    if [ -z "$name" ] && [ -e "/sys/class/drm/$card/device/driver" ]; then
        name=$(basename "$(readlink -f "/sys/class/drm/$card/device/driver")")
    fi
    if [ -z "$name" ]; then
        name=$(basename "$(readlink -f "/sys/class/drm/$card/device")")
    fi
    printf '%s\n' "$name"
}

if [ "$VM_DEVICE_CHECK" = 1 ]; then
    if ! mountpoint -q /sys/kernel/debug; then
        mount -t debugfs none /sys/kernel/debug 2>&3
    fi
    # udev does not run in the guest; devtmpfs creates the nodes, but driver
    # probing can still be in flight right after modprobe: poll briefly.
    missing=()
    for _ in $(seq 1 50); do
        missing=()
        found=" "
        for c in /sys/class/drm/card*; do
            c=${c##*/}
            case $c in card\* | *-*) continue ;; esac # connectors: card0-Virtual-1
            [ -c "/dev/dri/$c" ] || continue
            found+="$(drm_driver_of "$c") "
        done
        for d in "${VM_EXPECT_DRIVERS[@]}"; do
            case $found in *" $d "*) ;; *) missing+=("DRM driver $d (/dev/dri/card*)") ;; esac
        done
        [ -c /dev/udmabuf ] || missing+=(/dev/udmabuf)
        [ -c /dev/dma_heap/system ] || missing+=(/dev/dma_heap/system)
        [ "${#missing[@]}" -eq 0 ] && break
        sleep 0.1
    done
    {
        echo "DRM devices found:${found% }"
        ls -l /dev/dri /dev/udmabuf /dev/dma_heap 2>&1
    } >&3
    if [ "${#missing[@]}" -gt 0 ]; then
        msg=$(printf '%s, ' "${missing[@]}")
        infra_error "device check failed in the VM (kernel $(uname -r)): missing ${msg%, } (found DRM drivers:${found% }; see --verbose)"
    fi
fi

if [ -n "$VM_HUGEPAGES" ]; then
    echo "$VM_HUGEPAGES" >/proc/sys/vm/nr_hugepages 2>&3 ||
        infra_error "cannot write $VM_HUGEPAGES to /proc/sys/vm/nr_hugepages"
    got=$(cat /proc/sys/vm/nr_hugepages)
    [ "$got" -ge "$VM_HUGEPAGES" ] ||
        infra_error "asked for $VM_HUGEPAGES huge pages, the kernel reserved only $got (give the VM more --memory)"
    # A mounted hugetlbfs as on a usual distribution (memfd_create with
    # MFD_HUGETLB does not need it, mmap of a hugetlbfs file does).
    if ! mountpoint -q /dev/hugepages; then
        { mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages 2>&3; } ||
            infra_error "cannot mount hugetlbfs on /dev/hugepages"
    fi
fi

cd "$VM_CWD" 2>&3 || infra_error "cannot change to $VM_CWD in the VM"

# Run CMD with its environment (env.sh, sourced in the subshell only so
# this script keeps its own PATH) in its own session/process group, so the
# watchdog can kill it with all its children. The subshell is no group
# leader, so setsid(1) execs CMD without forking: $! is CMD's pid.
# stdin is /dev/null: the run is not interactive.
(
    # shellcheck source=/dev/null
    . "$share/env.sh" || exit 125
    if ! command -v "${VM_CMD[0]}" >/dev/null; then
        echo "scripts/vm: ${VM_CMD[0]}: command not found in the VM" >&2
        exit 127
    fi
    exec setsid "${VM_CMD[@]}"
) </dev/null >>"$share/stdout" 2>>"$share/stderr" &
cmd_pid=$!
watchdog_pid=
if [ "$VM_TIMEOUT" -gt 0 ]; then
    (
        sleep "$VM_TIMEOUT"
        : >"$share/timed-out"
        kill -TERM -- "-$cmd_pid" 2>/dev/null
        sleep 5
        kill -KILL -- "-$cmd_pid" 2>/dev/null
    ) &
    watchdog_pid=$!
fi
wait "$cmd_pid"
rc=$?
[ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null

stop_dmesg
echo "$rc" >"$share/rc.tmp" && mv "$share/rc.tmp" "$share/rc"
sync
exit "$rc"
