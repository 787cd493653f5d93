import Glibc
import SMAFFormats
import SMAFSys

/// What an application asks for: a number of bytes, or an image. It names
/// no allocator (unless forced) and holds no memory.
public struct BufferRequest: Sendable, Hashable {
    public enum Shape: Sendable, Hashable {
        case bytes(UInt64)
        /// An image; `modifiers` empty means any the devices accept.
        case image(width: UInt32, height: UInt32, format: FourCC, modifiers: [Modifier])
    }

    public var shape: Shape
    /// Force this allocator by name (SMAF's allocator forced by name).
    public var allocator: String?
    /// Hand out fds without write permission, so the kernel refuses writable
    /// CPU mappings. Set by the core for secure buffers whose module denies
    /// CPU writes; allocators that cannot honour it reject the request.
    public var readOnly = false

    public init(_ shape: Shape, allocator: String? = nil) {
        self.shape = shape
        self.allocator = allocator
    }

    public static func bytes(_ size: UInt64, allocator: String? = nil) -> BufferRequest {
        BufferRequest(.bytes(size), allocator: allocator)
    }

    public static func image(width: UInt32, height: UInt32, format: FourCC, modifiers: [Modifier] = [],
                             allocator: String? = nil) -> BufferRequest {
        BufferRequest(.image(width: width, height: height, format: format, modifiers: modifiers), allocator: allocator)
    }

    /// The smallest size any allocator could give this request (a tightly
    /// packed linear layout), after checking the request is well formed.
    public func minimumSize() throws(SMAFError) -> UInt64 {
        switch shape {
        case .bytes(let size):
            guard size > 0 else { throw SMAFError(.invalidRequest, "size: a buffer of 0 bytes cannot be allocated") }
            guard Memory.pageRounded(size) != nil, size <= UInt64(Int64.max) else {
                throw SMAFError(.invalidRequest, "size: \(size) bytes is more than any allocator can address")
            }
            try Self.checkFitsInRAM(size, "size")
            return size
        case let .image(width, height, format, _):
            do {
                let size = try ImageLayout.linear(width: width, height: height, format: format).size
                guard size <= UInt64(Int64.max) else { throw ImageLayout.Failure.overflow("image size") }
                try Self.checkFitsInRAM(size, "image")
                return size
            } catch let error as SMAFError {
                throw error
            } catch {
                throw SMAFError(.invalidRequest, "image: \(error)")
            }
        }
    }

    /// More than the machine's RAM can never be allocated, and some kernel
    /// allocators (the system dma-heap) would try page by page until the OOM
    /// killer stops them: refuse it up front.
    static func checkFitsInRAM(_ size: UInt64, _ field: String) throws(SMAFError) {
        let ram = Memory.physicalRAM
        if ram > 0 && size > ram {
            throw SMAFError(.invalidRequest, "\(field): \(size) bytes is more than this machine's \(ram) bytes of RAM")
        }
    }

    /// Checks the request against what the devices accept and returns the
    /// modifiers left to choose from (empty: any).
    package func negotiate(with merged: MergedConstraints) throws(SMAFError) -> [Modifier] {
        guard case let .image(width, height, format, wanted) = shape else {
            if case let .bytes(size) = shape, let max = merged.combined.maxSize, size > max {
                throw SMAFError(.conflictingConstraints, "size: \(size) bytes exceeds the max size \(max) of device \(merged.origin(of: "max size") ?? "?")")
            }
            return []
        }
        let c = merged.combined
        if let max = c.maxWidth, width > max {
            throw SMAFError(.conflictingConstraints, "width: \(width) exceeds the max width \(max) of device \(merged.origin(of: "max width") ?? "?")")
        }
        if let max = c.maxHeight, height > max {
            throw SMAFError(.conflictingConstraints, "height: \(height) exceeds the max height \(max) of device \(merged.origin(of: "max height") ?? "?")")
        }
        guard let formats = c.formats else { return wanted }
        guard let accepted = formats.first(where: { $0.format == format }) else {
            let who = merged.devices.filter { d in d.formats.map { !$0.contains { $0.format == format } } ?? false }.map(\.name)
            throw SMAFError(.conflictingConstraints,
                            "format: \(format.code) is not accepted by device \(who.joined(separator: ", ")) (all accept: \(formats.map(\.format.code).joined(separator: ", ")))")
        }
        if wanted.isEmpty { return accepted.modifiers }
        if accepted.modifiers.isEmpty { return wanted }
        let common = wanted.filter(accepted.modifiers.contains)
        guard !common.isEmpty else {
            throw SMAFError(.conflictingConstraints,
                            "modifier: none of \(wanted.map(\.description).joined(separator: ", ")) is accepted by the devices for \(format.code) (they accept \(accepted.modifiers.map(\.description).joined(separator: ", ")))")
        }
        return common
    }
}

