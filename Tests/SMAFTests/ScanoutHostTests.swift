import Foundation
import SMAF
import SMAFDRM
import SMAFScanout
import Testing

/// The scanout pieces that need no display: the patterns as pure functions,
/// the drawing into a mapped image in every format, mode parsing, and the
/// CLI's answers to bad arguments.
struct ScanoutHostTests {
    /// A signal sent to this thread is read back from the signalfd (through
    /// CSMAFSys's struct signalfd_siginfo, not a guessed size), once.
    @Test func stopSignalsReadTheSignalOnce() throws {
        let stop = try StopSignals([SIGUSR2])
        #expect(stop.received() == nil)
        raise(SIGUSR2) // blocked on this thread by StopSignals: pending, never delivered
        #expect(stop.wait(seconds: 5) == SIGUSR2)
        #expect(stop.received() == nil, "one signal, read once")
        #expect(stop.wait(seconds: 0.05) == nil)
    }

    @Test func patternsParse() {
        #expect(TestPattern(parsing: "smpte") == .smpte)
        #expect(TestPattern(parsing: "GRADIENT") == .gradient)
        #expect(TestPattern(parsing: "solid:20a0ff") == .solid(RGB(0x20, 0xa0, 0xff)))
        #expect(TestPattern(parsing: "solid:20a0f") == nil)
        #expect(TestPattern(parsing: "checkers") == nil)
        #expect(TestPattern.solid(RGB(1, 2, 255)).description == "solid:0102ff")
    }

    @Test func smpteBarsSitWhereTheyShould() {
        let (w, h) = (1280, 800)
        let at = { (x: Int, y: Int) in TestPattern.smpte.color(x: x, y: y, width: w, height: h) }
        #expect(at(0, 0) == RGB(192, 192, 192))
        #expect(at(w - 1, 0) == RGB(0, 0, 192))
        let second = (w + 6) / 7 // the first x with 7x >= w
        #expect(at(second, 0) == RGB(192, 192, 0), "second bar")
        #expect(at(second - 1, 0) == RGB(192, 192, 192))
        #expect(at(0, h * 2 / 3) == RGB(0, 0, 192), "castellations start at 2/3 height")
        #expect(at(w - 1, h * 3 / 4 - 1) == RGB(192, 192, 192))
        #expect(at(0, h - 1) == RGB(0, 33, 76), "-I")
        #expect(at(w * 5 / 7, h - 1) == RGB(0, 0, 0), "PLUGE below black")
        #expect(at(w - 1, h - 1) == RGB(19, 19, 19))
        // A frame scrolls the picture left by width/64 pixels.
        #expect(TestPattern.smpte.color(x: second - 20, y: 0, width: w, height: h, frame: 1) == RGB(192, 192, 0))
        #expect(TestPattern.smpte.color(x: second - 21, y: 0, width: w, height: h, frame: 1) == RGB(192, 192, 192))
    }

    @Test func gradientSpansTheScreen() {
        let g = TestPattern.gradient
        #expect(g.color(x: 0, y: 0, width: 640, height: 480) == RGB(0, 0, 255))
        #expect(g.color(x: 639, y: 479, width: 640, height: 480) == RGB(255, 255, 0))
    }

    /// Drawing writes, in every supported format, exactly the packed pattern
    /// colour at every pixel, inside the given offset and pitch, and nothing
    /// outside. Checked against the per-pixel functions, not the row cache.
    @Test(arguments: PixelPacking.formats)
    func drawingMatchesThePureFunction(format: FourCC) throws {
        let packing = try #require(PixelPacking(format))
        let (w, h, offset) = (67, 41, 256)
        let pitch = w * packing.bytesPerPixel + 12
        var memory = [UInt8](repeating: 0xee, count: offset + pitch * h + 64)
        for pattern in [TestPattern.smpte, .gradient, .solid(RGB(0x12, 0x34, 0x56))] {
            for frame in [0, 5] {
                try memory.withUnsafeMutableBytes { bytes in
                    try packing.draw(pattern, frame: frame, into: bytes, width: w, height: h, offset: offset, pitch: pitch)
                }
                var wrong = 0
                for y in 0..<h {
                    for x in 0..<w {
                        let v = packing.packed(pattern.color(x: x, y: y, width: w, height: h, frame: frame))
                        let p = offset + y * pitch + x * packing.bytesPerPixel
                        let stored = packing.bytesPerPixel == 4
                            ? UInt32(memory[p]) | UInt32(memory[p + 1]) << 8 | UInt32(memory[p + 2]) << 16 | UInt32(memory[p + 3]) << 24
                            : UInt32(memory[p]) | UInt32(memory[p + 1]) << 8
                        if stored != v { wrong += 1 }
                    }
                    let padding = memory[(offset + y * pitch + w * packing.bytesPerPixel)..<(offset + y * pitch + pitch)]
                    #expect(padding.allSatisfy { $0 == 0xee }, "row padding untouched")
                }
                #expect(wrong == 0, "\(format.code) \(pattern) frame \(frame)")
                #expect(memory[0..<offset].allSatisfy { $0 == 0xee }, "bytes before the offset untouched")
            }
        }
    }

