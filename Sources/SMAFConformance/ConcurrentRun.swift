import Glibc
import SMAF
import Synchronization

/// Runs `body(i, together)` on `count` new threads that start together, and
/// waits for all. `together()` is a barrier: it returns once every running
/// thread has called it (as often), so the threads can go in rounds.
enum ConcurrentRun {
    /// Threads wait here until every thread that could be created has arrived;
    /// from then on `expected` is the number of threads running.
    private final class Gate: Sendable {
        let arrived = Atomic<Int>(0)
        let expected: Atomic<Int>
        init(_ expected: Int) { self.expected = Atomic(expected) }
    }

    /// A reusable barrier for the threads behind `gate`: the last to arrive
    /// resets the count, then opens the round by bumping the generation.
    private final class Rounds: Sendable {
        let gate: Gate
        let arrived = Atomic<Int>(0)
        let generation = Atomic<Int>(0)
        init(_ gate: Gate) { self.gate = gate }

        func together() {
            let round = generation.load(ordering: .sequentiallyConsistent)
            if arrived.add(1, ordering: .sequentiallyConsistent).newValue == gate.expected.load(ordering: .sequentiallyConsistent) {
                arrived.store(0, ordering: .sequentiallyConsistent)
                generation.add(1, ordering: .sequentiallyConsistent)
                return
            }
            while generation.load(ordering: .sequentiallyConsistent) == round { sched_yield() }
        }
    }

    private final class Job: Sendable {
        let body: @Sendable (Int, () -> Void) -> Void
        let index: Int
        let rounds: Rounds
        init(_ body: @escaping @Sendable (Int, () -> Void) -> Void, _ index: Int, _ rounds: Rounds) {
            self.body = body
            self.index = index
            self.rounds = rounds
        }

        func run() {
            let gate = rounds.gate
            gate.arrived.add(1, ordering: .sequentiallyConsistent)
            while gate.arrived.load(ordering: .sequentiallyConsistent) < gate.expected.load(ordering: .sequentiallyConsistent) {
                sched_yield()
            }
            body(index, rounds.together)
        }
    }

    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int, () -> Void) -> Void) {
        let rounds = Rounds(Gate(count))
        var threads: [pthread_t] = []
        var leftOver: [Int] = []
        for i in 0..<count {
            let job = Unmanaged.passRetained(Job(body, i, rounds)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            }, job)
            if rc == 0 {
                threads.append(thread)
            } else {
                Unmanaged<Job>.fromOpaque(job).release()
                rounds.gate.expected.subtract(1, ordering: .sequentiallyConsistent)
                leftOver.append(i)
            }
        }
        for thread in threads { pthread_join(thread, nil) }
        // No thread to be had (a limit): still run the work, one after another, alone in every round.
        for i in leftOver { body(i, {}) }
    }
}
