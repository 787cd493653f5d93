import SMAF
import SMAFFormats

/// An 8-bit-per-channel colour, as a screen capture reports it.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    /// `RRGGBB` in hex.
    public init?(hex: String) {
        guard hex.utf8.count == 6, let v = UInt32(hex, radix: 16) else { return nil }
        self.init(UInt8(v >> 16), UInt8((v >> 8) & 0xff), UInt8(v & 0xff))
    }

    public var description: String {
        [r, g, b].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// The pictures `smaf scanout` shows. Pure functions of (x, y, screen size,
/// frame), so a test computes exactly what the screen must show.
public enum TestPattern: Sendable, Hashable, CustomStringConvertible {
    /// SMPTE-style colour bars: seven 75% bars, a row of reversed-blue
    /// castellations, then -I, white, +Q, black and a PLUGE (black-level) strip.
    case smpte
    /// Red rises left to right, green top to bottom, blue falls left to right:
    /// every row and column differs, so a wrong pitch or offset shows.
    case gradient
    case solid(RGB)

    /// `smpte`, `gradient` or `solid:RRGGBB`.
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "smpte": self = .smpte
        case "gradient": self = .gradient
        case let t where t.hasPrefix("solid:"):
            guard let c = RGB(hex: String(t.dropFirst(6))) else { return nil }
            self = .solid(c)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .smpte: "smpte"
        case .gradient: "gradient"
        case .solid(let c): "solid:\(c)"
        }
    }

    /// Each frame moves the picture this many pixels to the left (wrapping),
    /// so page flips show motion.
    public static func scroll(width: Int, frame: Int) -> Int {
        guard width > 0 else { return 0 }
        return (frame % width) * max(1, width / 64) % width
    }

    static let white75 = RGB(192, 192, 192), yellow = RGB(192, 192, 0), cyan = RGB(0, 192, 192)
    static let green = RGB(0, 192, 0), magenta = RGB(192, 0, 192), red = RGB(192, 0, 0), blue = RGB(0, 0, 192)
    static let black = RGB(19, 19, 19), superBlack = RGB(0, 0, 0), darkGrey = RGB(38, 38, 38)
    static let minusI = RGB(0, 33, 76), white = RGB(255, 255, 255), plusQ = RGB(50, 0, 106)
    static let bars = [white75, yellow, cyan, green, magenta, red, blue]
    static let castellations = [blue, black, magenta, black, cyan, black, white75]

    /// The colour of pixel (x, y) in frame `frame` of a width x height picture.
    public func color(x: Int, y: Int, width: Int, height: Int, frame: Int = 0) -> RGB {
        guard width > 0, height > 0 else { return RGB(0, 0, 0) }
        let sx = (x + Self.scroll(width: width, frame: frame)) % width
        switch self {
        case .solid(let c):
            return c
        case .gradient:
            let r = UInt8(sx * 255 / max(width - 1, 1))
            return RGB(r, UInt8(y * 255 / max(height - 1, 1)), 255 - r)
        case .smpte:
            let column = sx * 7 / width
            switch band(y: y, height: height) {
            case 0: return Self.bars[column]
            case 1: return Self.castellations[column]
            default:
                // Bottom quarter: four blocks under the first five bars, the
                // PLUGE (below, at, above black) under the sixth, black under the last.
                if sx < width * 5 / 7 { return [Self.minusI, Self.white, Self.plusQ, Self.black][sx * 28 / (width * 5)] }
                if sx < width * 6 / 7 { return [Self.superBlack, Self.black, Self.darkGrey][min((sx - width * 5 / 7) * 21 / width, 2)] }
                return Self.black
            }
        }
    }

    /// Rows with the same key are identical, so drawing computes them once.
    func rowKey(y: Int, height: Int) -> Int {
        switch self {
        case .solid: 0
        case .gradient: y
        case .smpte: band(y: y, height: height)
        }
    }

    private func band(y: Int, height: Int) -> Int {
        y < height * 2 / 3 ? 0 : (y < height * 3 / 4 ? 1 : 2)
    }
}

/// How an RGB colour is stored in a framebuffer format, and what a display
/// shows for it after the format's rounding (8-bit channels round-trip
/// exactly; 565 keeps the top bits and the display widens them by
/// repeating the top bits, as pixman does).
public struct PixelPacking: Sendable {
    public let format: FourCC
    public let bytesPerPixel: Int
    private let pack: @Sendable (RGB) -> UInt32
    private let widen: @Sendable (RGB) -> RGB

    /// The formats the patterns can be drawn in.
    public static let formats: [FourCC] = [
        .xrgb8888, .argb8888, .xbgr8888, .abgr8888, .rgbx8888, .rgba8888, .bgrx8888, .bgra8888,
        .rgb565, .bgr565, .xrgb2101010, .argb2101010, .xbgr2101010, .abgr2101010,
    ]

