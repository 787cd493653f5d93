import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFDRM
import SMAFSys

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Show what smaf does in one run: plugins, devices, a scanout-sized buffer and why it went where it went.",
        discussion: """
        The README's main job. It loads the plugins, looks at the devices, allocates \
        a 1920x1080 XR24 buffer for a display plane and the CPU, explains the choice, \
        exports it, checks the bytes through two mappings, imports it into every DRM \
        device that will take it, and times allocate+export+release per allocator \
        against the raw syscalls.
        """
    )

    @Option(help: "Iterations per benchmark row.") var iterations = 200

    func run() throws {
        let registry = try AllocatorRegistry.load()
        section("allocator plugins, in the order they are tried")
        print(pluginTable(registry))
        for w in registry.loadWarnings { print("refused: \(DisplayText.escaped(w.description))") }

        section("devices")
        let drm = DRMDevice.primaryNodes().compactMap { try? DRMDevice(path: $0) }
        for d in drm { print("  \(d.path): \(d.driver) \(d.driverVersion)") }
        if drm.isEmpty { print("  no DRM devices (/dev/dri is empty or missing)") }
        let limit = Udmabuf.sizeLimit().map { ", size limit \(formatBytes($0))" } ?? ""
        print("  \(Udmabuf.devicePath): \(access(Udmabuf.devicePath, W_OK) == 0 ? "present\(limit)" : "missing: memfd hands out plain memfds")")
        let heaps = DmaHeap.heapNames()
        print("  /dev/dma_heap: \(heaps.isEmpty ? "no heaps" : heaps.joined(separator: ", "))")

        section("a scanout-sized buffer: 1920x1080 XR24 for a display plane and the CPU")
        var plane = DeviceConstraints(name: "display-plane", usage: [.scanout])
        plane.formats = [.init(.xrgb8888, [.linear, .invalid]), .init(.argb8888, [.linear, .invalid])]
        plane.pitchAlignment = 64
        plane.maxWidth = 4096
        plane.maxHeight = 4096
        plane.needsDmaBuf = !drm.isEmpty
        print("  display-plane: XR24/AR24 LINEAR or implicit, pitch multiple of 64, up to 4096x4096\(plane.needsDmaBuf ? ", imports a dma-buf" : "")")
        // The CPU draws into it, so it is a device too: that is what makes an
        // allocator promise a mapping (gbm then asks for a linear BO).
        var cpu = DeviceConstraints(name: "cpu", usage: [.cpuWrite])
        cpu.cpuAccess = true
        print("  cpu: writes the pixels, so the buffer must be CPU-mappable")
        let buffer = try registry.buffer(.image(width: 1920, height: 1080, format: .xrgb8888), devices: [plane, cpu])
        print("  buffer created: no memory yet (allocation is deferred until first use)")
        let exported = try buffer.exportFD()
        let a = try buffer.materialize()
        print(buffer.explanation.map(\.description) ?? "")
        print(describe(a))

        section("export and CPU access")
        let info = DmaBuf.fdInfo(exported.rawValue)
        print("  exported fd \(exported.rawValue): \(info["exp_name"].map { "dma-buf from \($0), name '\(info["name"] ?? "")'" } ?? "not a dma-buf (no exporter in fdinfo)")")
        let pattern: (Int) -> UInt8 = { UInt8(truncatingIfNeeded: ($0 >> 12) &* 31 &+ 7) }
        try buffer.withCPUAccess(.write) { bytes in
            for i in stride(from: 0, to: bytes.count, by: 4096) { bytes[i] = pattern(i) }
        }
        let check = try Mapping(fd: exported.rawValue, length: Int(a.size), writable: false)
        let wrong = stride(from: 0, to: Int(a.size), by: 4096).filter { check.bytes[$0] != pattern($0) }.count
        print("  wrote one byte per page through a mapping of the buffer, read them through a second mapping of the exported fd: \(wrong == 0 ? "all \(a.size / 4096) match" : "\(wrong) differ")")

        section("import into DRM devices (drmPrimeFDToHandle)")
        if drm.isEmpty { print("  no DRM devices here; scripts/vm runs this demo in a VM that has them") }
        for d in drm {
            do {
                let handle = try d.importDmaBuf(exported.rawValue)
                print("  \(d.driver): imported, GEM handle \(handle.handle)")
            } catch {
                print("  \(d.driver): refused: \(error.errno.symbolicName) (\(error.errno.description))")
            }
        }

        section("benchmark: allocate + export + release, smaf vs raw syscalls interleaved, \(iterations) cycles each")
        try BenchLauncher.run(["--teaser", "--iterations", "\(iterations)"])
    }

    private func section(_ title: String) { print("\n== \(title)") }
}


