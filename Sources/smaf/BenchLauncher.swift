import ArgumentParser
import Glibc
import SMAFCommandLine

/// `smaf bench`: listed here, run by smaf-bench. SMAFCommand.main hands
/// every `smaf bench ...` command line to smaf-bench before parsing, so
/// `smaf bench --help` prints the harness's own options; this type only
/// names the subcommand in smaf's help.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare allocators on this machine and measure what the framework costs over the raw syscalls.",
        discussion: """
        Runs smaf-bench, installed next to smaf, with the same arguments: the \
        harness links the raw baselines (libdrm and GBM), which smaf itself does \
        not. `smaf bench --help` lists its options; docs/BENCHMARKS.md has the method.
        """
    )

    @Argument(parsing: .captureForPassthrough, help: "smaf-bench's options (smaf bench --help).")
    var arguments: [String] = []

    func run() throws { BenchLauncher.exec(arguments) }
}

/// Where smaf-bench is and how smaf runs it: from this executable's own
/// folder (the build folder, or PREFIX/bin once installed), never from PATH,
/// so `smaf bench` measures the smaf it was run as.
enum BenchLauncher {
    static var path: String {
        let exe = Origin.executable ?? "/usr/local/bin/smaf"
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/smaf-bench"
    }

    /// Replaces this process with `smaf-bench ARGUMENTS`: its output, exit status and signals are smaf bench's.
    static func exec(_ arguments: [String]) -> Never {
        let argv = (["smaf-bench"] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        let err = errno // before anything else can change it
        failCommand("bench: cannot run \(path): \(String(cString: strerror(err))) (smaf-bench is built and installed next to smaf)")
    }

    /// Runs `smaf-bench ARGUMENTS` with its output on ours and waits: the demo's benchmark teaser.
    static func run(_ arguments: [String]) throws {
        fflush(nil) // what smaf printed so far comes before what smaf-bench prints
        let status = try spawnAndWait([path] + arguments, environment: nil)
        guard status == 0 else { throw CommandFailure(message: "benchmark: \(path) ended with status \(status)") }
    }
}
