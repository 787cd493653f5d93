import Foundation
import Glibc
import SMAF
import SMAFDRM
import SMAFProbe
import SMAFScanout
import SMAFSys
import Testing

/// The DRM layer, the probe and the dumb allocator against the VM's real
/// drivers (vgem, virtio-gpu, bochs).
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason), .serialized)
struct DRMTests {
    func node(_ driver: String) throws -> String { try KernelTestBed.device(driver: driver).path }

    /// What each device imports, as measured on Debian 13's 6.12 kernel
    /// (docs: vm-facts). A kernel that changes any of it fails here.
    @Test func probeMeasuresTheImportMatrix() throws {
        let expected: [String: [String: String]] = [
            "vgem": ["udmabuf": "ok", "dma-heap:system": "ok", "drm:vgem": "ok", "drm:virtio_gpu": "ok", "drm:bochs-drm": "ENOSYS"],
            "virtio_gpu": ["udmabuf": "ENODEV", "dma-heap:system": "ENODEV", "drm:vgem": "ENODEV", "drm:virtio_gpu": "ok", "drm:bochs-drm": "ENOSYS"],
            "bochs-drm": ["udmabuf": "EINVAL", "dma-heap:system": "EINVAL", "drm:vgem": "EINVAL", "drm:virtio_gpu": "EINVAL", "drm:bochs-drm": "ok"],
        ]
        for (driver, imports) in expected {
            let probe = try DeviceProbe.run(node: try node(driver), refresh: true)
            #expect(probe.imports == imports, "\(driver)")
            #expect(probe.constraints.importableFrom == imports.filter { $0.value == "ok" }.keys.sorted())
            let cached = try DeviceProbe.run(node: try node(driver))
            #expect(cached.imports == imports, "the per-boot cache gives the same answer")
        }
    }

    /// The DRM layer's facts agree with drm_info's (JSON) for every device:
    /// driver, caps, framebuffer limits, each plane's type, formats and
    /// IN_FORMATS modifiers.
    @Test func drmLayerAgreesWithDrmInfo() throws {
        for driver in ["vgem", "virtio_gpu", "bochs-drm"] {
            let device = try KernelTestBed.device(driver: driver)
            let json = try KernelTestBed.run("/usr/bin/drm_info", ["-j", device.path])
            let all = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            guard let info = all[device.path] as? [String: Any] else {
                // drm_info reports only KMS devices (vgem: drmModeGetResources fails).
                #expect(device.kmsInfo() == nil, "drm_info skipped \(driver), so it must have no KMS")
                continue
            }
            let drv = try #require(info["driver"] as? [String: Any])
            #expect(drv["name"] as? String == device.driver)
            let caps = drv["caps"] as? [String: Any] ?? [:]
            #expect((caps["PRIME"] as? Int).map { $0 & 1 != 0 } == device.canImportPRIME, "\(driver) PRIME import")
            #expect((caps["PRIME"] as? Int).map { $0 & 2 != 0 } == device.canExportPRIME, "\(driver) PRIME export")
            if let dumb = caps["DUMB_BUFFER"] as? Int { #expect((dumb == 1) == device.supportsDumbBuffers, "\(driver) dumb") }
            if let mods = caps["ADDFB2_MODIFIERS"] as? Int { #expect((mods == 1) == device.supportsFramebufferModifiers) }
            guard let kms = device.kmsInfo() else {
                #expect(info["fb_size"] == nil || info["fb_size"] is NSNull, "\(driver): no KMS here, none there")
                continue
            }
            let fb = try #require(info["fb_size"] as? [String: Int])
            #expect(fb["max_width"] == Int(kms.maxWidth) && fb["max_height"] == Int(kms.maxHeight))
            let planes = try #require(info["planes"] as? [[String: Any]])
            // drm_info enables atomic, and 6.12 hides virtio-gpu's cursor plane
            // from atomic clients without hotspot support; smaf asks only for
            // universal planes and sees it. Every plane drm_info shows, smaf has.
            let theirIDs = planes.compactMap { $0["id"] as? Int }
            #expect(Set(theirIDs).isSubset(of: kms.planes.map { Int($0.id) }))
            #expect(kms.planes.filter { !theirIDs.contains(Int($0.id)) }.allSatisfy { $0.type == .cursor })
            for theirs in planes {
                guard let ours = kms.planes.first(where: { Int($0.id) == theirs["id"] as? Int }) else { continue }
                let props = theirs["properties"] as? [String: Any] ?? [:]
                let type = (props["type"] as? [String: Any])?["value"] as? Int
                #expect(type == ["overlay": 0, "primary": 1, "cursor": 2][ours.type.rawValue], "plane \(ours.id) type")
                let inFormats = (props["IN_FORMATS"] as? [String: Any])?["data"] as? [[String: Any]]
                #expect((inFormats != nil) == ours.hasInFormats, "plane \(ours.id) IN_FORMATS presence")
                if let inFormats {
                    // drm_info lists modifier -> formats; ours is format -> modifiers.
                    var theirPairs = Set<String>()
                    for entry in inFormats {
                        for f in entry["formats"] as? [Int] ?? [] { theirPairs.insert("\(f):\(entry["modifier"] as? UInt64 ?? UInt64(entry["modifier"] as? Int ?? -1))") }
                    }
                    let ourPairs = Set(ours.formats.flatMap { f in f.modifiers.map { "\(f.format):\($0)" } })
                    #expect(ourPairs == theirPairs, "plane \(ours.id) format/modifier pairs")
                } else {
                    #expect((theirs["formats"] as? [Int]) == ours.formats.map { Int($0.format) }, "plane \(ours.id) formats")
                }
            }
        }
    }

    /// The probe's display facts agree with libdrm's own modetest.
    @Test func probeAgreesWithModetest() throws {
        for driver in ["virtio_gpu", "bochs-drm"] {
            let c = try DeviceConstraints.probe(node: try node(driver))
            #expect(c.usage == [.scanout])
            #expect(c.maxWidth == 8192 && c.maxHeight == 8192)
            let out = try KernelTestBed.run("/usr/bin/modetest", ["-M", driver, "-p"])
            // modetest lists each plane's formats as "  formats: XR24 BX24"; the first is the primary plane.
            let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("  formats:") })
            let formats = line.dropFirst("  formats:".count).split(separator: " ").map(String.init)
            #expect(c.formats?.map(\.format.code) == formats, "\(driver): modetest says \(formats)")
        }
        let vgem = try DeviceConstraints.probe(node: try node("vgem"))
        #expect(vgem.formats == nil, "vgem has no display: no format constraint")
        #expect(vgem.usage.isEmpty)
    }

