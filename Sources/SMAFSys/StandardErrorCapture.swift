import CSMAFSys
import Glibc

/// What a library call wrote on fd 2, taken aside so that it does not reach
/// the user as if smaf had said it. Mesa's loader does this on every
/// gbm_create_device for a device without a driver of its own (vgem, bochs):
/// "MESA-LOADER: failed to open vgem: ..." / "failed to load driver: vgem",
/// before it falls back to kms_swrast and succeeds.
///
/// fd 2 belongs to the whole process, so the window is kept short (one call)
/// and serialized by the one lock every image in the process shares: glibc's
/// lock on `stderr` (flockfile, recursive per thread). It also holds back
/// other threads' stdio output to stderr until fd 2 is restored, so that
/// output is delayed, not captured. What other threads write to fd 2 directly
/// during the window does land in the capture: smaf's own log lines (they
/// start "smaf: ") are told apart and `forward`ed to the real stderr, so they
/// are only reordered; anything else is taken for the call's, since Mesa's
/// messages follow no one pattern (measured in the VM: "MESA-LOADER: ...",
/// "failed to load driver: ...", "pci id for fd ...", "kmsro: driver
/// missing"). The trade-off: another library's raw write to fd 2 in that
/// window of one call ends up in smaf's debug log. The capture is a memfd,
/// not a pipe: a chatty call cannot fill it and block. Where the capture
/// cannot be set up (no fd 2, no memfd) the call runs as it is.
public enum StandardErrorCapture {
    /// The lines written on fd 2 while it was taken aside.
    public struct Output: Sendable {
        public var lines: [String]

        /// smaf's own log lines, from other threads: to be forwarded.
        public var smafs: [String] { lines.filter(Self.isSmafs) }
        /// The rest: what the call (Mesa) said.
        public var call: [String] { lines.filter { !Self.isSmafs($0) } }

        static func isSmafs(_ line: String) -> Bool { line.hasPrefix("smaf: ") }
    }

    /// Runs `body` with fd 2 pointed at a private memfd; returns its result
    /// and what was written there meanwhile. If `body` throws, what it wrote
    /// goes on to fd 2 as it would have.
    public static func capturing<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> (T, Output) {
        csmaf_stderr_lock()
        guard let sink = try? Memfd.create(name: "smaf-stderr-capture", size: 0) else {
            csmaf_stderr_unlock()
            return (try body(), Output(lines: []))
        }
        let saved = csmaf_dup_cloexec(2, 3)
        guard saved >= 0, dup2(sink.rawValue, 2) == 2 else {
            if saved >= 0 { close(saved) }
            csmaf_stderr_unlock()
            return (try body(), Output(lines: []))
        }
        let result: Result<T, E>
        do throws(E) { result = .success(try body()) } catch { result = .failure(error) }
        csmaf_stderr_flush() // what the call left in stdio's stderr buffer belongs to the capture
        _ = dup2(saved, 2)
        close(saved)
        csmaf_stderr_unlock()
        let output = Output(lines: read(sink.rawValue))
        switch result {
        case .success(let value): return (value, output)
        case .failure(let error):
            // No caller left to read it: back where it was going.
            forward(output.lines)
            throw error
        }
    }

    /// Writes lines that were not the captured call's back to fd 2, as they came.
    public static func forward(_ lines: [String]) {
        for line in lines { writeStandardError(line) }
    }

    /// The capture's lines, at most 64 KiB of them (a call that says more is not describing one failure).
    private static func read(_ fd: Int32) -> [String] {
        let end = lseek(fd, 0, SEEK_END)
        guard end > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(min(end, 64 << 10)))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return [] }
        return String(decoding: bytes[0..<n], as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
