import Foundation
import SMAF
import SMAFSys
import Testing

/// Secure modules on the host, driven through the `test` module (which
/// records every call) and the `policy` module (rules files).
@Suite struct SecureTests {
    func registry(_ settings: [String: String] = [:], modules: [String] = ["test"]) throws -> AllocatorRegistry {
        try TestSupport.registry([TestSupport.shippedPlugin("memfd")] + modules.map(TestSupport.shippedPlugin), settings: settings)
    }

    func device(_ name: String, _ usage: Usage) -> DeviceConstraints { DeviceConstraints(name: name, usage: usage) }

    /// The test module's call log for buffer `id`.
    func calls(_ registry: AllocatorRegistry, _ id: UInt64) -> [String] {
        (registry.secureModules.first { $0.name == "test" }?.stats() ?? "").split(separator: "\n")
            .map(String.init).filter { $0.split(separator: " ").dropFirst().first == "\(id)" }
    }

    @Test func markingSecureNeedsAModuleAndNoMemoryYet() throws {
        let plain = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
        let e1 = #expect(throws: SMAFError.self) { try plain.buffer(.bytes(4096)).markSecure() }
        #expect(e1?.message == "secure: no secure module is loaded, so no buffer can be marked secure (SMAF_PLUGIN_PATH, smaf list)")
        let r = try registry()
        let e2 = #expect(throws: SMAFError.self) { try r.buffer(.bytes(4096)).markSecure(module: "tee") }
        #expect(e2?.message == "secure module: none named 'tee' is loaded (known: test)")
        let used = try r.buffer(.bytes(4096))
        try used.materialize()
        let e3 = #expect(throws: SMAFError.self) { try used.markSecure(module: "test") }
        #expect(e3?.message == "secure: the buffer already has memory; mark it secure before its first use")
    }

    /// What smaf_buffer_set_secure(buf, 0) stands on: a buffer marked secure
    /// can be unmarked until it has memory; the module's context goes (the
    /// module sees create, then destroy) and the memory is plain.
    @Test func unmarkingBeforeMemoryDestroysTheContext() throws {
        let r = try registry()
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        try buffer.unmarkSecure()
        #expect(!buffer.isSecure)
        #expect(calls(r, buffer.id).map { $0.split(separator: " ").first.map(String.init) ?? "" } == ["create", "destroy"])
        #expect(try buffer.exportFD().byteSize() == 4096, "a plain buffer exports without naming a device")
        let e = #expect(throws: SMAFError.self) { try buffer.unmarkSecure() }
        #expect(e?.message == "secure: the buffer already has memory; a secure buffer stays secure")

        let plain = try r.buffer(.bytes(4096))
        try plain.unmarkSecure() // not secure: nothing to undo
        #expect(!plain.isSecure)
    }

    @Test func grantedDevicesGetFdsOthersDoNot() throws {
        let r = try registry()
        let buffer = try r.buffer(.bytes(1 << 16))
        try buffer.markSecure(module: "test")
        try buffer.attach(device("display", [.scanout]))
        let fd = try buffer.exportFD(for: "display")
        #expect(try fd.byteSize() == 1 << 16)
        let e1 = #expect(throws: SMAFError.self) { _ = try buffer.exportFD() }
        #expect(e1?.kind == .accessDenied)
        let e2 = #expect(throws: SMAFError.self) { _ = try buffer.exportFD(for: "camera") }
        #expect(e2?.message == "export: device camera is not attached to this buffer (attached: display)")
        #expect(calls(r, buffer.id).contains("grant \(buffer.id) display 0+65536 read ok"))
    }