    @Test func formatsPackAsTheKernelDefinesThem() throws {
        let c = RGB(0x11, 0x22, 0x33)
        #expect(PixelPacking(.xrgb8888)?.packed(c) == 0xff11_2233)
        #expect(PixelPacking(.xbgr8888)?.packed(c) == 0xff33_2211)
        #expect(PixelPacking(.bgrx8888)?.packed(c) == 0x3322_11ff)
        #expect(PixelPacking(.rgb565)?.packed(RGB(0xff, 0, 0)) == 0xf800)
        #expect(PixelPacking(.xrgb2101010)?.packed(RGB(0xff, 0, 0xff)) == 0xfff0_03ff)
        // 8-bit channels come back exact; 565 keeps 5/6/5 bits, widened by repeating the top bits.
        #expect(PixelPacking(.xrgb2101010)?.shown(c) == c)
        #expect(PixelPacking(.rgb565)?.shown(RGB(0x12, 0x34, 0x56)) == RGB(0x10, 0x34, 0x52))
        #expect(PixelPacking(.nv12) == nil)
    }

    @Test func drawingRefusesAnImageThatDoesNotFit() throws {
        let packing = try #require(PixelPacking(.xrgb8888))
        var memory = [UInt8](repeating: 0, count: 100)
        let e = #expect(throws: SMAFError.self) {
            try memory.withUnsafeMutableBytes { try packing.draw(.smpte, frame: 0, into: $0, width: 10, height: 10, offset: 0, pitch: 40) }
        }
        #expect(e?.message == "draw: a 10x10 XR24 image with pitch 40 at offset 0 does not fit in 100 bytes")
    }

    @Test func modesParse() {
        #expect(ModeRequest(parsing: "1024x768") == ModeRequest(width: 1024, height: 768))
        #expect(ModeRequest(parsing: "1920x1080@59.94") == ModeRequest(width: 1920, height: 1080, refresh: 59.94))
        for bad in ["1024", "1024x", "x768", "0x768", "1024x768@", "1024x768@-5", "axb"] {
            #expect(ModeRequest(parsing: bad) == nil, "\(bad)")
        }
    }

    /// Argument mistakes: ArgumentParser's usage error (64) or smaf's one line (1).
    @Test func cliRefusesBadArguments() throws {
        let env = ["SMAF_PLUGIN_PATH": TestSupport.shippedPlugin("dumb"), "SMAF_DEFAULT_PLUGINS": "0"]
        let both = try TestSupport.run(TestSupport.smafExecutable, ["scanout", "--frames", "5", "--seconds", "1"], environment: env)
        #expect(both.status == 64)
        #expect(both.stderr.contains("give --frames or --seconds, not both"))
        let cases: [([String], String)] = [
            (["--pattern", "plaid"], "smaf: error: pattern: 'plaid' is not smpte, gradient or solid:RRGGBB\n"),
            (["--mode", "big"], "smaf: error: mode: 'big' is not WxH or WxH@R (examples: 1024x768, 1920x1080@60)\n"),
            (["--format", "NV12"], "smaf: error: format: the test patterns are drawn in XR24, AR24, XB24, AB24, RX24, RA24, BX24, BA24, RG16, BG16, XR30, AR30, XB30, AB30, not NV12\n"),
        ]
        for (args, message) in cases {
            let r = try TestSupport.run(TestSupport.smafExecutable, ["scanout"] + args, environment: env)
            #expect(r.status == 1, "\(args)")
            #expect(r.stderr == message)
        }
    }
}
