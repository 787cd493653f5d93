/// The linear layout of an image: per-plane offset and pitch, and the total.
/// All arithmetic is checked, so absurd sizes become an error, not a trap.
public struct ImageLayout: Sendable, Hashable {
    public struct Plane: Sendable, Hashable {
        public var offset: UInt64
        public var pitch: UInt64
        public init(offset: UInt64, pitch: UInt64) {
            self.offset = offset
            self.pitch = pitch
        }
    }
    public var planes: [Plane]
    public var size: UInt64

    public init(planes: [Plane], size: UInt64) {
        self.planes = planes
        self.size = size
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case zeroDimension(width: UInt32, height: UInt32)
        case unknownFormat(FourCC)
        case overflow(String)
        case pitchTooLarge(pitch: UInt64, max: UInt64)
        case exceedsMaxSize(size: UInt64, max: UInt64)
        case exceedsMaxDimension(name: String, value: UInt32, max: UInt32)
        /// Laid out (pitch padding, plane alignment), more than the machine has.
        case exceedsRAM(size: UInt64, ram: UInt64)

        public var description: String {
            switch self {
            case let .zeroDimension(w, h): return "image size \(w)x\(h) has a zero dimension"
            case let .unknownFormat(f): return "format \(f.code) (0x\(String(f.rawValue, radix: 16))) is not known to smaf"
            case let .overflow(what): return "\(what) overflows 64 bits"
            case let .pitchTooLarge(p, m): return "pitch \(p) bytes exceeds the maximum pitch \(m)"
            case let .exceedsMaxSize(s, m): return "\(s) bytes exceeds the maximum buffer size \(m)"
            case let .exceedsMaxDimension(n, v, m): return "\(n) \(v) exceeds the max \(n) \(m)"
            case let .exceedsRAM(s, r): return "\(s) bytes once laid out is more than this machine's \(r) bytes of RAM"
            }
        }
    }

    /// Lays out `width`x`height` of `format` with each plane's pitch a multiple
    /// of `pitchAlignment` and the height padded to `heightAlignment`.
    public static func linear(width: UInt32, height: UInt32, format: FourCC,
                              pitchAlignment: UInt64 = 1, heightAlignment: UInt64 = 1,
                              maxPitch: UInt64 = 0, maxSize: UInt64 = 0) throws(Failure) -> ImageLayout {
        guard width > 0, height > 0 else { throw .zeroDimension(width: width, height: height) }
        guard let info = FormatInfo.lookup(format) else { throw .unknownFormat(format) }
        let paddedHeight = try checked("height \(height) aligned to \(heightAlignment)") {
            alignUp(UInt64(height), heightAlignment)
        }
        var planes: [Plane] = []
        var offset: UInt64 = 0
        for (index, bpp) in info.bytesPerPixel.enumerated() {
            let sub = index == 0 ? (h: UInt64(1), v: UInt64(1)) : (h: UInt64(info.hsub), v: UInt64(info.vsub))
            let planeWidth = (UInt64(width) + sub.h - 1) / sub.h
            let planeHeight = (paddedHeight + sub.v - 1) / sub.v
            let pitch = try checked("pitch of \(width) pixels of \(info.name)") {
                mul(planeWidth, UInt64(bpp)).flatMap { alignUp($0, pitchAlignment) }
            }
            if maxPitch > 0 && pitch > maxPitch { throw .pitchTooLarge(pitch: pitch, max: maxPitch) }
            let planeSize = try checked("\(width)x\(height) \(info.name) (pitch \(pitch) x height \(planeHeight))") {
                mul(pitch, planeHeight)
            }
            planes.append(Plane(offset: offset, pitch: pitch))
            offset = try checked("image size") { add(offset, planeSize) }
        }
        if maxSize > 0 && offset > maxSize { throw .exceedsMaxSize(size: offset, max: maxSize) }
        return ImageLayout(planes: planes, size: offset)
    }

    /// A plain byte buffer: one plane without a pitch.
    public static func bytes(_ size: UInt64) -> ImageLayout {
        ImageLayout(planes: [Plane(offset: 0, pitch: 0)], size: size)
    }

    private static func checked(_ what: @autoclosure () -> String, _ v: () -> UInt64?) throws(Failure) -> UInt64 {
        guard let r = v() else { throw .overflow(what()) }
        return r
    }
}

@inlinable func mul(_ a: UInt64, _ b: UInt64) -> UInt64? {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    return o ? nil : r
}

@inlinable func add(_ a: UInt64, _ b: UInt64) -> UInt64? {
    let (r, o) = a.addingReportingOverflow(b)
    return o ? nil : r
}

/// `value` rounded up to a multiple of `alignment` (any positive alignment), nil on overflow.
@inlinable public func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64? {
    guard alignment > 1 else { return value }
    guard let sum = add(value, alignment - 1) else { return nil }
    return sum / alignment * alignment
}

/// Least common multiple, nil on overflow. Used to merge alignments.
public func leastCommonMultiple(_ a: UInt64, _ b: UInt64) -> UInt64? {
    if a == 0 { return b }
    if b == 0 { return a }
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return mul(a / x, b)
}
