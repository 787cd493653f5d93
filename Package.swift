// swift-tools-version:6.1
import PackageDescription

// Layout: the core library (`SMAF`) over the values it speaks in
// (`SMAFModel`) and its building blocks under Sources/; what is not the core
// in modules of its own over the core's public or `package` API (the DRM
// probe, scanout, conformance checks, the buffer pool); each shipped
// allocator as its own dynamic library under plugins/ (loaded at run time
// through the C ABI in CSMAFPlugin, never linked into the core); the `smaf`
// CLI as a thin layer over them, and the benchmark harness in an executable
// of its own (`smaf-bench`), so that only it links GBM.
// docs/ARCHITECTURE.md draws these modules; a test keeps it equal to this file.

/// Every plugin exports its entry symbol and nothing else (plugins/exports.map):
/// without it, a Swift plugin exports every symbol of the kit and SMAFSys it
/// links. Linked by lld (the toolchain's own): GNU ld leaves the symbols the
/// script makes local in the dynamic symbol table when code reaches them
/// through the GOT (Swift metadata does), lld resolves those at link time.
let pluginExports: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "--version-script=\(Context.packageDirectory)/plugins/exports.map"]),
]

/// A shipped allocator plugin: one folder under plugins/, one .so named
/// libsmafplugin_<name>.so so the loader finds it next to the executable.
/// `exclude`: folders of the plugin's own modules (pure code a test or the
/// CLI also uses), built as their own targets.
func allocatorPlugin(_ name: String, target: String, dependencies: [Target.Dependency] = [],
                     exclude: [String] = []) -> (Product, Target) {
    (
        .library(name: "smafplugin_\(name)", type: .dynamic, targets: [target]),
        .target(
            name: target,
            dependencies: ["SMAFPluginKit", "SMAFSys"] + dependencies,
            path: "plugins/\(name)",
            exclude: exclude,
            linkerSettings: pluginExports
        )
    )
}

/// A shipped plugin written in C against smaf/plugin.h alone: no kit, no Swift.
func cAllocatorPlugin(_ name: String, target: String) -> (Product, Target) {
    (
        .library(name: "smafplugin_\(name)", type: .dynamic, targets: [target]),
        .target(name: target, dependencies: ["CSMAFPlugin"], path: "plugins/\(name)", publicHeadersPath: ".",
                linkerSettings: pluginExports)
    )
}

let plugins = [
    allocatorPlugin("memfd", target: "MemfdPlugin"),
    allocatorPlugin("cma", target: "CMAPlugin", dependencies: ["CMARegion"], exclude: ["Region"]),
    allocatorPlugin("dmaheap", target: "DmaHeapPlugin"),
    allocatorPlugin("dumb", target: "DumbPlugin", dependencies: ["SMAFDRM"]),
    allocatorPlugin("gbm", target: "GBMPlugin", dependencies: ["SMAFDRM", "CLibGBM"]),
    // Secure modules are plugins too, loaded through the same ABI.
    allocatorPlugin("policy", target: "PolicyModule", dependencies: ["PolicyRules"], exclude: ["Rules"]),
    allocatorPlugin("test", target: "TestSecureModule"),
    // The two examples docs/PLUGINS.md walks through: Swift with the kit, and C with the header alone.
    allocatorPlugin("shm", target: "ShmPlugin"),
    cAllocatorPlugin("carveout", target: "CarveoutPlugin"),
]

