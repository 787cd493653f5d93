import Glibc
import SMAF
import SMAFScanout
import SMAFSys
import Synchronization
import Testing

/// What QEMU shows on an emulated display, taken from outside the guest:
/// scripts/vm's screendump helper asks the host's QEMU monitor for a PPM
/// of one display device, written into the folder shared with the guest.
struct ScreenCapture {
    let width: Int
    let height: Int
    /// Packed RGB, row by row.
    let rgb: [UInt8]

    /// The helper exists only under scripts/vm.
    static let helper = getenv("SMAFVM_SCREENDUMP").map { String(cString: $0) }
    static let share = getenv("SMAFVM_SHARE").map { String(cString: $0) }
    static var available: Bool { helper != nil && share != nil }
    static let unavailableReason: Comment = "no QEMU screendump helper: run through scripts/vm"

    /// QEMU's device id for a DRM driver's display (scripts/vm names them).
    static func qemuDevice(driver: String) -> String {
        driver == "bochs-drm" ? "bochs" : "virtio-gpu"
    }

    /// Asks the host for a screendump of `device` and reads it.
    static func take(device: String) throws -> ScreenCapture {
        guard let helper, let share else { throw KernelTestBed.TestBedError(message: "not running under scripts/vm") }
        let name = "scanout-\(getpid())-\(device).ppm"
        let out = try KernelTestBed.run(helper, [name, device])
        guard out.hasPrefix("/") else { throw KernelTestBed.TestBedError(message: "screendump \(device) failed (output: \(out))") }
        let path = "\(share)/\(name)"
        defer { unlink(path) }
        return try parsePPM(try readFile(path), source: path)
    }

    /// Binary PPM (P6, maxval 255), as QEMU writes it.
    static func parsePPM(_ data: [UInt8], source: String) throws -> ScreenCapture {
        var fields: [Int] = []
        var i = 2
        guard data.count > 2, data[0] == UInt8(ascii: "P"), data[1] == UInt8(ascii: "6") else {
            throw KernelTestBed.TestBedError(message: "\(source): not a binary PPM")
        }
        while fields.count < 3 && i < data.count {
            if data[i] == UInt8(ascii: "#") {
                while i < data.count && data[i] != UInt8(ascii: "\n") { i += 1 }
            } else if data[i] >= UInt8(ascii: "0") && data[i] <= UInt8(ascii: "9") {
                var v = 0
                while i < data.count, data[i] >= UInt8(ascii: "0"), data[i] <= UInt8(ascii: "9") {
                    v = v * 10 + Int(data[i] - UInt8(ascii: "0"))
                    i += 1
                }
                fields.append(v)
                continue
            }
            i += 1
        }
        i += 1 // the single whitespace after maxval
        guard fields.count == 3, fields[2] == 255, data.count - i >= fields[0] * fields[1] * 3 else {
            throw KernelTestBed.TestBedError(message: "\(source): unexpected PPM header \(fields) for \(data.count) bytes")
        }
        return ScreenCapture(width: fields[0], height: fields[1], rgb: Array(data[i..<(i + fields[0] * fields[1] * 3)]))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try UniqueFD.open(path, O_RDONLY)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd.rawValue, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    struct Difference: CustomStringConvertible {
        var mismatches: Int
        var first: (x: Int, y: Int, got: RGB, want: RGB)?
        var description: String {
            guard let f = first else { return "0 pixels differ" }
            return "\(mismatches) pixels differ; first at (\(f.x), \(f.y)): screen \(f.got), expected \(f.want)"
        }
    }

    /// Pixel-for-pixel comparison with an expected picture (packed RGB).
    func compare(with expected: [UInt8]) -> Difference {
        var d = Difference(mismatches: 0)
        // Whole-array equality runs in the optimized standard library; the
        // per-pixel walk is only for describing a mismatch.
        if rgb == expected { return d }
        for p in 0..<(width * height) where rgb[3 * p] != expected[3 * p] || rgb[3 * p + 1] != expected[3 * p + 1] || rgb[3 * p + 2] != expected[3 * p + 2] {
            if d.first == nil {
                d.first = (p % width, p / width, RGB(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]),
                           RGB(expected[3 * p], expected[3 * p + 1], expected[3 * p + 2]))
            }
            d.mismatches += 1
        }
        return d
    }

    /// What the screen must show: the pattern's pure colour function, after
    /// the format's own rounding. Computed independently of the drawing code.
    static func expected(_ pattern: TestPattern, frame: Int, width: Int, height: Int, packing: PixelPacking) -> [UInt8] {
        let key = "\(pattern) \(frame) \(width)x\(height) \(packing.format.code)"
        if let cached = expectedCache.withLock({ $0[key] }) { return cached }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let c = packing.shown(pattern.color(x: x, y: y, width: width, height: height, frame: frame))
                let p = 3 * (y * width + x)
                out[p] = c.r
                out[p + 1] = c.g
                out[p + 2] = c.b
            }
        }
        expectedCache.withLock { $0[key] = out }
        return out
    }

    /// Computing a 1280x800 picture pixel by pixel takes seconds in a debug
    /// build under TCG; both displays use the same ones.
    private static let expectedCache = Mutex<[String: [UInt8]]>([:])
}
