import Foundation
import SMAF
import SMAFSys
import Synchronization

/// Paths and helpers shared by the host tests.
enum TestSupport {
    /// The package root, found from this file's path.
    static let packageRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3) // Tests/SMAFTests/Support.swift
        return parts.joined(separator: "/")
    }()

    /// The folder the test bundle runs from: SwiftPM puts the shipped plugin
    /// libraries and the smaf executable there.
    static let buildDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }()

    static func shippedPlugin(_ name: String) -> String { "\(buildDirectory)/libsmafplugin_\(name).so" }

    /// The fds open in this process that smaf could have opened, for leak
    /// checks (run in an exit test's child, where no other test opens any):
    /// /proc/self/fd less the event plumbing the test runtime opens when it
    /// pleases (libdispatch's epoll, eventfd and timerfd: measured, a timerfd
    /// appears in the child mid-test under load), which smaf never uses.
    static func openFDs() -> Int {
        let runtime: Set<String> = ["anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]"]
        guard let names = try? Directory.entries("/proc/self/fd") else { return -1 }
        var link = [CChar](repeating: 0, count: 256)
        // The listing's own directory fd is closed again by now: its entry no longer resolves.
        return names.filter { name in
            let n = readlink("/proc/self/fd/\(name)", &link, link.count - 1)
            guard n > 0 else { return false }
            return !runtime.contains(String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }.count
    }
    static var smafExecutable: String { "\(buildDirectory)/smaf" }

    /// A registry loading exactly these plugin files (no default folders).
    static func registry(_ paths: [String], ranks: String? = nil, settings: [String: String] = [:]) throws -> AllocatorRegistry {
        var c = Configuration.only(pluginPaths: paths)
        if let ranks { c.rankOverrides = [try RankOverrides(parsing: ranks, source: "test")] }
        c.settings = settings
        c.logLevel = .error
        return AllocatorRegistry(configuration: c)
    }

    private static let built = Mutex<[String: String]>([:])
    static var fixtureDirectory: String { fixtureDir }
    private static let fixtureBuilds = Mutex(())
    private static let fixtureDir: String = {
        let dir = NSTemporaryDirectory() + "smaf-fixtures-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Compiles Tests/Fixtures/`source` (the allocator fixture_plugin.c, or
    /// fixture_secure.c) with `defines` into a .so (once per set of defines
    /// per test run) and returns its path.
    /// `headers`: the plugin.h folder to build against (default the live one;
    /// `frozenABI1_0` for Tests/Fixtures/abi-v1).
    static func fixture(_ defines: [String: String], source: String = "fixture_plugin.c", headers: String? = nil) throws -> String {
        let include = headers ?? "\(packageRoot)/Sources/CSMAFPlugin/include"
        let key = source + ":" + include + ":" + defines.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        // One build at a time: two tests asking for the same fixture at once
        // must not both write its .so while one of them already loads it.
        return try fixtureBuilds.withLock { _ in
            if let path = built.withLock({ $0[key] }) { return path }
            let path = "\(fixtureDir)/fixture-\(abs(key.hashValue)).so"
            var args = ["-shared", "-fPIC", "-Wall", "-Werror", "-o", path + ".tmp",
                        "-I", include,
                        "\(packageRoot)/Tests/Fixtures/\(source)"]
            for (k, v) in defines { args.append(v.isEmpty ? "-D\(k)" : "-D\(k)=\(v)") }
            let result = try run("/usr/bin/cc", args)
            guard result.status == 0, rename(path + ".tmp", path) == 0 else { throw FixtureError(message: "cc failed: \(result.stderr)") }
            built.withLock { $0[key] = path }
            return path
        }
    }

    /// The frozen ABI 1.0 header's folder.
    static var frozenABI1_0: String { "\(packageRoot)/Tests/Fixtures/abi-v1" }

    /// A fixture plugin named `name` with rank `rank` and extra switches.
    static func fixture(name: String, rank: Int = 100, _ switches: String...) throws -> String {
        var d = ["FIXTURE_NAME": "\"\(name)\"", "FIXTURE_RANK": "\(rank)"]
        for s in switches { d[s] = "" }
        return try fixture(d)
    }

    struct FixtureError: Error { var message: String }

    struct RunResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Copies an executable the test then runs. The copy is written through
    /// an O_CLOEXEC fd: FileManager's copy leaves its fd inheritable, and a
    /// program another test spawns meanwhile would keep it open for writing,
    /// so exec'ing the copy would fail with ETXTBSY (seen under `swift test`).
    static func copyExecutable(_ source: String, to destination: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source)))
        let fd = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw FixtureError(message: "create \(destination): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FixtureError(message: "write \(destination): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Runs a program to completion, capturing its output in temporary
    /// files (not pipes: Foundation closes pipe fds lazily, which would move
    /// the fd counts the leak tests compare).
    static func run(_ program: String, _ args: [String], environment: [String: String]? = nil) throws -> RunResult {
        let base = NSTemporaryDirectory() + "smaf-run-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let outPath = base + ".out", errPath = base + ".err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let env = environment ?? ProcessInfo.processInfo.environment
        let cArgs = ([program] + args).map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, program, &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw FixtureError(message: "spawn \(program): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return RunResult(status: exit, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}


extension AllocatorRegistry {
    /// The loader's refusals as the lines `smaf list` prints.
    var warningLines: [String] { loadWarnings.map(\.description) }
}
