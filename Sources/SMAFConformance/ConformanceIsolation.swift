import CSMAFSys
import Foundation
import Glibc
import SMAF

/// Runs a conformance run's plugin calls in a forked child, so that what a
/// plugin does to its process (a SIGSEGV, an abort, an exit, a hang) ends
/// the child, not the checker. The child sends each event as one JSON line
/// through a pipe; the parent hands them on as they arrive and, when the
/// child ends early, says how.
enum ConformanceIsolation {
    /// Silence longer than this, with the child alive, counts as a hang.
    static let silenceLimit: Int32 = 600

    private enum Line: Codable {
        case event(Conformance.ConformanceEvent)
        case finished
    }

    /// Runs `body` in a child; `receive` gets every event it emits, in
    /// order. Returns nil when the child got to the end, else how it ended:
    /// "crashed with SIGSEGV (Segmentation fault)", "ended the process (exit status 3)",
    /// "gave no sign of life for 600 s (killed)".
    static func run(_ body: (_ emit: (Conformance.ConformanceEvent) -> Void) -> Void,
                    receive: (Conformance.ConformanceEvent) -> Void) -> String? {
        var ends: [Int32] = [-1, -1]
        guard csmaf_pipe_cloexec(&ends) == 0 else {
            return "could not be isolated: pipe failed: \(String(cString: strerror(errno)))"
        }
        fflush(nil) // what the parent printed must not be printed again by the child
        let pid = fork()
        if pid == 0 {
            close(ends[0])
            // A crash is the plugin's, reported by the parent as one line: no
            // runtime backtrace of the checker (gdb on the plugin shows where).
            for signal in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP] { Glibc.signal(signal, SIG_DFL) }
            let out = ends[1]
            func send(_ line: Line) {
                guard var bytes = try? JSONEncoder().encode(line) else { return }
                bytes.append(0x0a)
                bytes.withUnsafeBytes { writeAll(out, $0) }
            }
            body { send(.event($0)) }
            send(.finished)
            _exit(0)
        }
        close(ends[1])
        defer { close(ends[0]) }
        guard pid > 0 else { return "could not be isolated: fork failed: \(String(cString: strerror(errno)))" }

        var finished = false
        var pending: [UInt8] = []
        var hung = false
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        reading: while true {
            var poller = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, silenceLimit * 1000)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { hung = true; kill(pid, SIGKILL); break }
            let n = chunk.withUnsafeMutableBytes { read(ends[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += chunk[0..<n]
            while let newline = pending.firstIndex(of: 0x0a) {
                let line = Data(pending[..<newline])
                pending.removeSubrange(...newline)
                switch try? JSONDecoder().decode(Line.self, from: line) {
                case .event(let event): receive(event)
                case .finished: finished = true; break reading
                case nil: continue
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if hung { return "gave no sign of life for \(silenceLimit) s (killed)" }
        if finished { return nil }
        let signal = status & 0x7f
        if signal != 0 {
            let abbrev = csmaf_signal_abbrev(signal).map { "SIG" + String(cString: $0) } ?? "signal \(signal)"
            return "crashed with \(abbrev) (\(String(cString: strsignal(signal))))"
        }
        return "ended the process (exit status \((status >> 8) & 0xff))"
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue } else { return } }
            offset += n
        }
    }
}