    @Test func selectionFollowsTheProbe() throws {
        let registry = KernelTestBed.registry("memfd", "dmaheap", "dumb")
        let want: [String: (allocator: String, exporter: String)] = [
            "vgem": ("dmaheap", "dma-heap:system"),
            "virtio_gpu": ("dumb", "drm:virtio_gpu"),
            "bochs-drm": ("dumb", "drm:bochs-drm"),
        ]
        for (driver, expected) in want {
            let device = try DeviceConstraints.probe(node: try node(driver))
            let buffer = try registry.buffer(.image(width: 640, height: 480, format: .xrgb8888), devices: [device])
            let a = try buffer.materialize()
            #expect(a.allocator == expected.allocator, "\(driver): \(buffer.explanation?.description ?? "")")
            #expect(a.exporter == expected.exporter)
            let fd = try buffer.exportFD()
            _ = try KernelTestBed.device(driver: driver).importDmaBuf(fd.rawValue)
        }
        // virtio-gpu and bochs each take only their own buffers: no allocator serves both.
        let both = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888),
                                       devices: [try DeviceConstraints.probe(node: try node("virtio_gpu")),
                                                 try DeviceConstraints.probe(node: try node("bochs-drm"))])
        let error = #expect(throws: SMAFError.self) { try both.materialize() }
        #expect(error?.message.contains("dumb: bochs-drm@card") == true, "\(error?.message ?? "")")
    }

    @Test func dumbBuffersAreZeroedLinearAndUseTheKernelPitch() throws {
        let registry = KernelTestBed.registry("dumb")
        for driver in ["vgem", "virtio_gpu", "bochs-drm"] {
            var d = DeviceConstraints(name: driver)
            d.importNode = try node(driver)
            let buffer = try registry.buffer(.image(width: 333, height: 77, format: .xrgb8888), devices: [d])
            let a = try buffer.materialize()
            #expect(a.modifier == .linear)
            #expect(a.planes.count == 1)
            #expect(a.planes[0].stride >= 333 * 4, "\(driver) pitch \(a.planes[0].stride)")
            #expect(a.size >= UInt64(a.planes[0].stride) * 77)
            try buffer.withCPUAccess(.readWrite) { bytes in
                #expect(bytes.allSatisfy { $0 == 0 }, "\(driver): zero-filled")
                bytes[0] = 0xab
                bytes[bytes.count - 1] = 0xcd
            }
            let fd = try buffer.exportFD()
            let check = try Mapping(fd: fd.rawValue, length: Int(a.size), writable: false)
            #expect(check.bytes[0] == 0xab && check.bytes[Int(a.size) - 1] == 0xcd)
        }
        // virtio-gpu takes 32 bpp dumb buffers only; the kernel's refusal comes back as it is.
        var virtio = DeviceConstraints(name: "virtio")
        virtio.importNode = try node("virtio_gpu")
        let error = #expect(throws: SMAFError.self) {
            try registry.buffer(.image(width: 64, height: 64, format: .rgb565), devices: [virtio]).materialize()
        }
        #expect(error?.message.hasSuffix("DRM_IOCTL_MODE_CREATE_DUMB(64x64, bpp 16) on \(virtio.importNode!) (virtio_gpu) failed: Invalid argument (EINVAL)") == true, "\(error?.message ?? "")")
    }

    @Test func dumbRejectsWhatItCannotDo() throws {
        let registry = KernelTestBed.registry("dumb")
        var d = DeviceConstraints(name: "virtio")
        d.importNode = try node("virtio_gpu")
        let cases: [(BufferRequest, String)] = [
            (.bytes(4096), "it serves images, not plain byte buffers"),
            (.image(width: 64, height: 64, format: .nv12), "dumb buffers take single-plane RGB formats only, not NV12"),
            (.image(width: 64, height: 64, format: .xrgb8888, modifiers: [Modifier(rawValue: 0x0100_0000_0000_0001)]),
             "it lays out LINEAR, INVALID only; the devices accept INTEL_0x1"),
        ]
        for (request, reason) in cases {
            let error = #expect(throws: SMAFError.self) { try registry.buffer(request, devices: [d]).materialize() }
            #expect(error?.message == "no allocator can satisfy the request: dumb: \(reason)")
        }
        var render = DeviceConstraints(name: "gpu", usage: [.render])
        render.importNode = d.importNode
        let e = #expect(throws: SMAFError.self) { try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888), devices: [render]).materialize() }
        #expect(e?.message.hasSuffix("dumb buffers are for scanout and CPU access, not GPU rendering") == true)
    }

    /// The kernel's own refusals come back naming the plugin, the call and the
    /// errno, leak nothing, and the framework stays usable.
    @Test func kernelRefusalsAreClearAndLeakNothing() throws {
        let registry = KernelTestBed.registry("dumb")
        var virtio = DeviceConstraints(name: "virtio")
        virtio.importNode = try node("virtio_gpu")
        // The plugin opens its own fd for the node on first use and keeps it.
        try registry.buffer(.image(width: 8, height: 8, format: .xrgb8888), devices: [virtio]).materialize()
        let before = OpenFiles.count()
        // virtio-gpu creates 32 bpp dumb buffers only; smaf's checks pass, the kernel says no.
        for _ in 0..<50 {
            let error = #expect(throws: SMAFError.self) {
                try registry.buffer(.image(width: 64, height: 64, format: .rgb565), devices: [virtio]).materialize()
            }
            #expect(error?.message.hasPrefix("no allocator can satisfy the request: dumb: match accepted but allocate failed: dumb: DRM_IOCTL_MODE_CREATE_DUMB(64x64, bpp 16) on \(virtio.importNode!) (virtio_gpu) failed: Invalid argument (EINVAL)") == true, "\(error?.message ?? "")")
        }
        #expect(OpenFiles.count() == before)
        #expect(try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888), devices: [virtio]).materialize().allocator == "dumb")
    }

    /// 2000 allocate/export/import/release cycles across every allocator and
    /// device leave the process's fd count where it was (each import's GEM
    /// handle is closed by its owner at the end of the cycle).
    @Test func twoThousandCyclesLeakNothing() throws {
        let registry = KernelTestBed.registry("memfd", "dmaheap", "dumb", "gbm")
        let devices = try ["vgem", "virtio_gpu", "bochs-drm"].map { try DeviceConstraints.probe(node: try node($0)) }
        let importers = try ["vgem", "virtio_gpu", "bochs-drm"].map { try KernelTestBed.device(driver: $0) }
        // The dumb and gbm plugins open one fd (and gbm device) per node on first use and keep it.
        for device in devices {
            for allocator in ["dumb", "gbm"] {
                try registry.buffer(.image(width: 8, height: 8, format: .xrgb8888, allocator: allocator), devices: [device]).materialize()
            }
        }
        let before = OpenFiles.count()
        var chosen: [String: Int] = [:]
        for i in 0..<2000 {
            let device = devices[i % 3]
            // Every third cycle (on vgem, which imports them all) forces each allocator in turn.
            let forced = i % 3 == 0 ? ["memfd", "dmaheap", "dumb", "gbm"][(i / 3) % 4] : nil
            let buffer = try registry.buffer(.image(width: 512, height: 512, format: .xrgb8888, allocator: forced), devices: [device])
            let fd = try buffer.exportFD()
            _ = try importers[i % 3].importDmaBuf(fd.rawValue)
            chosen[buffer.allocation!.allocator, default: 0] += 1
            try buffer.release()
        }
        #expect(OpenFiles.count() == before)
        #expect(Set(chosen.keys) == ["memfd", "dmaheap", "dumb", "gbm"], "\(chosen)")
    }
}