    @Test func aRefusedDeviceFailsTheAllocationAndFreesIt() throws {
        let r = try registry(["test.deny": "spy"])
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        try buffer.attach(device("display", [.scanout]))
        try buffer.attach(device("spy", [.cpuRead, .videoEncode]))
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.kind == .accessDenied)
        #expect(error?.message == "secure module test denies device spy read access to bytes 0..<4096: test module denies spy")
        #expect(buffer.allocation == nil, "no memory is kept after a refusal")
        #expect(calls(r, buffer.id) == ["create \(buffer.id)", "grant \(buffer.id) display 0+4096 read ok",
                                         "grant \(buffer.id) spy 0+4096 read denied", "revoke \(buffer.id) display 0+4096 read"])
    }

    /// A setting that does not parse refuses the module, rather than meaning "no limit".
    @Test(arguments: ["abc", "-1", "2x"])
    func aBadGrantLimitRefusesTheTestModule(text: String) throws {
        let r = try registry(["test.grant_limit": text])
        #expect(r.secureModules.isEmpty)
        let warning = try #require(r.warningLines.first)
        #expect(warning.hasSuffix("'test' open failed (Invalid argument): test.grant_limit: '\(text)' is not a number of grants (0, 1, 2...)"), "\(warning)")
    }

    @Test func partialGrantsAreRolledBackInReverse() throws {
        let r = try registry(["test.grant_limit": "2"])
        let buffer = try r.buffer(.bytes(8192))
        try buffer.markSecure(module: "test")
        for (name, usage) in [("decoder", Usage.videoDecode), ("display", .scanout), ("encoder", .videoEncode)] {
            try buffer.attach(device(name, usage))
        }
        #expect(throws: SMAFError.self) { try buffer.materialize() }
        let id = buffer.id
        #expect(calls(r, id).dropFirst() == ["grant \(id) decoder 0+8192 write ok", "grant \(id) display 0+8192 read ok",
                                             "grant \(id) encoder 0+8192 read denied",
                                             "revoke \(id) display 0+8192 read", "revoke \(id) decoder 0+8192 write"])
        #expect(buffer.securityLog.contains("grant encoder bytes 0..<8192 read: denied: test module grant limit 2 reached"))
    }

    @Test func cpuAccessIsAskedAndGrantedOnlyWhileMapped() throws {
        let r = try registry()
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        #expect(buffer.cpuAccessRefusal(.readWrite) == nil)
        try buffer.withCPUAccess(.write) { $0[0] = 1 }
        let id = buffer.id
        let log = calls(r, id)
        #expect(log.suffix(2) == ["grant \(id) cpu 0+4096 write ok", "revoke \(id) cpu 0+4096 write"])
    }

    @Test func aModuleDenyingCPUWritesGetsReadOnlyMemoryOrNone() throws {
        let r = try registry(["test.cpu": "read"])
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        #expect(buffer.cpuAccessRefusal(.write) == "test module allows the CPU read, not write")
        #expect(buffer.cpuAccessRefusal(.read) == nil)
        let e = #expect(throws: SMAFError.self) { try buffer.withCPUAccess(.write) { _ in } }
        #expect(e?.message == "map: secure module test denies CPU write access: test module allows the CPU read, not write")
        // On a host without dma-heaps nothing can hand out a read-only fd: memfd says why.
        let e2 = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e2?.message.contains("memfd: it cannot hand out read-only fds, which a secure module that denies CPU writes needs") == true, "\(e2?.message ?? "")")
    }

    /// Release revokes every grant, zeroes the memory, then destroys the
    /// context: an fd someone kept sees zeros, never the old contents.
    @Test func releaseRevokesScrubsThenDestroys() throws {
        let r = try registry()
        let buffer = try r.buffer(.bytes(1 << 16))
        try buffer.markSecure(module: "test")
        try buffer.attach(device("display", [.scanout]))
        let kept = try buffer.exportFD(for: "display")
        try buffer.withCPUAccess(.write) { bytes in bytes.initializeMemory(as: UInt8.self, repeating: 0x5a) }
        let id = buffer.id
        try buffer.release()
        let view = try Mapping(fd: kept.rawValue, length: 1 << 16, writable: false)
        #expect(view.bytes.allSatisfy { $0 == 0 }, "scrubbed")
        #expect(calls(r, id).suffix(2) == ["revoke \(id) display 0+65536 read", "destroy \(id)"])
        #expect(buffer.securityLog.suffix(3) == ["revoke display bytes 0..<65536 read", "scrub: zeroed 65536 bytes", "secure context destroyed"])
    }

    @Test func lateDevicesNeedAGrantToo() throws {
        let r = try registry(["test.deny": "spy"])
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        try buffer.materialize()
        try buffer.attach(device("display", [.scanout]))
        let e = #expect(throws: SMAFError.self) { try buffer.attach(device("spy", [.videoEncode])) }
        #expect(e?.kind == .accessDenied)
        #expect(buffer.devices.map(\.name) == ["display"])
    }

    // MARK: the policy module

    func rules(_ json: String) -> String {
        let path = NSTemporaryDirectory() + "smaf-rules-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
        return path
    }

    @Test func policyGrantsWhatTheRulesSayAndNothingElse() throws {
        let path = rules(#"{"default": "none", "cpu": "read_write", "devices": {"display": "read", "decoder": "read_write"}}"#)
        let r = try registry(["policy.rules": path], modules: ["policy"])
        let ok = try r.buffer(.bytes(4096))
        try ok.markSecure()
        try ok.attach(device("decoder", [.videoDecode]))
        try ok.attach(device("display", [.scanout]))
        _ = try ok.exportFD(for: "display")

        let bad = try r.buffer(.bytes(4096))
        try bad.markSecure(module: "policy")
        try bad.attach(device("display", [.scanout, .render]))
        let e = #expect(throws: SMAFError.self) { try bad.materialize() }
        #expect(e?.message == "secure module policy denies device display read-write access to bytes 0..<4096: \(path) allows display read (devices.display), not read-write")
        let stranger = try r.buffer(.bytes(4096))
        try stranger.markSecure()
        try stranger.attach(device("webcam", [.camera]))
        let e2 = #expect(throws: SMAFError.self) { try stranger.materialize() }
        #expect(e2?.message.hasSuffix("allows webcam none (default), not write") == true)
    }

    @Test(arguments: [
        (#"{"default": "all"}"#, "default: 'all' is not none, read, write or read_write"),
        (#"{"devices": {"display": "rw+"}}"#, "devices.display: 'rw+' is not none, read, write or read_write"),
        (#"{"allow": "everything"}"#, "unknown key 'allow' (known: default, cpu, drm, devices)"),
        (#"{"default": "none""#, "malformed JSON"),
        (#"{"devices": ["display"]}"#, "field 'devices': wrong type"),
    ])
    func badRulesFilesRefuseThePolicyModule(json: String, reason: String) throws {
        let path = rules(json)
        let r = try registry(["policy.rules": path], modules: ["policy"])
        #expect(r.secureModules.isEmpty, "a bad rules file never loads as allow-all")
        #expect(r.warningLines.count == 1)
        #expect(r.warningLines.first?.contains("'policy' open failed (Invalid argument): rules file \(path): \(reason)") == true,
                "\(r.warningLines)")
        let e = #expect(throws: SMAFError.self) { try r.buffer(.bytes(4096)).markSecure(module: "policy") }
        #expect(e?.message.contains("rules file \(path): \(reason)") == true)
    }

    /// A broken rules file refuses the policy module; the test module (rank
    /// none, it grants what its settings say) is never used in its place.
    @Test func aBrokenPolicyNeverFallsBackToTheTestModule() throws {
        let path = rules(#"{"default": "all"}"#)
        let r = try registry(["policy.rules": path], modules: ["policy", "test"])
        #expect(r.secureModules.map(\.name) == ["test"])
        let e = #expect(throws: SMAFError.self) { try r.buffer(.bytes(4096)).markSecure() }
        #expect(e?.kind == .accessDenied)
        #expect(e?.message.hasPrefix("secure: no secure module above rank none is loaded (test: used only when named)") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("rules file \(path): default: 'all' is not none, read, write or read_write") == true)
        // Named, it is used: that is what rank none means.
        try r.buffer(.bytes(4096)).markSecure(module: "test")

        // The CLI and the C API take the same path.
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = [TestSupport.shippedPlugin("memfd"), TestSupport.shippedPlugin("policy"), TestSupport.shippedPlugin("test")].joined(separator: ":")
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_POLICY_RULES"] = path
        let cli = try TestSupport.run(TestSupport.smafExecutable, ["alloc", "--size", "4K", "--secure"], environment: env)
        #expect(cli.status == 1)
        #expect(cli.stdout.isEmpty && cli.stderr.contains("smaf: error: secure: no secure module above rank none is loaded"), "\(cli.stderr)")
    }

    @Test func unreadableRulesFile() throws {
        let r = try registry(["policy.rules": "/nonexistent/rules.json"], modules: ["policy"])
        #expect(r.secureModules.isEmpty)
        #expect(r.warningLines.first?.hasSuffix("rules file /nonexistent/rules.json: open failed: No such file or directory (ENOENT)") == true, "\(r.warningLines)")
    }

    @Test func policyWithoutRulesRefusesEverySecureBuffer() throws {
        let r = try registry(modules: ["policy"])
        let e = #expect(throws: SMAFError.self) { try r.buffer(.bytes(4096)).markSecure() }
        #expect(e?.message == "secure module policy: create_context failed: no rules file: set policy.rules (SMAF_POLICY_RULES) or pass smaf alloc --policy FILE (EACCES)")
    }
}
