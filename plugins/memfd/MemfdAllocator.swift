import Glibc
import SMAFPluginKit
import SMAFSys

/// memfd + udmabuf: ordinary shared memory pages turned into a real dma-buf.
/// Works on any Linux machine; where /dev/udmabuf is missing it hands out the
/// sealed memfd itself, marked as not a dma-buf, and refuses devices that
/// need to import one.
final class MemfdAllocator: AllocatorPlugin {
    static let name = "memfd"
    static let summary = "memfd pages exported as a dma-buf through /dev/udmabuf (sealed memfd without it)"
    static let defaultRank: Int32 = Int32(SMAF_RANK_SECONDARY)

    /// Linear pitch alignment when no device asks for one: 64 bytes keeps rows
    /// cache-line aligned, which CPU blits and most GPUs like.
    static let defaultPitchAlignment: UInt64 = 64

    private let udmabuf: UdmabufExporter
    private let core: PluginCore

    init(core: PluginCore) throws(PluginError) {
        self.core = core
        udmabuf = UdmabufExporter()
        if let reason = udmabuf.unavailableReason {
            core.log(SMAF_LOG_INFO, "no udmabuf (\(reason)): handing out sealed memfds, not dma-bufs")
        }
    }

    /// Shared memory pages: mappable, linear, page aligned, anywhere in RAM;
    /// a dma-buf only where udmabuf makes one (always O_RDWR, so never
    /// read-only). The core turns away what this rules out.
    var capabilities: Capabilities {
        var flags: Capabilities.Flags = [.cpuMappable, .bytes, .images]
        if udmabuf.isAvailable { flags.insert(.dmaBuf) }
        return Capabilities(flags, exporter: udmabuf.isAvailable ? "udmabuf" : "")
    }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        let size: UInt64
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let layout): size = layout.size
        case .failure(let failure): return .reject(failure.description)
        }
        if let limit = udmabuf.sizeLimit, size > limit {
            return .reject("\(size) bytes exceeds udmabuf's size limit of \(limit) bytes (\(Udmabuf.sizeLimitPath))")
        }
        if merged.maxSegments > 0, size / Memory.pageSize > UInt64(merged.maxSegments) {
            return .reject("memfd needs up to \(size / Memory.pageSize) segments; a device takes \(merged.maxSegments)")
        }
        return .accept
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
        let layout: ImageLayout
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let l): layout = l
        case .failure(let f): throw PluginError(errno: EINVAL, f.description)
        }
        guard let size = Memory.pageRounded(layout.size) else { throw PluginError(errno: EOVERFLOW, "size overflows") }
        // udmabuf pins the pages: more than there is would end in the OOM killer, not an error.
        if let why = MemoryHeadroom.shortfall(size) { throw PluginError(errno: ENOMEM, "not enough memory: \(why)") }
        do {
            let memfd = try Memfd.create(name: "smaf-memfd", size: size)
            try Memfd.addSeals(memfd.rawValue, UdmabufExporter.requiredSeals)
            var allocation: PluginAllocation
            if udmabuf.isAvailable {
                // The dma-buf holds the pages; the memfd can go when this scope ends.
                let dmabuf = try udmabuf.export(memfd: memfd.rawValue, offset: 0, size: size, name: request.wantsName ? "smaf:memfd" : nil)
                allocation = PluginAllocation(fd: dmabuf.take(), size: size, guarantees: [.dmaBuf, .cpuMappable])
                allocation.detail = "memfd pages via udmabuf"
                allocation.exporter = "udmabuf"
            } else {
                allocation = PluginAllocation(fd: memfd.take(), size: size, guarantees: [.cpuMappable])
                allocation.detail = "sealed memfd (no /dev/udmabuf: not a dma-buf)"
            }
            allocation.describe(request: request, layout: layout, modifier: .linear)
            return allocation
        } catch {
            throw PluginError(errno: error.errno.rawValue, error.description)
        }
    }

    func release(_ allocation: PluginAllocation) {
        _ = Glibc.close(allocation.fd)
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(MemfdAllocator.self)
}
