// swift-tools-version:6.1
import PackageDescription

// Layout: the core library (`SMAF`) and its building blocks under Sources/,
// each shipped allocator as its own dynamic library under plugins/ (loaded at
// run time through the C ABI in CSMAFPlugin, never linked into the core), and
// the `smaf` CLI as a thin layer over the library.

/// A shipped allocator plugin: one folder under plugins/, one .so named
/// libsmafplugin_<name>.so so the loader finds it next to the executable.
func allocatorPlugin(_ name: String, target: String, dependencies: [Target.Dependency] = []) -> (Product, Target) {
    (
        .library(name: "smafplugin_\(name)", type: .dynamic, targets: [target]),
        .target(
            name: target,
            dependencies: ["SMAFPluginKit", "SMAFSys"] + dependencies,
            path: "plugins/\(name)"
        )
    )
}

/// A shipped plugin written in C against smaf/plugin.h alone: no kit, no Swift.
func cAllocatorPlugin(_ name: String, target: String) -> (Product, Target) {
    (
        .library(name: "smafplugin_\(name)", type: .dynamic, targets: [target]),
        .target(name: target, dependencies: ["CSMAFPlugin"], path: "plugins/\(name)", publicHeadersPath: ".")
    )
}

let plugins = [
    allocatorPlugin("memfd", target: "MemfdPlugin"),
    allocatorPlugin("cma", target: "CMAPlugin"),
    allocatorPlugin("dmaheap", target: "DmaHeapPlugin"),
    allocatorPlugin("dumb", target: "DumbPlugin", dependencies: ["SMAFDRM"]),
    allocatorPlugin("gbm", target: "GBMPlugin", dependencies: ["SMAFDRM", "CLibGBM"]),
    // Secure modules are plugins too, loaded through the same ABI.
    allocatorPlugin("policy", target: "PolicyModule"),
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
        .library(name: "SMAF", targets: ["SMAF"]),
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
        // The core: constraints, registry, loader, deferred buffers.
        .target(
            name: "SMAF",
            dependencies: ["CSMAFPlugin", "CSMAFSys", "SMAFSys", "SMAFFormats", "SMAFDRM", "CLibDRM",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The C API: its header and per-thread error in C, the calls in Swift.
        .target(name: "CSMAFAPI"),
        .target(name: "SMAFC", dependencies: ["SMAF", "SMAFSys", "CSMAFAPI"]),
        // The raw syscalls `smaf bench` compares the framework with (libdrm, gbm).
        .target(name: "CSMAFBaseline", dependencies: ["CLibDRM", "CLibGBM"]),
        .executableTarget(
            name: "smaf",
            dependencies: ["SMAF", "SMAFSys", "SMAFDRM", "CSMAFBaseline", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The fuzz target for descriptors, policy rules and the config file (Tests/Fuzz/README.md):
        // seeded mutations of the corpus when built as usual, libFuzzer's driver when built with
        // -sanitize=fuzzer. It links the policy plugin's target for PolicyRules.parse.
        .target(name: "CSMAFFuzz", path: "Tests/Fuzz/CSMAFFuzz"),
        .executableTarget(
            name: "smaf-fuzz",
            dependencies: ["SMAF", "SMAFSys", "PolicyModule", "CSMAFFuzz"],
            path: "Tests/Fuzz/SMAFFuzz"
        ),
        .testTarget(name: "SMAFTests", dependencies: ["SMAF", "SMAFSys"]),
        .testTarget(name: "SMAFIntegrationTests", dependencies: ["SMAF", "SMAFSys", "SMAFDRM"]),
    ] + plugins.map(\.1)
)
