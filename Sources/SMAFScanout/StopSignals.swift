import CSMAFSys
import Glibc
import SMAF
import SMAFSys

/// SIGINT and SIGTERM as a readable fd (signalfd): a display loop polls it
/// next to the DRM fd, so a stop request ends the loop and the display is
/// restored on the main path, with no work in a signal handler.
///
/// The signals are blocked for the calling thread. Create this on the main
/// thread before starting others (they inherit the mask); a thread that
/// leaves them unblocked would take the default action and kill the process.
public final class StopSignals {
    private let descriptor: UniqueFD
    private var previousMask = sigset_t()
    public let signals: [Int32]

    public init(_ signals: [Int32] = [SIGINT, SIGTERM]) throws(SMAFError) {
        self.signals = signals
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        let rc = pthread_sigmask(SIG_BLOCK, &set, &previousMask)
        guard rc == 0 else { throw .system(SystemError("pthread_sigmask(SIG_BLOCK)", .init(rawValue: rc))) }
        let fd = csmaf_signalfd(&set)
        guard fd >= 0 else {
            let error = SystemError.current("signalfd")
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
            throw .system(error)
        }
        descriptor = UniqueFD(adopting: fd)
    }

    /// Readable when a stop signal is pending; poll it, then call `received()`.
    public var fd: Int32 { descriptor.rawValue }

    /// The pending stop signal, consumed; nil if none.
    public func received() -> Int32? {
        let signal = csmaf_signalfd_read(descriptor.rawValue)
        return signal > 0 ? signal : nil
    }

    /// Waits up to `seconds` (nil: forever) for a stop signal.
    public func wait(seconds: Double?) -> Int32? {
        let deadline = seconds.map { monotonicSeconds() + $0 }
        while true {
            var p = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            let timeout = deadline.map { Int32(clamping: Int64(max(0, ($0 - monotonicSeconds()) * 1000).rounded(.up))) } ?? -1
            let n = poll(&p, 1, timeout)
            if n > 0, let s = received() { return s }
            if n == 0, let deadline, monotonicSeconds() >= deadline { return nil }
            // Only EINTR is expected; anything else would spin, so stop waiting.
            if n < 0 && errno != EINTR { return nil }
        }
    }

    deinit {
        // Signals that came in and were not consumed would be delivered on
        // unblocking; they were stop requests, and the stop has happened.
        while received() != nil {}
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }

    /// `SIGTERM` for 15.
    public static func name(_ signal: Int32) -> String {
        [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT"][signal] ?? "signal \(signal)"
    }
}
