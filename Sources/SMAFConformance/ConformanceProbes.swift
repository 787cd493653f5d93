import CSMAFPlugin
import SMAF
import SMAFDRM
import SMAFFormats
import SMAFProbe

/// One request and its devices, as the conformance run sends it to a plugin.
/// Plausible probes are what a core would send; bad ones are what no core
/// should send but a plugin must survive (the ABI is a C boundary: other
/// callers, older or newer cores, this tool).
struct ConformanceProbe: Sendable {
    var label: String
    var request: BufferRequest
    var devices: [DeviceConstraints]
    /// smaf_request.size: the core's minimum estimate, or a bad value.
    var size: UInt64
    /// smaf_request.modifiers: the negotiated list, or a bad one.
    var modifiers: [Modifier]
    /// Changes to the C view after it is built, for what no merge produces.
    var adjust: (@Sendable (CallStructs) -> Void)?

    /// The C structs for one call. Each call gets its own, so threads never share them.
    func call() -> CallStructs {
        let merged = (try? MergedConstraints(devices)) ?? MergedConstraints()
        let c = CallStructs(request: request, size: size, modifiers: modifiers, constraints: merged)
        adjust?(c)
        return c
    }

    /// A probe as the core would build it: size and modifiers negotiated.
    static func plausible(_ label: String, _ request: BufferRequest, _ devices: [DeviceConstraints] = []) -> ConformanceProbe? {
        guard let merged = try? MergedConstraints(devices), let size = try? request.minimumSize(),
              let modifiers = try? request.negotiate(with: merged) else { return nil }
        return ConformanceProbe(label: label, request: request, devices: devices, size: size, modifiers: modifiers)
    }
}

extension ConformanceProbe {
    /// What a core sends every day. A plugin may reject any of them, with a
    /// reason; what it accepts it must then allocate as promised.
    static func plausibleSet(displays: [(driver: String, device: DeviceConstraints)]) -> [ConformanceProbe] {
        var aligned = DeviceConstraints(name: "aligned-dma", usage: [.texture])
        aligned.pitchAlignment = 256
        aligned.heightAlignment = 16
        var cpu = DeviceConstraints(name: "cpu-writer", usage: [.cpuWrite])
        cpu.cpuAccess = true
        var importer = DeviceConstraints(name: "dmabuf-importer", usage: [.texture])
        importer.needsDmaBuf = true
        var xTiled = DeviceConstraints(name: "x-tiled-display", usage: [.scanout])
        xTiled.formats = [.init(.xrgb8888, [Modifier(rawValue: 0x0100_0000_0000_0001)])] // I915_FORMAT_MOD_X_TILED
        var contiguous = DeviceConstraints(name: "no-iommu-camera", usage: [.camera])
        contiguous.contiguous = true
        var heapOnly = DeviceConstraints(name: "heap-only-importer", usage: [.texture])
        heapOnly.needsDmaBuf = true
        heapOnly.importableFrom = ["dma-heap:system"]

        var probes: [ConformanceProbe?] = [
            .plausible("4 KiB of bytes", .bytes(4096)),
            .plausible("1 MiB + 1 byte", .bytes((1 << 20) + 1)),
            .plausible("640x480 XR24", .image(width: 640, height: 480, format: .xrgb8888)),
            .plausible("100x50 XR24, pitch aligned to 256, height to 16", .image(width: 100, height: 50, format: .xrgb8888), [aligned]),
            .plausible("64x64 NV12 (two planes)", .image(width: 64, height: 64, format: .nv12)),
            .plausible("64 KiB for a CPU writer", .bytes(64 << 10), [cpu]),
            .plausible("64 KiB for a dma-buf importer", .bytes(64 << 10), [importer]),
            .plausible("256x256 XR24, LINEAR only", .image(width: 256, height: 256, format: .xrgb8888, modifiers: [.linear])),
            .plausible("256x256 XR24 for an X-tiled display", .image(width: 256, height: 256, format: .xrgb8888), [xTiled]),
            .plausible("1 MiB physically contiguous", .bytes(1 << 20), [contiguous]),
            .plausible("4 KiB for a device that imports only dma-heap:system", .bytes(4096), [heapOnly]),
        ]
        for display in displays {
            probes.append(.plausible("640x480 XR24 scanout on \(display.device.importNode ?? "?") (\(display.driver))",
                                     .image(width: 640, height: 480, format: .xrgb8888), [display.device]))
        }
        return probes.compactMap { $0 }
    }

    /// What no core should send. Each must be refused (match rejects with a
    /// reason, or allocate fails with a negative errno and a message), or
    /// allocated so that every constraint holds, which for these is impossible.
    static let badSet: [ConformanceProbe] = {
        var small = DeviceConstraints(name: "max-64k")
        small.maxSize = 64 << 10
        var narrowPitch = DeviceConstraints(name: "max-pitch-1024")
        narrowPitch.maxPitch = 1024
        var narrow = DeviceConstraints(name: "max-width-320")
        narrow.maxWidth = 320
        var secure = DeviceConstraints(name: "secure-sink")
        secure.secure = true
        let unknown = FourCC(rawValue: 0x3234_5151) // 'QQ42': no such DRM format
        let nobodysModifier = Modifier(rawValue: 0xfe00_0000_0000_0001) // vendor 0xfe: unassigned

        func bad(_ label: String, _ request: BufferRequest, size: UInt64, _ devices: [DeviceConstraints] = [],
                 modifiers: [Modifier] = [], adjust: (@Sendable (CallStructs) -> Void)? = nil) -> ConformanceProbe {
            ConformanceProbe(label: label, request: request, devices: devices, size: size, modifiers: modifiers, adjust: adjust)
        }
        return [
            bad("0 bytes", .bytes(0), size: 0),
            bad("2^64-1 bytes", .bytes(.max), size: .max),
            bad("2^63 bytes", .bytes(1 << 63), size: 1 << 63),
            bad("64x64 of the unknown format QQ42", .image(width: 64, height: 64, format: unknown), size: 64 * 64 * 4),
            bad("1 MiB for a device whose max size is 64 KiB", .bytes(1 << 20), size: 1 << 20, [small]),
            bad("640x480 XR24 for a device whose max pitch is 1024", .image(width: 640, height: 480, format: .xrgb8888),
                size: 640 * 480 * 4, [narrowPitch]),
            bad("640x480 XR24 for a device whose max width is 320", .image(width: 640, height: 480, format: .xrgb8888),
                size: 640 * 480 * 4, [narrow]),
            bad("4 KiB both secure and CPU-mapped", .bytes(4096), size: 4096, [secure]) { c in
                c.merged.pointee.flags |= SMAF_CONSTRAINT_CPU_ACCESS.rawValue
            },
            bad("256x256 XR24 whose only modifier no driver defines",
                .image(width: 256, height: 256, format: .xrgb8888, modifiers: [nobodysModifier]),
                size: 256 * 256 * 4, modifiers: [nobodysModifier]),
        ]
    }()

    /// Every primary DRM node of this machine as `smaf probe` describes it
    /// (formats, size limits, the exporters it was measured to import from),
    /// for scanout requests. A node the probe cannot read still gets a plain
    /// importing display, so no device goes unasked.
    static func displays() -> [(driver: String, device: DeviceConstraints)] {
        DRMDevice.primaryNodes().compactMap { node in
            if let probe = try? DeviceProbe.run(node: node) { return (probe.driver, probe.constraints) }
            guard let driver = (try? DRMDevice(path: node))?.driver else { return nil }
            var display = DeviceConstraints(name: "\(driver)-display", usage: [.scanout])
            display.importNode = node
            return (driver, display)
        }
    }
}