    public init?(_ format: FourCC) {
        self.format = format
        let c8: @Sendable (RGB) -> (UInt32, UInt32, UInt32) = { (UInt32($0.r), UInt32($0.g), UInt32($0.b)) }
        let c10: @Sendable (RGB) -> (UInt32, UInt32, UInt32) = { c in
            let w = { (v: UInt8) in UInt32(v) << 2 | UInt32(v) >> 6 }
            return (w(c.r), w(c.g), w(c.b))
        }
        switch format {
        case .xrgb8888, .argb8888: pack = { let (r, g, b) = c8($0); return 0xff << 24 | r << 16 | g << 8 | b }
        case .xbgr8888, .abgr8888: pack = { let (r, g, b) = c8($0); return 0xff << 24 | b << 16 | g << 8 | r }
        case .rgbx8888, .rgba8888: pack = { let (r, g, b) = c8($0); return r << 24 | g << 16 | b << 8 | 0xff }
        case .bgrx8888, .bgra8888: pack = { let (r, g, b) = c8($0); return b << 24 | g << 16 | r << 8 | 0xff }
        case .rgb565: pack = { c in UInt32(c.r >> 3) << 11 | UInt32(c.g >> 2) << 5 | UInt32(c.b >> 3) }
        case .bgr565: pack = { c in UInt32(c.b >> 3) << 11 | UInt32(c.g >> 2) << 5 | UInt32(c.r >> 3) }
        case .xrgb2101010, .argb2101010: pack = { let (r, g, b) = c10($0); return 3 << 30 | r << 20 | g << 10 | b }
        case .xbgr2101010, .abgr2101010: pack = { let (r, g, b) = c10($0); return 3 << 30 | b << 20 | g << 10 | r }
        default: return nil
        }
        if format == .rgb565 || format == .bgr565 {
            bytesPerPixel = 2
            widen = { c in
                let r5 = c.r >> 3, g6 = c.g >> 2, b5 = c.b >> 3
                return RGB(r5 << 3 | r5 >> 2, g6 << 2 | g6 >> 4, b5 << 3 | b5 >> 2)
            }
        } else {
            bytesPerPixel = 4
            widen = { $0 }
        }
    }

    /// The pixel's bits, to be stored little-endian.
    public func packed(_ c: RGB) -> UInt32 { pack(c) }

    /// What an 8-bit capture of the display shows for `c` in this format.
    public func shown(_ c: RGB) -> RGB { widen(c) }

    /// Draws frame `frame` of `pattern` into a mapped image. Identical rows
    /// (bands of the bars) are computed once and copied.
    public func draw(_ pattern: TestPattern, frame: Int, into bytes: UnsafeMutableRawBufferPointer,
                     width: Int, height: Int, offset: Int, pitch: Int) throws(SMAFError) {
        let rowBytes = width * bytesPerPixel
        guard width > 0, height > 0, pitch >= rowBytes, offset >= 0,
              offset + (height - 1) * pitch + rowBytes <= bytes.count, let base = bytes.baseAddress else {
            throw SMAFError(.invalidRequest, "draw: a \(width)x\(height) \(format.code) image with pitch \(pitch) at offset \(offset) does not fit in \(bytes.count) bytes")
        }
        // Rows are built in ordinary memory and copied out: the target may be
        // write-combined VRAM (bochs), which is slow to read back.
        var row = [UInt8](repeating: 0, count: rowBytes)
        // The gradient is separable: red and blue follow x, green follows y,
        // and packing ORs channel fields, so a row is the columns' packed
        // red+blue OR'd with the row's packed green (a per-pixel colour
        // computation costs ~2 s a frame in a debug build under TCG).
        let columns: [UInt32]? = pattern == .gradient ? (0..<width).map { x in
            var c = pattern.color(x: x, y: 0, width: width, height: height, frame: frame)
            c.g = 0
            return pack(c)
        } : nil
        var lastKey: Int?
        for y in 0..<height {
            let key = pattern.rowKey(y: y, height: height)
            if key != lastKey {
                row.withUnsafeMutableBytes { out in
                    func put(_ v: UInt32, at x: Int) {
                        if bytesPerPixel == 4 {
                            out.storeBytes(of: v.littleEndian, toByteOffset: x * 4, as: UInt32.self)
                        } else {
                            out.storeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian, toByteOffset: x * 2, as: UInt16.self)
                        }
                    }
                    if let columns {
                        let green = pack(RGB(0, pattern.color(x: 0, y: y, width: width, height: height, frame: frame).g, 0))
                        columns.withUnsafeBufferPointer { c in for x in 0..<width { put(c[x] | green, at: x) } }
                    } else {
                        for x in 0..<width { put(pack(pattern.color(x: x, y: y, width: width, height: height, frame: frame)), at: x) }
                    }
                }
                lastKey = key
            }
            UnsafeMutableRawBufferPointer(start: base + offset + y * pitch, count: rowBytes).copyBytes(from: row)
        }
    }
}
