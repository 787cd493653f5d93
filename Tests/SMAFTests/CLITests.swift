import Foundation
import Testing

/// The CLI as a user meets it: bad input gives one clear line on stderr and
/// a non-zero exit, never a trap or a stack trace.
@Suite struct CLITests {
    func smaf(_ args: String..., env: [String: String] = [:]) throws -> TestSupport.RunResult {
        try smaf(args, env: env)
    }

    func smaf(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.RunResult {
        var environment = ProcessInfo.processInfo.environment
        // Only the memfd plugin, so the expected text does not change as plugins land.
        environment["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("memfd")
        environment["SMAF_DEFAULT_PLUGINS"] = "0"
        environment["SMAF_RANKS"] = nil
        for (k, v) in env { environment[k] = v }
        return try TestSupport.run(TestSupport.smafExecutable, args, environment: environment)
    }

    @Test(arguments: [
        (["alloc", "--size", "0"], "smaf: error: size: a buffer of 0 bytes cannot be allocated"),
        (["alloc", "--size", "99999999999999999999"], "smaf: error: size: '99999999999999999999' is not a size (examples: 4096, 64K, 8M, 1G)"),
        (["alloc", "--size", "16777216T"], "smaf: error: size: '16777216T' is not a size (examples: 4096, 64K, 8M, 1G)"),
        (["alloc", "--size", "18446744073709551615"], "smaf: error: size: 18446744073709551615 bytes is more than any allocator can address"),
        (["alloc", "--width", "4294967295", "--height", "4294967295", "--format", "AB4H"], "smaf: error: image: 4294967295x4294967295 ABGR16161616F (pitch 34359738360 x height 4294967295) overflows 64 bits"),
        (["alloc", "--width", "64", "--height", "64", "--format", "QQ42"], "smaf: error: format: 'QQ42' is not a known DRM format (examples: XR24, XRGB8888, NV12)"),
        (["alloc", "--size", "4K", "--allocator", "nope"], "smaf: error: allocator: no allocator named 'nope' is loaded (known: memfd)"),
        (["alloc", "--size", "4K", "--device", "/nonexistent.json"], "smaf: error: device descriptor /nonexistent.json: open failed: No such file or directory (ENOENT)"),
        (["alloc", "--width", "64", "--height", "64", "--format", "XR24", "--modifier", "TILED"], "smaf: error: modifier: 'TILED' is not LINEAR, INVALID or a number"),
    ])
    func badInput(args: [String], expected: String) throws {
        let r = try smaf(args)
        #expect(r.status == 1)
        #expect(r.stderr == expected + "\n")
        #expect(r.stdout.isEmpty)
    }

    /// `smaf bench` runs the smaf-bench beside smaf; where there is none,
    /// it says so in one line instead of running anything else.
    @Test func benchWithoutItsHarnessSaysWhere() throws {
        // A hard link in the build's own file system, not a copy: a copy being
        // written while another test forks could fail the exec with ETXTBSY.
        let dir = "\(TestSupport.packageRoot)/.build/smaf-alone-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #require(link(TestSupport.smafExecutable, "\(dir)/smaf") == 0, "link: \(String(cString: strerror(errno)))")
        let r = try TestSupport.run("\(dir)/smaf", ["bench", "--iterations", "1"])
        #expect(r.status == 1)
        #expect(r.stderr == "smaf: error: bench: cannot run \(dir)/smaf-bench: No such file or directory (smaf-bench is built and installed next to smaf)\n")
        #expect(r.stdout.isEmpty)
    }

    @Test func malformedAndContradictoryDescriptors() throws {
        let dir = NSTemporaryDirectory()
        let bad = dir + "smaf-cli-bad-\(getpid()).json"
        try #"{"name": "x", "formats": [{"format": "XR24"}], "max_widht": 3}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        let r1 = try smaf("alloc", "--size", "4K", "--device", bad)
        #expect(r1.status == 1)
        #expect(r1.stderr.hasPrefix("smaf: error: \(bad): field 'max_widht': unknown key 'max_widht'"))
        let examples = "\(TestSupport.packageRoot)/examples/devices"
        let r2 = try smaf("alloc", "--width", "64", "--height", "64", "--format", "XR24",
                          "--device", "\(examples)/display-plane.json", "--device", "\(examples)/camera-isp.json")
        #expect(r2.status == 1)
        #expect(r2.stderr == "smaf: error: no format all devices accept: device display-plane accepts XR24, AR24; device camera-isp accepts NV12, YUYV\n")
        let r3 = try smaf("alloc", "--size", "4K", "--device", "\(examples)/secure-sink.json", "--device", "\(examples)/cpu-writer.json")
        #expect(r3.status == 1)
        #expect(r3.stderr == "smaf: error: device cpu-writer needs CPU access but device secure-sink requires a secure buffer the CPU may not map\n")
    }

    @Test func argumentMistakesShowUsage() throws {
        let r = try smaf("alloc", "--size", "4K", "--width", "3")
        #expect(r.status != 0)
        #expect(r.stderr.contains("give --size or --width/--height/--format, not both"))
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test func execHandsTheBufferOnAsFd3() throws {
        let r = try smaf("alloc", "--width", "320", "--height", "240", "--format", "XR24", "--exec", "--",
                         "/bin/sh", "-c", "test -e /proc/self/fd/3 && echo \"$SMAF_FD $SMAF_SIZE $SMAF_FORMAT $SMAF_WIDTH $SMAF_HEIGHT $SMAF_PLANES $SMAF_MODIFIER\"; exit 5")
        #expect(r.status == 5, "smaf exits with the command's status")
        #expect(r.stdout.contains("3 307200 XR24 320 240 0:1280 0x0\n"), "\(r.stdout)")
    }

    @Test func listAndAllocSpeakJSON() throws {
        let list = try smaf("list", "--json", env: ["SMAF_RANKS": "memfd:77"])
        #expect(list.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
        let plugins = json?["plugins"] as? [[String: Any]]
        #expect(plugins?.first?["name"] as? String == "memfd")
        #expect(plugins?.first?["rank"] as? Int == 77)
        #expect(plugins?.first?["rank_source"] as? String == "SMAF_RANKS")
        let alloc = try smaf("alloc", "--size", "8M", "--json", "--explain")
        #expect(alloc.status == 0)
        let a = try JSONSerialization.jsonObject(with: Data(alloc.stdout.utf8)) as? [String: Any]
        #expect((a?["allocation"] as? [String: Any])?["size"] as? Int == 8 << 20)
        #expect(((a?["explanation"] as? [String: Any])?["entries"] as? [Any])?.count == 1)
    }

    @Test func badEnvironmentIsOneLine() throws {
        let r = try smaf("list", env: ["SMAF_RANKS": "memfd"])
        #expect(r.status == 1)
        #expect(r.stderr == "smaf: error: SMAF_RANKS: rank entry 'memfd' is not NAME:RANK (RANK: primary, secondary, marginal, none or a number >= 0)\n")
    }
}
