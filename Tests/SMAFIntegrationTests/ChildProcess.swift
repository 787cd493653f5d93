import Glibc
import SMAFSys

extension KernelTestBed {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program to completion with `environment` (default: this
    /// process's), its stdout and stderr each captured in a memfd (no pipes
    /// to drain, no temporary files), and returns both with the exit status
    /// (128 + signal for a killed one).
    static func execute(_ program: String, _ args: [String], environment: [String: String]? = nil) throws -> Output {
        let out = try Memfd.create(name: "smaf-test-stdout", size: 0), err = try Memfd.create(name: "smaf-test-stderr", size: 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, err.rawValue, 2)
        let argv = ([program] + args).map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { (argv + (envp ?? [])).forEach { free($0) } }
        var pid = pid_t()
        let rc = envp.map { posix_spawn(&pid, program, &actions, nil, argv, $0) } ?? posix_spawn(&pid, program, &actions, nil, argv, environ)
        guard rc == 0 else { throw TestBedError(message: "cannot run \(program): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Output(status: status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f),
                      stdout: contents(out.rawValue), stderr: contents(err.rawValue))
    }

    /// Runs a program (a libdrm tool, say) and returns its stdout; its
    /// stderr goes on to this process's, where a test log shows it.
    static func run(_ program: String, _ args: [String]) throws -> String {
        let output = try execute(program, args)
        if !output.stderr.isEmpty { writeStandardError(String(output.stderr.dropLast(output.stderr.hasSuffix("\n") ? 1 : 0))) }
        return output.stdout
    }

    /// This process's environment without the SMAF_* settings, so a child
    /// smaf runs with its defaults (plugins next to the executable).
    static var environmentWithoutSMAF: [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "="), !text.hasPrefix("SMAF_") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return env
    }

    private static func contents(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
            offset += off_t(n)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
