/// A DRM pixel format code (`DRM_FORMAT_*` in the kernel's drm_fourcc.h).
/// The codes are C macros Swift cannot import, so they are spelled out here
/// and checked against the header by the test suite.
public struct FourCC: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Four ASCII characters, as `fourcc_code()` packs them (little-endian).
    public init(_ code: StaticString) {
        precondition(code.utf8CodeUnitCount == 4, "a fourcc has four characters")
        let p = code.utf8Start
        rawValue = UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
    }

    /// The four-character code as drm_info prints it (`XR24`).
    public var code: String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> (8 * $0)) }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return String(rawValue, radix: 16) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The DRM_FORMAT_ name without its prefix (`XRGB8888`), or the code if unknown.
    public var name: String { FormatInfo.lookup(self)?.name ?? code }

    /// `XR24 (XRGB8888)`, as drm_info shows formats.
    public var description: String {
        let n = name
        return n == code ? code : "\(code) (\(n))"
    }

    public static func < (a: FourCC, b: FourCC) -> Bool { a.rawValue < b.rawValue }

    /// Parses `XR24`, `XRGB8888`, `DRM_FORMAT_XRGB8888` or a 0x-prefixed number.
    public init?(parsing text: String) {
        let t = text.hasPrefix("DRM_FORMAT_") ? String(text.dropFirst(11)) : text
        if let info = FormatInfo.all.first(where: { $0.name.caseInsensitiveEquals(t) }) {
            self = info.fourcc
        } else if t.utf8.count == 4, let known = FormatInfo.all.first(where: { $0.fourcc.code == t }) {
            self = known.fourcc
        } else if t.hasPrefix("0x"), let v = UInt32(t.dropFirst(2), radix: 16), FormatInfo.lookup(FourCC(rawValue: v)) != nil {
            self = FourCC(rawValue: v)
        } else {
            return nil
        }
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        self.utf8.count == other.utf8.count && self.uppercased() == other.uppercased()
    }
}

extension FourCC {
    public static let c8 = FourCC("C8  ")
    public static let r8 = FourCC("R8  ")
    public static let r16 = FourCC("R16 ")
    public static let gr88 = FourCC("GR88")
    public static let rgb565 = FourCC("RG16")
    public static let bgr565 = FourCC("BG16")
    public static let rgb888 = FourCC("RG24")
    public static let bgr888 = FourCC("BG24")
    public static let xrgb8888 = FourCC("XR24")
    public static let xbgr8888 = FourCC("XB24")
    public static let rgbx8888 = FourCC("RX24")
    public static let bgrx8888 = FourCC("BX24")
    public static let argb8888 = FourCC("AR24")
    public static let abgr8888 = FourCC("AB24")
    public static let rgba8888 = FourCC("RA24")
    public static let bgra8888 = FourCC("BA24")
    public static let xrgb2101010 = FourCC("XR30")
    public static let xbgr2101010 = FourCC("XB30")
    public static let argb2101010 = FourCC("AR30")
    public static let abgr2101010 = FourCC("AB30")
    public static let xbgr16161616f = FourCC("XB4H")
    public static let abgr16161616f = FourCC("AB4H")
    public static let yuyv = FourCC("YUYV")
    public static let uyvy = FourCC("UYVY")
    public static let nv12 = FourCC("NV12")
    public static let nv21 = FourCC("NV21")
    public static let nv16 = FourCC("NV16")
    public static let p010 = FourCC("P010")
    public static let yuv420 = FourCC("YU12")
    public static let yvu420 = FourCC("YV12")
}
