import Foundation
import SMAF
import SMAFSys
import SystemPackage
import Testing

/// Files a user names (descriptors, the config file, policy rules) that are
/// not what they claim: a device that never ends, a FIFO nobody writes, a
/// folder, a file too big. Each is one line and a quick exit. The CLI runs
/// under a 2 GiB address-space cap and a 20 s timeout (then SIGKILL: a child
/// of the test process can inherit SIGTERM blocked), so the code before
/// the fix (which read /dev/zero until it died and hung on a FIFO) fails
/// these tests instead of taking the machine down.
@Suite struct HostileFileTests {
    static let folder: String = {
        let dir = NSTemporaryDirectory() + "smaf-hostile-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// A FIFO that nobody ever opens for writing.
    static let fifo: String = {
        let path = folder + "/fifo.json"
        _ = mkfifo(path, 0o600)
        return path
    }()

    /// A regular file one byte over the 4 MiB limit.
    static let oversized: String = {
        let path = folder + "/big.json"
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x20, count: InputFile.maximumSize + 1))
        return path
    }()

    /// `smaf args` with only memfd (and policy) loaded, bounded in memory and time.
    func smaf(_ args: [String], env: [String: String] = [:]) throws -> TestSupport.RunResult {
        var environment = ProcessInfo.processInfo.environment
        environment["SMAF_PLUGIN_PATH"] = [TestSupport.shippedPlugin("memfd"), TestSupport.shippedPlugin("policy")].joined(separator: ":")
        environment["SMAF_DEFAULT_PLUGINS"] = "0"
        environment["SMAF_CONFIG"] = nil
        for (k, v) in env { environment[k] = v }
        let quoted = ([TestSupport.smafExecutable] + args).map { "'\($0)'" }.joined(separator: " ")
        return try TestSupport.run("/bin/sh", ["-c", "ulimit -v 2097152; exec timeout -k 5 20 \(quoted)"], environment: environment)
    }

    func expectOneLine(_ r: TestSupport.RunResult, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr == "smaf: error: \(expected)\n", sourceLocation: sourceLocation)
    }

    @Test func descriptorsThatAreNotRegularFiles() throws {
        expectOneLine(try smaf(["alloc", "--size", "4K", "--device", "/dev/zero"]),
                      "device descriptor /dev/zero: not a regular file (a character device)")
        expectOneLine(try smaf(["alloc", "--size", "4K", "--device", Self.fifo]),
                      "device descriptor \(Self.fifo): not a regular file (a FIFO)")
        expectOneLine(try smaf(["alloc", "--size", "4K", "--device", Self.folder]),
                      "device descriptor \(Self.folder): not a regular file (a directory)")
        expectOneLine(try smaf(["alloc", "--size", "4K", "--device", Self.oversized]),
                      "device descriptor \(Self.oversized): larger than the 4194304 bytes a device descriptor may have")
    }

    @Test func configFilesThatAreNotRegularFiles() throws {
        expectOneLine(try smaf(["list"], env: ["SMAF_CONFIG": "/dev/zero"]), "config file /dev/zero: not a regular file (a character device)")
        expectOneLine(try smaf(["list"], env: ["SMAF_CONFIG": Self.fifo]), "config file \(Self.fifo): not a regular file (a FIFO)")
        expectOneLine(try smaf(["list"], env: ["SMAF_CONFIG": Self.oversized]),
                      "config file \(Self.oversized): larger than the 4194304 bytes a config file may have")
    }

    @Test func rulesFilesThatAreNotRegularFiles() throws {
        for (path, reason) in [("/dev/zero", "not a regular file (a character device)"), (Self.fifo, "not a regular file (a FIFO)"),
                               (Self.oversized, "larger than the 4194304 bytes a rules file may have")] {
            let r = try smaf(["alloc", "--size", "4K", "--policy", path])
            #expect(r.status == 1, "exit \(r.status) for \(path): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.allSatisfy { $0.hasPrefix("smaf: ") }, "\(r.stderr)")
            #expect(lines.last?.hasPrefix("smaf: error: ") == true, "\(r.stderr)")
            #expect(r.stderr.contains("rules file \(path): \(reason)"), "\(r.stderr)")
        }
    }

    @Test func theReaderStopsAtItsLimitOnAFileThatGrows() throws {
        // /proc/self/status is a regular file that reports size 0: the reader
        // must not trust st_size and must still stop at the limit.
        let small = try InputFile.read("/proc/self/status", maxBytes: 1 << 20, what: "test file")
        #expect(String(decoding: small, as: UTF8.self).hasPrefix("Name:"))
        let e = #expect(throws: InputFileError.self) { try InputFile.read("/proc/self/status", maxBytes: 16, what: "test file") }
        #expect(e?.description == "test file /proc/self/status: larger than the 16 bytes a test file may have")
    }

    @Test func kernelTextFilesAreBounded() throws {
        let e = #expect(throws: SystemError.self) { try readTextFile("/dev/zero") }
        #expect(e?.errno == .fileTooLarge)
        #expect(try readTextFile("/proc/self/status").hasPrefix("Name:"))
    }

    /// Counted in a child process, where no other test opens fds meanwhile.
    @Test func aFailedReadLeaksNoDescriptor() async {
        await #expect(processExitsWith: .success) {
            let paths = ["/dev/zero", HostileFileTests.fifo, HostileFileTests.folder, HostileFileTests.oversized, "/nonexistent"]
            let before = TestSupport.openFDs()
            for path in paths {
                _ = try? InputFile.read(path, what: "test file")
                _ = try? DeviceConstraints.load(path: path)
            }
            #expect(TestSupport.openFDs() == before)
        }
    }
}

/// An errno a plugin's message already names is not named again
/// (`Too many open files (EMFILE) (EMFILE)`); the VM test makes a real one.
@Suite struct ErrnoTextTests {
    @Test func anErrnoIsNamedOnce() {
        let e = Errno(rawValue: EMFILE)
        let plugin = SystemError("memfd_create", e).description
        #expect(e.appended(to: plugin) == "memfd_create failed: Too many open files (EMFILE)")
        #expect(e.appended(to: "pool exhausted") == "pool exhausted (EMFILE)")
    }
}
