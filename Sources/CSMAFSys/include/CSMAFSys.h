/*
 * Thin C shims for the calls Swift cannot make directly: variadic ioctl() and
 * fcntl(), and the kernel's ioctl request numbers, which are function-like C
 * macros. Each returns what the syscall returns; errno is left for the Swift
 * side to read. Nothing here retries or allocates.
 */
#ifndef CSMAFSYS_H
#define CSMAFSYS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <signal.h>

int csmaf_memfd_create(const char *name, unsigned int flags);
int csmaf_add_seals(int fd, unsigned int seals);
int csmaf_get_seals(int fd);
int csmaf_dup_cloexec(int fd, int min_fd);
/* pipe2(fds, O_CLOEXEC). */
int csmaf_pipe_cloexec(int fds[2]);

/* UDMABUF_CREATE: returns the new dma-buf fd or -1. */
int csmaf_udmabuf_create(int udmabuf_dev, int memfd, uint64_t offset, uint64_t size, int cloexec);

/* DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_* flags. */
int csmaf_dmabuf_sync(int dmabuf, uint64_t flags);
/* DMA_BUF_SET_NAME (at most DMA_BUF_NAME_LEN - 1 bytes are kept). */
int csmaf_dmabuf_set_name(int dmabuf, const char *name);

/* DRM_IOCTL_VERSION on an open DRM node: the driver's name into `name`
 * (NUL-terminated, at most size - 1 bytes). 0, or -1 with errno. */
int csmaf_drm_driver_name(int fd, char *name, size_t size);

/* The f_type of the file system `fd` lives on (fstatfs), or -1. */
long csmaf_fs_type(int fd);

/* The file of the loaded image containing `address` (dladdr), or NULL. */
const char *csmaf_image_path(const void *address);
/* 1 if an image loaded in this process has exactly this name (dl_iterate_phdr):
 * dlopen of that name would return it without opening the file. */
int csmaf_image_loaded(const char *name);

/* "SEGV" for SIGSEGV (sigabbrev_np), NULL for a number that is no signal. */
const char *csmaf_signal_abbrev(int signal);

/* flockfile, fflush and funlockfile on stdio's stderr: its lock is the one
 * every image in the process shares around fd 2 (and Swift 6 cannot name the
 * `stderr` global). Recursive per thread, like flockfile. */
void csmaf_stderr_lock(void);
void csmaf_stderr_flush(void);
void csmaf_stderr_unlock(void);

/* Clears O_NONBLOCK (F_GETFL, then F_SETFL). */
int csmaf_clear_nonblock(int fd);

/* The major number of a device number (major() is a macro). */
unsigned int csmaf_dev_major(uint64_t dev);

/* getauxval(AT_SECURE): non-zero in a setuid, setgid or capability-elevated
 * process, where the environment belongs to a less privileged caller. */
unsigned long csmaf_at_secure(void);

/* signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK): an fd that reads the
 * signals in `mask` (block them first), or -1. Swift's Glibc module leaves
 * out <sys/signalfd.h>. */
int csmaf_signalfd(const sigset_t *mask);
/* Reads one struct signalfd_siginfo from a signalfd: its signal number, 0 if
 * none is pending, -1 with errno on an error. */
int csmaf_signalfd_read(int fd);

/* DMA_HEAP_IOCTL_ALLOC: returns the new dma-buf fd or -1. */
int csmaf_dma_heap_alloc(int heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags);

enum {
    CSMAF_MFD_CLOEXEC = 0x0001U,
    CSMAF_MFD_ALLOW_SEALING = 0x0002U,
    CSMAF_MFD_HUGETLB = 0x0004U,
    CSMAF_F_SEAL_SEAL = 0x0001,
    CSMAF_F_SEAL_SHRINK = 0x0002,
    CSMAF_F_SEAL_GROW = 0x0004,
    CSMAF_F_SEAL_WRITE = 0x0008,
    CSMAF_DMA_BUF_SYNC_READ = 1,
    CSMAF_DMA_BUF_SYNC_WRITE = 2,
    CSMAF_DMA_BUF_SYNC_START = 0,
    CSMAF_DMA_BUF_SYNC_END = 4,
};

#endif
