// swift-tools-version:6.1
import PackageDescription

// The selection benchmark, kept out of the main package so its build stays
// light: `cd Benchmarks && swift package benchmark`. The MallocInterposer
// trait lets the benchmark count mallocs without jemalloc.
let package = Package(
    name: "smaf-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "smaf", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "Selection",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "SMAF", package: "smaf"),
            ],
            path: "Benchmarks/Selection",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
