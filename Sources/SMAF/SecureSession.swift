import CSMAFPlugin
import Glibc

/// Access directions a secure module grants.
public struct SecureAccess: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = SecureAccess(rawValue: SMAF_ACCESS_READ.rawValue)
    public static let write = SecureAccess(rawValue: SMAF_ACCESS_WRITE.rawValue)
    public static let readWrite: SecureAccess = [.read, .write]

    /// What a device's usages imply: display, texturing and encoding read;
    /// rendering, decoding and capture write. No usage: both, to be safe.
    public init(usage: Usage) {
        var a: SecureAccess = []
        if !usage.isDisjoint(with: [.scanout, .texture, .videoEncode, .cpuRead]) { a.insert(.read) }
        if !usage.isDisjoint(with: [.render, .videoDecode, .camera, .cpuWrite]) { a.insert(.write) }
        self = a.isEmpty ? .readWrite : a
    }

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .readWrite: "read-write"
        default: "none"
        }
    }
}

/// One buffer's relation with its secure module: the context, the grants
/// in force, and the log of every decision. Mutated only under the owning
/// Buffer's lock. Its one release path is `close(scrub:)`: revoke every
/// grant, scrub, destroy the context, in that order.
final class SecureSession: @unchecked Sendable {
    struct Grant {
        let device: DeviceConstraints
        let length: UInt64
        let access: SecureAccess
    }

    let module: LoadedPlugin
    private let context: UnsafeMutableRawPointer?
    private(set) var grants: [Grant] = []
    private(set) var log: [String] = []
    private var closed = false

    init(module: LoadedPlugin, bufferID: UInt64) throws(SMAFError) {
        self.module = module
        var info = smaf_buffer_info()
        info.struct_size = UInt32(MemoryLayout<smaf_buffer_info>.size)
        info.id = bufferID
        switch module.createSecureContext(&info) {
        case .success(let ctx): context = ctx
        case .failure(let f):
            throw SMAFError(.accessDenied, "secure module \(module.name): create_context failed: \(withErrno(f.message, f.errno))")
        }
        note("buffer \(bufferID): secure context created by \(module.name)")
    }

    private func note(_ line: String) {
        log.append(line)
        module.core.log(.info, line, plugin: module.name)
    }

    /// Why the CPU may not map for `access`, or nil if it may.
    func cpuRefusal(_ access: SecureAccess) -> String? {
        let refusal = module.allowCPUAccess(context, access.rawValue)
        note("cpu \(access): \(refusal.map { "denied: \($0)" } ?? "allowed")")
        return refusal
    }

    /// Grants `device` the whole buffer, or throws naming the device.
    func grant(_ device: DeviceConstraints, length: UInt64, access: SecureAccess) throws(SMAFError) {
        let c = CallStructs(devices: [device])
        let range = "bytes 0..<\(length)"
        if let refusal = module.grantAccess(context, c.devicePointers[0]!, 0, length, access.rawValue) {
            note("grant \(device.name) \(range) \(access): denied: \(refusal)")
            throw SMAFError(.accessDenied, "secure module \(module.name) denies device \(device.name) \(access) access to \(range): \(refusal)")
        }
        note("grant \(device.name) \(range) \(access): granted")
        grants.append(Grant(device: device, length: length, access: access))
    }

    /// Grants every device in order; if one is refused, the grants already
    /// made by this call are revoked before the error is thrown.
    func grantAll(_ devices: [DeviceConstraints], length: UInt64) throws(SMAFError) {
        let before = grants.count
        do {
            for d in devices { try grant(d, length: length, access: SecureAccess(usage: d.usage)) }
        } catch {
            while grants.count > before { revokeLast() }
            throw error
        }
    }

    func isGranted(_ name: String) -> Grant? { grants.first { $0.device.name == name } }

    /// Revokes the newest grant (grants are undone in reverse order).
    func revokeLast() {
        guard let g = grants.popLast() else { return }
        revokeCall(g)
    }

    /// Revokes the newest grant of the device named `name`.
    func revoke(_ name: String) {
        guard let i = grants.lastIndex(where: { $0.device.name == name }) else { return }
        revokeCall(grants.remove(at: i))
    }

    private func revokeCall(_ g: Grant) {
        let c = CallStructs(devices: [g.device])
        module.revokeAccess(context, c.devicePointers[0]!, 0, g.length, g.access.rawValue)
        note("revoke \(g.device.name) bytes 0..<\(g.length) \(g.access)")
    }

    /// Revokes everything, runs `scrub` (with no device able to reach the
    /// memory), then destroys the context. Idempotent.
    func close(scrub: () -> String) {
        guard !closed else { return }
        closed = true
        while !grants.isEmpty { revokeLast() }
        note(scrub())
        module.destroySecureContext(context)
        note("secure context destroyed")
    }

    deinit { close { "no memory to scrub" } }
}
