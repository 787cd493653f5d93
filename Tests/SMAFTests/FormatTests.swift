import Foundation
import SMAF
import Testing

@Suite struct FormatTests {
    /// DRM fourcc codes are C macros; smaf spells them out in Swift. This
    /// compiles a C program against the kernel's drm_fourcc.h (libdrm-dev)
    /// and compares every value.
    @Test func fourccValuesMatchTheKernelHeader() throws {
        let exe = NSTemporaryDirectory() + "smaf-fourcc-\(getpid())"
        let cc = try TestSupport.run("/usr/bin/cc", ["-o", exe, "-I/usr/include/libdrm",
                                                     "\(TestSupport.packageRoot)/Tests/Fixtures/fourcc_values.c"])
        try #require(cc.status == 0, "cc failed (is libdrm-dev installed?): \(cc.stderr)")
        let out = try TestSupport.run(exe, [])
        var checked = 0
        for line in out.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            let name = String(parts[0]), value = UInt64(parts[1])!
            if name == "MOD_LINEAR" { #expect(Modifier.linear.rawValue == value); continue }
            if name == "MOD_INVALID" { #expect(Modifier.invalid.rawValue == value); continue }
            let info = FormatInfo.all.first { $0.name == name }
            #expect(info != nil, "smaf has no \(name)")
            #expect(info.map { UInt64($0.fourcc.rawValue) } == value, "\(name)")
            checked += 1
        }
        #expect(checked == FormatInfo.all.count)
    }

    @Test func namesPrintAsDrmInfoDoes() {
        #expect(FourCC.xrgb8888.code == "XR24")
        #expect(FourCC.xrgb8888.description == "XR24 (XRGB8888)")
        #expect(FourCC(parsing: "XRGB8888") == .xrgb8888)
        #expect(FourCC(parsing: "DRM_FORMAT_NV12") == .nv12)
        #expect(FourCC(parsing: "xrgb8888") == .xrgb8888)
        #expect(FourCC(parsing: "ZZ99") == nil)
        #expect(Modifier.linear.description == "LINEAR")
        #expect(Modifier.invalid.description == "INVALID")
        #expect(Modifier(parsing: "0x0100000000000001")?.description == "INTEL_0x1")
    }

    @Test func linearLayoutHonoursAlignmentAndChecksOverflow() throws {
        let l = try ImageLayout.linear(width: 1920, height: 1080, format: .xrgb8888, pitchAlignment: 256)
        #expect(l.planes == [.init(offset: 0, pitch: 7680)])
        #expect(l.size == 7680 * 1080)
        let odd = try ImageLayout.linear(width: 101, height: 7, format: .rgb888, pitchAlignment: 64, heightAlignment: 16)
        #expect(odd.planes[0].pitch == 320)
        #expect(odd.size == 320 * 16)
        let nv12 = try ImageLayout.linear(width: 64, height: 48, format: .nv12)
        #expect(nv12.planes == [.init(offset: 0, pitch: 64), .init(offset: 64 * 48, pitch: 64)])
        #expect(nv12.size == 64 * 48 * 3 / 2)
        #expect(throws: ImageLayout.Failure.zeroDimension(width: 0, height: 5)) {
            try ImageLayout.linear(width: 0, height: 5, format: .xrgb8888)
        }
        #expect(throws: ImageLayout.Failure.self) {
            try ImageLayout.linear(width: .max, height: .max, format: .abgr16161616f, pitchAlignment: 1 << 40)
        }
        #expect(throws: ImageLayout.Failure.pitchTooLarge(pitch: 7680, max: 4096)) {
            try ImageLayout.linear(width: 1920, height: 1, format: .xrgb8888, maxPitch: 4096)
        }
        #expect(leastCommonMultiple(64, 96) == 192)
        #expect(leastCommonMultiple(UInt64(1) << 63, 3) == nil)
    }
}
