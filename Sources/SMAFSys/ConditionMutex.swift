import Glibc

/// A mutex over a value, with a condition to wait on: what
/// `Synchronization.Mutex` lacks. Built on pthread so ThreadSanitizer sees
/// every edge. Waiters are woken by `withLock` itself whenever a body
/// returns, so callers never forget a signal.
public final class ConditionMutex<State: ~Copyable>: @unchecked Sendable {
    // @unchecked: `state` is only touched with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var state: State

    public init(_ state: consuming State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the state locked, then wakes every waiter (the
    /// body may have changed what they wait for).
    public func withLock<R: ~Copyable, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return try body(&state)
    }

    /// Waits, with the lock released meanwhile, until `ready` holds, then
    /// runs `body` with the state locked (and wakes the other waiters).
    public func withLock<R: ~Copyable, E: Error>(when ready: (borrowing State) -> Bool,
                                                  _ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        while !ready(state) { pthread_cond_wait(condition, mutex) }
        return try body(&state)
    }
}