let package = Package(
    name: "smaf",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "smaf", targets: ["smaf"]),
        .executable(name: "smaf-bench", targets: ["smaf-bench"]),
        .library(name: "SMAF", targets: ["SMAF"]),
        // Beside the core, each on its own link line: the pool, and the DRM parts (libdrm).
        .library(name: "SMAFPool", targets: ["SMAFPool"]),
        .library(name: "SMAFProbe", targets: ["SMAFProbe"]),
        .library(name: "SMAFScanout", targets: ["SMAFScanout"]),
        // The C API for applications (include/smaf/smaf.h): libsmafapi.so.
        .library(name: "smafapi", type: .dynamic, targets: ["SMAFC"]),
        // The kit, for Swift plugins built out of tree (`smaf plugin new --lang swift`).
        .library(name: "SMAFPluginKit", targets: ["SMAFPluginKit"]),
    ] + plugins.map(\.0),
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The plugin ABI: a C header every plugin and the core compile against.
        .target(name: "CSMAFPlugin"),
        // C shims for variadic syscalls and ioctl numbers Swift cannot import.
        .target(name: "CSMAFSys"),
        // Typed Swift wrappers over those syscalls: fd ownership, memfd, udmabuf, dma-buf.
        .target(
            name: "SMAFSys",
            dependencies: ["CSMAFSys", "SMAFFormats", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // DRM fourcc codes, modifiers and image layout math, shared by core and plugins.
        .target(name: "SMAFFormats"),
        // libdrm through pkg-config, and the typed Swift layer over it.
        .systemLibrary(name: "CLibDRM", pkgConfig: "libdrm", providers: [.apt(["libdrm-dev"])]),
        .target(name: "SMAFDRM", dependencies: ["CLibDRM", "SMAFSys", .product(name: "SystemPackage", package: "swift-system")]),
        // Mesa's GBM, for the gbm plugin.
        .systemLibrary(name: "CLibGBM", pkgConfig: "gbm", providers: [.apt(["libgbm-dev"])]),
        // What a plugin written in Swift links to export the C ABI.
        .target(name: "SMAFPluginKit", dependencies: ["CSMAFPlugin", "SMAFFormats"]),
        // The values every part speaks in: requests, device constraints and
        // their merge and JSON, allocations and whether they fit, what an
        // allocator declares (its capabilities, the ABI's flags), explanations,
        // ranks, the configuration, errors. No plugin is called here; SMAF
        // re-exports it.
        .target(name: "SMAFModel", dependencies: ["CSMAFPlugin", "SMAFFormats", "SMAFSys", .product(name: "SystemPackage", package: "swift-system")]),
        // The core: loader, registry, selection, deferred buffers, secure sessions.
        .target(
            name: "SMAF",
            dependencies: ["CSMAFPlugin", "CSMAFSys", "SMAFSys", "SMAFFormats", "SMAFModel",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Buffers recycled like a swapchain, over Buffer's package API.
        .target(name: "SMAFPool", dependencies: ["SMAF", "SMAFSys"]),
        // A DRM device as a constraint descriptor, its imports measured.
        .target(name: "SMAFProbe", dependencies: ["SMAF", "SMAFDRM", "SMAFSys"]),
        // A negotiated buffer on a KMS plane.
        .target(name: "SMAFScanout", dependencies: ["SMAF", "SMAFProbe", "SMAFDRM", "SMAFSys", "CSMAFSys"]),
        // `smaf plugin check`: a plugin binary held to the ABI's promises.
        .target(name: "SMAFConformance", dependencies: ["SMAF", "SMAFProbe", "SMAFDRM", "SMAFSys", "CSMAFPlugin", "CSMAFSys"]),
        // The C API: its header and per-thread error in C, the calls in Swift.
        .target(name: "CSMAFAPI"),
        .target(name: "SMAFC", dependencies: ["SMAF", "SMAFProbe", "SMAFSys", "CSMAFAPI"]),
        // The plugins' own modules: pure code the CLI, the fuzz target and the tests use too.
        .target(name: "CMARegion", dependencies: ["SMAFSys"], path: "plugins/cma/Region"),
        .target(name: "PolicyRules", dependencies: ["SMAFPluginKit", "SMAFSys"], path: "plugins/policy/Rules"),
        // What the two command-line tools share: one error rule, sizes, tables, JSON.
        .target(name: "SMAFCommandLine", dependencies: ["SMAFModel", "SMAFSys",
                                                        .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "smaf",
            dependencies: ["SMAF", "SMAFSys", "SMAFDRM", "SMAFProbe", "SMAFScanout", "SMAFConformance", "CMARegion",
                           "SMAFCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The benchmark harness, which `smaf bench` runs: the raw syscalls it
        // compares the framework with (libdrm, gbm) stay off smaf's link line.
        .target(name: "CSMAFBaseline", dependencies: ["CLibDRM", "CLibGBM"]),
        .executableTarget(
            name: "smaf-bench",
            dependencies: ["SMAF", "SMAFSys", "SMAFDRM", "SMAFPool", "SMAFProbe", "CSMAFBaseline", "SMAFCommandLine",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The fuzz target for descriptors, policy rules and the config file (Tests/Fuzz/README.md):
        // seeded mutations of the corpus when built as usual, libFuzzer's driver when built with
        // -sanitize=fuzzer.
        .target(name: "CSMAFFuzz", path: "Tests/Fuzz/CSMAFFuzz"),
        .executableTarget(
            name: "smaf-fuzz",
            dependencies: ["SMAF", "SMAFSys", "PolicyRules", "CSMAFFuzz"],
            path: "Tests/Fuzz/SMAFFuzz"
        ),
        .testTarget(name: "SMAFTests", dependencies: ["SMAF", "SMAFSys", "SMAFDRM", "SMAFPool", "SMAFProbe", "SMAFScanout",
                                                      "SMAFConformance", "CMARegion"]),
        .testTarget(name: "SMAFIntegrationTests", dependencies: ["SMAF", "SMAFSys", "SMAFDRM", "SMAFPool", "SMAFProbe",
                                                                 "SMAFScanout", "SMAFConformance", "CMARegion"]),
    ] + plugins.map(\.1)
)
