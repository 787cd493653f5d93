// The cost of choosing an allocator: AllocatorRegistry.choose (the match()
// walk in rank order, nothing allocated) among N allocators for M attached
// devices. The allocators are the C fixture plugin (Tests/Fixtures), built
// here with cc: N - 1 that refuse (ranked first, so every one is asked) and
// one that accepts, the worst case of a walk. The devices carry formats,
// modifiers and alignments, so merging them has real work to do.
//
//   cd Benchmarks && swift package benchmark --target Selection
//
// The headline: 6 allocators x 4 devices, median wall clock and mallocs per
// choose() (scalingFactor .kilo: 1,000 calls per measured iteration, the
// figures are per call), with the devices merged in the call and already
// attached (merged once, as a buffer holds them).
import Benchmark
import Glibc
import SMAF

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 200
    )

    Benchmark("choose: 6 allocators x 4 devices") { benchmark in
        let (registry, devices) = try Fixtures.shared.setup(allocators: 6, devices: 4)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try registry.choose(Fixtures.request, devices: devices))
        }
    }

    // The same once the devices are attached (merged), as a buffer holds
    // them when it gets its memory: the walk alone.
    Benchmark("choose: 6 allocators x 4 attached devices (merged)") { benchmark in
        let (registry, devices) = try Fixtures.shared.setup(allocators: 6, devices: 4)
        let merged = try MergedConstraints(devices)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try registry.choose(Fixtures.request, constraints: merged))
        }
    }

    // How the cost grows: allocators x devices.
    for allocators in [1, 2, 4, 6, 8] {
        for devices in [1, 2, 4, 8] where !(allocators == 6 && devices == 4) {
            Benchmark("choose: \(allocators) allocators x \(devices) devices") { benchmark in
                let (registry, list) = try Fixtures.shared.setup(allocators: allocators, devices: devices)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    blackHole(try registry.choose(Fixtures.request, devices: list))
                }
            }
        }
    }

    // The part of a choice that does not depend on allocators: merging the devices.
    Benchmark("merge: 4 devices") { benchmark in
        let devices = Fixtures.devices(4)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try MergedConstraints(devices))
        }
    }
}

/// Fixture plugins compiled once per benchmark process, and the registries made of them.
final class Fixtures: Sendable {
    static let shared = Fixtures()
    static let request = BufferRequest.image(width: 1920, height: 1080, format: .xrgb8888)

    /// The package root, from this file's path (Benchmarks/Benchmarks/Selection/Selection.swift).
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }()

    /// Up to 8 plugins: refuse1...refuse7 (ranks 300 down), then accept (rank 100).
    let paths: [String]

    init() {
        let dir = "/tmp/smaf-bench-fixtures-\(getpid())"
        mkdir(dir, 0o755)
        var paths: [String] = []
        for i in 1...7 {
            paths.append(Fixtures.compile(dir, name: "refuse\(i)", rank: 300 - i, refuse: true))
        }
        paths.append(Fixtures.compile(dir, name: "accept", rank: 100, refuse: false))
        self.paths = paths
    }

    static func compile(_ dir: String, name: String, rank: Int, refuse: Bool) -> String {
        let out = "\(dir)/\(name).so"
        let command = "cc -shared -fPIC -O2 -o \(out) -I \(root)/Sources/CSMAFPlugin/include"
            + " -DFIXTURE_NAME='\"\(name)\"' -DFIXTURE_RANK=\(rank)\(refuse ? " -DFIXTURE_REJECT" : "")"
            + " \(root)/Tests/Fixtures/fixture_plugin.c"
        guard system(command) == 0 else { fatalError("cc failed: \(command)") }
        return out
    }

    /// `allocators` plugins (the refusing ones first, the accepting one last) and `devices` devices.
    func setup(allocators: Int, devices: Int) throws -> (AllocatorRegistry, [DeviceConstraints]) {
        let chosen = Array(paths.prefix(allocators - 1)) + [paths[paths.count - 1]]
        var configuration = Configuration.only(pluginPaths: chosen)
        configuration.logLevel = .error
        let registry = AllocatorRegistry(configuration: configuration)
        guard registry.plugins.count == allocators else {
            fatalError("loaded \(registry.plugins.count) of \(allocators) fixture plugins: \(registry.loadWarnings)")
        }
        let list = Fixtures.devices(devices)
        // A choice that fails here would measure an error path, not a choice.
        guard try registry.choose(Fixtures.request, devices: list).chosen == "accept" else {
            fatalError("the accepting fixture was not chosen")
        }
        return (registry, list)
    }

    /// A display plane, a GPU, a video encoder and the CPU, repeated with
    /// new names past four: formats with modifiers, pitch, height and
    /// address alignments, size limits.
    static func devices(_ count: Int) -> [DeviceConstraints] {
        (0..<count).map { i in
            let n = i / 4 == 0 ? "" : "\(i / 4 + 1)"
            switch i % 4 {
            case 0:
                var d = DeviceConstraints(name: "display\(n)", usage: [.scanout])
                d.formats = [.init(.xrgb8888, [.linear, .invalid]), .init(.argb8888, [.linear, .invalid])]
                d.pitchAlignment = 64
                d.maxWidth = 4096
                d.maxHeight = 4096
                return d
            case 1:
                var d = DeviceConstraints(name: "gpu\(n)", usage: [.render, .texture])
                d.formats = [.init(.xrgb8888, [.linear]), .init(.argb8888, [.linear]), .init(.nv12, [.linear])]
                d.pitchAlignment = 256
                d.addressAlignment = 4096
                return d
            case 2:
                var d = DeviceConstraints(name: "encoder\(n)", usage: [.videoEncode])
                d.formats = [.init(.xrgb8888, []), .init(.nv12, [])]
                d.pitchAlignment = 128
                d.heightAlignment = 16
                d.maxSize = 64 << 20
                return d
            default:
                var d = DeviceConstraints(name: "cpu\(n)", usage: [.cpuRead, .cpuWrite])
                d.cpuAccess = true
                return d
            }
        }
    }
}
