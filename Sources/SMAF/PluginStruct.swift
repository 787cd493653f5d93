import CSMAFPlugin

/// A struct a plugin wrote, read the way plugin.h's growth rule says: a
/// field exists only if it lies wholly inside the `struct_size` the plugin
/// set, and a field beyond it reads as absent (its default). The struct is
/// never copied whole, so a plugin built against an older header, whose
/// table may end right before an unmapped page, is never read past its end.
struct PluginStruct<T> {
    let base: UnsafeRawPointer
    /// Bytes the plugin says it has (its `struct_size`, the first field of every ABI struct).
    let size: Int

    init(_ pointer: UnsafePointer<T>) {
        base = UnsafeRawPointer(pointer)
        size = Int(base.loadUnaligned(as: UInt32.self))
    }

    /// The field, or nil when the plugin's struct ends before it.
    subscript<V: BitwiseCopyable>(_ field: KeyPath<T, V>) -> V? {
        guard let range = Self.range(of: field), range.upperBound <= size else { return nil }
        return base.loadUnaligned(fromByteOffset: range.lowerBound, as: V.self)
    }

    /// The first of `fields` (a name and where it lies) whose bytes the
    /// plugin has are not all zero: a field with no meaning yet that it set.
    func firstNonZero(_ fields: [(name: String, range: Range<Int>?)]) -> String? {
        fields.first { field in
            guard let range = field.range else { return false }
            let end = min(range.upperBound, size)
            guard range.lowerBound < end else { return false }
            return !UnsafeRawBufferPointer(start: base + range.lowerBound, count: end - range.lowerBound).allSatisfy { $0 == 0 }
        }?.name
    }

    /// `firstNonZero` for two fields: a 1.0 struct's `reserved0` and `reserved`.
    func firstNonZero<A, B>(_ a: (String, KeyPath<T, A>), _ b: (String, KeyPath<T, B>)) -> String? {
        firstNonZero([(a.0, Self.range(of: a.1)), (b.0, Self.range(of: b.1))])
    }

    /// The struct as this core knows it: the plugin's bytes up to its
    /// struct_size, zero beyond (the default of every field added later).
    func copied() -> T where T: BitwiseCopyable {
        withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { slot in
            let raw = UnsafeMutableRawPointer(slot.baseAddress!)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
            raw.copyMemory(from: base, byteCount: min(max(size, 0), MemoryLayout<T>.size))
            return raw.load(as: T.self)
        }
    }

    /// Where a field lies in the struct as this core knows it.
    static func range<V>(of field: KeyPath<T, V>) -> Range<Int>? {
        MemoryLayout<T>.offset(of: field).map { $0 ..< $0 + MemoryLayout<V>.size }
    }

    /// Bytes up to the end of `field`: the size a struct written for the
    /// version whose last field it is has.
    static func end<V>(of field: KeyPath<T, V>) -> Int { range(of: field)?.upperBound ?? 0 }
}

/// The sizes of ABI 1.0's structs, the oldest this core loads: each ends
/// with its `reserved` words, so they are derived from today's header
/// rather than written down (a test compiles the frozen 1.0 header in
/// Tests/Fixtures/abi-v1 and checks these against its sizeof).
package enum ABI1_0 {
    package static let plugin = PluginStruct<smaf_plugin>.end(of: \.reserved)
    package static let allocatorOps = PluginStruct<smaf_allocator_ops>.end(of: \.reserved)
    package static let secureOps = PluginStruct<smaf_secure_ops>.end(of: \.reserved)
}
