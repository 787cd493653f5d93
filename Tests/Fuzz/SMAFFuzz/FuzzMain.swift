import CSMAFFuzz
import Glibc
import SMAFSys

/// The fuzz target for descriptors, policy rules and the config file
/// (Tests/Fuzz/README.md). Built normally it replays the corpus plus a fixed
/// number of seeded mutations of each file (`scripts/test` runs it through
/// FuzzTests); built with `-sanitize=fuzzer` it is a libFuzzer target and
/// takes libFuzzer's arguments.
///
///     smaf-fuzz [--mutants N] [--seed S] CORPUS_FOLDER...
@main
struct FuzzMain {
    static func main() {
        if csmaf_fuzz_has_libfuzzer() != 0 { exit(runLibFuzzer()) }
        var mutants = 200, seed: UInt64 = 1, folders: [String] = []
        var args = CommandLine.arguments.dropFirst()
        while let arg = args.popFirst() {
            switch arg {
            case "--mutants": mutants = args.popFirst().flatMap { Int($0) } ?? mutants
            case "--seed": seed = args.popFirst().flatMap { UInt64($0) } ?? seed
            default: folders.append(arg)
            }
        }
        exit(runSeeded(folders: folders, mutants: mutants, seed: seed))
    }

    /// libFuzzer calls this for every input; a broken property aborts, which
    /// libFuzzer records as a crash with the input that caused it.
    static let callback: csmaf_fuzz_callback = { data, size in
        let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
        var tally = Properties.Tally()
        Properties.check(bytes, into: &tally)
        if let first = tally.broken.first {
            writeStandardError("smaf-fuzz: property broken: \(DisplayText.escaped(first))")
            abort()
        }
        return 0
    }

    static func runLibFuzzer() -> Int32 {
        var argc = Int32(CommandLine.argc)
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        return csmaf_fuzz_run_libfuzzer(&argc, &argv, callback)
    }

    static func runSeeded(folders: [String], mutants: Int, seed: UInt64) -> Int32 {
        var seeds: [[UInt8]] = []
        for folder in folders {
            guard let names = try? Directory.entries(folder) else {
                writeStandardError("smaf-fuzz: error: cannot list \(DisplayText.escaped(folder))")
                return 2
            }
            for name in names {
                guard let bytes = try? InputFile.read("\(folder)/\(name)", what: "corpus file") else { continue }
                seeds.append(bytes)
            }
        }
        guard !seeds.isEmpty else {
            writeStandardError("smaf-fuzz: error: no corpus files (usage: smaf-fuzz [--mutants N] [--seed S] CORPUS_FOLDER...)")
            return 2
        }
        var rng = SplitMix64(seed: seed)
        var tally = Properties.Tally()
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        for input in seeds {
            Properties.check(input, into: &tally)
            for _ in 0..<mutants {
                Properties.check(Mutator.mutant(of: input, others: seeds, rng: &rng), into: &tally)
            }
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        print("smaf-fuzz: \(tally.inputs) inputs (\(seeds.count) corpus files, \(mutants) mutants each, seed \(seed)): "
              + "\(tally.descriptors) read as descriptors, \(tally.rules) as rules, \(tally.configs) as config files; "
              + "\(tally.broken.count) properties broken; max RSS \(usage.ru_maxrss / 1024) MiB; \(String(format: seconds)) s")
        for problem in tally.broken.prefix(20) { print("broken: \(DisplayText.escaped(problem))") }
        return tally.broken.isEmpty ? 0 : 1
    }
}

private extension String {
    /// Two decimals without Foundation.
    init(format seconds: Double) {
        let hundredths = Int((seconds * 100).rounded())
        self = "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}

/// libFuzzer's entry point: with -sanitize=fuzzer the linker may take
/// libFuzzer's own main(), which calls this for every input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzMain.callback(data, size)
}
