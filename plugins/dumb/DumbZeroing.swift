import Glibc
import SMAFDRM
import SMAFPluginKit

/// Whether a node's new dumb buffers must be zeroed by the plugin before
/// anyone sees them, decided once per node (`dumb.zero_fill`). Drivers that
/// back dumb buffers with shmem or DMA-API memory get pages the kernel
/// zeroed; those that carve them out of VRAM (TTM, drm_gem_vram) hand back
/// what the last buffer left. Zeroing a shmem buffer is pure cost: on vgem
/// and virtio-gpu the mapping alone allocates, zeroes and switches every page
/// to write-combined, which is what made dumb buffers 13-430x the raw path.
enum DumbZeroing {
    enum Setting: String, CaseIterable { case auto, always, never }

    /// Dumb buffers backed by shmem or the DMA API (drm_gem_shmem, i915's
    /// shmem objects, drm_gem_dma): every page comes from the kernel zeroed.
    static let kernelZeroes: Set<String> = ["vgem", "virtio_gpu", "i915", "xe", "vkms", "simpledrm", "udl",
                                            "msm", "panfrost", "lima", "v3d", "vc4"]
    /// Dumb buffers carved out of VRAM, reused as they were freed.
    static let vram: Set<String> = ["bochs-drm", "ast", "hibmc", "hibmc-drm", "mgag200", "vboxvideo", "qxl", "cirrus"]

    /// Whether to fill, and why, for `device` under `setting`.
    static func decide(_ device: DRMDevice, _ setting: Setting) -> (fill: Bool, why: String) {
        switch setting {
        case .always: return (true, "dumb.zero_fill is always")
        case .never: return (false, "dumb.zero_fill is never")
        case .auto: break
        }
        if kernelZeroes.contains(device.driver) { return (false, "\(device.driver) hands out kernel-zeroed pages") }
        if vram.contains(device.driver) { return (true, "\(device.driver) reuses VRAM as it was freed") }
        return freedMemoryComesBackDirty(device)
            ? (true, "measured: a new \(device.driver) buffer showed a freed one's bytes")
            : (false, "measured: a new \(device.driver) buffer came back zeroed after a freed one was written")
    }

    /// Writes a pattern into a small buffer, frees it, makes another of the
    /// same size and looks: any of the pattern means freed memory is handed
    /// out again as it was. Any failure counts as dirty (fill, to be safe).
    static func freedMemoryComesBackDirty(_ device: DRMDevice) -> Bool {
        let pattern: UInt8 = 0xA5
        do {
            do {
                let first = try device.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
                try device.withDumbMapping(first.handle, size: first.size) { memset($0.baseAddress!, Int32(pattern), $0.count) }
            } // destroyed here
            let second = try device.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
            return try device.withDumbMapping(second.handle, size: second.size) { bytes in bytes.contains { $0 != 0 } }
        } catch {
            return true
        }
    }
}
