/// A DRM format modifier (`DRM_FORMAT_MOD_*`): the memory layout of an image.
public struct Modifier: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let linear = Modifier(rawValue: 0)
    /// DRM_FORMAT_MOD_INVALID: "implicit", the layout is agreed out of band.
    public static let invalid = Modifier(rawValue: 0x00ff_ffff_ffff_ffff)

    public var vendor: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 56) }

    /// `LINEAR`, `INVALID`, or the vendor and value in hex (`I915_0x1`).
    public var description: String {
        switch self {
        case .linear: return "LINEAR"
        case .invalid: return "INVALID"
        default:
            let vendors: [UInt8: String] = [1: "INTEL", 2: "AMD", 3: "NVIDIA", 4: "SAMSUNG", 5: "QCOM",
                                            6: "VIVANTE", 7: "BROADCOM", 8: "ARM", 9: "ALLWINNER", 10: "AMLOGIC"]
            let low = rawValue & 0x00ff_ffff_ffff_ffff
            return "\(vendors[vendor] ?? "VENDOR\(vendor)")_0x\(String(low, radix: 16))"
        }
    }

    public static func < (a: Modifier, b: Modifier) -> Bool { a.rawValue < b.rawValue }

    /// Parses `LINEAR`, `INVALID`/`IMPLICIT`, `DRM_FORMAT_MOD_LINEAR`, or a number (0x... or decimal).
    public init?(parsing text: String) {
        let t = (text.hasPrefix("DRM_FORMAT_MOD_") ? String(text.dropFirst(15)) : text).uppercased()
        switch t {
        case "LINEAR": self = .linear
        case "INVALID", "IMPLICIT": self = .invalid
        default:
            if t.hasPrefix("0X"), let v = UInt64(t.dropFirst(2), radix: 16) { self.init(rawValue: v) }
            else if let v = UInt64(t) { self.init(rawValue: v) }
            else { return nil }
        }
    }
}
