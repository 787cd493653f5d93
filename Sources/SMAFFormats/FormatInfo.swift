/// What smaf knows about a pixel format: enough to lay out a linear image.
public struct FormatInfo: Sendable, Hashable {
    public let fourcc: FourCC
    public let name: String
    /// Bytes per pixel of each plane, before subsampling.
    public let bytesPerPixel: [UInt32]
    /// Horizontal and vertical subsampling of planes after the first.
    public let hsub: UInt32
    public let vsub: UInt32

    public var planeCount: Int { bytesPerPixel.count }
    /// Bits per pixel of the first plane, what DRM_IOCTL_MODE_CREATE_DUMB calls bpp.
    public var bitsPerPixel: UInt32 { bytesPerPixel[0] * 8 }
    public var isYUV: Bool { hsub > 1 || vsub > 1 || fourcc == .yuyv || fourcc == .uyvy }

    init(_ fourcc: FourCC, _ name: String, _ bpp: [UInt32], hsub: UInt32 = 1, vsub: UInt32 = 1) {
        self.fourcc = fourcc
        self.name = name
        self.bytesPerPixel = bpp
        self.hsub = hsub
        self.vsub = vsub
    }

    public static func lookup(_ fourcc: FourCC) -> FormatInfo? { byCode[fourcc] }

    public static let all: [FormatInfo] = [
        FormatInfo(.c8, "C8", [1]), FormatInfo(.r8, "R8", [1]), FormatInfo(.r16, "R16", [2]),
        FormatInfo(.gr88, "GR88", [2]),
        FormatInfo(.rgb565, "RGB565", [2]), FormatInfo(.bgr565, "BGR565", [2]),
        FormatInfo(.rgb888, "RGB888", [3]), FormatInfo(.bgr888, "BGR888", [3]),
        FormatInfo(.xrgb8888, "XRGB8888", [4]), FormatInfo(.xbgr8888, "XBGR8888", [4]),
        FormatInfo(.rgbx8888, "RGBX8888", [4]), FormatInfo(.bgrx8888, "BGRX8888", [4]),
        FormatInfo(.argb8888, "ARGB8888", [4]), FormatInfo(.abgr8888, "ABGR8888", [4]),
        FormatInfo(.rgba8888, "RGBA8888", [4]), FormatInfo(.bgra8888, "BGRA8888", [4]),
        FormatInfo(.xrgb2101010, "XRGB2101010", [4]), FormatInfo(.xbgr2101010, "XBGR2101010", [4]),
        FormatInfo(.argb2101010, "ARGB2101010", [4]), FormatInfo(.abgr2101010, "ABGR2101010", [4]),
        FormatInfo(.xbgr16161616f, "XBGR16161616F", [8]), FormatInfo(.abgr16161616f, "ABGR16161616F", [8]),
        FormatInfo(.yuyv, "YUYV", [2]), FormatInfo(.uyvy, "UYVY", [2]),
        FormatInfo(.nv12, "NV12", [1, 2], hsub: 2, vsub: 2),
        FormatInfo(.nv21, "NV21", [1, 2], hsub: 2, vsub: 2),
        FormatInfo(.nv16, "NV16", [1, 2], hsub: 2, vsub: 1),
        FormatInfo(.p010, "P010", [2, 4], hsub: 2, vsub: 2),
        FormatInfo(.yuv420, "YUV420", [1, 1, 1], hsub: 2, vsub: 2),
        FormatInfo(.yvu420, "YVU420", [1, 1, 1], hsub: 2, vsub: 2),
    ]

    private static let byCode: [FourCC: FormatInfo] = Dictionary(uniqueKeysWithValues: all.map { ($0.fourcc, $0) })
}
