import Foundation
import Testing

/// `make install` lays out what applications and plugin authors build
/// against, and both work from there: the installed smaf finds its plugins,
/// a C program links the C API through pkg-config, a C plugin builds with
/// smaf-plugin.pc and loads.
@Suite(.serialized) struct InstallTests {
    static let prefix = NSTemporaryDirectory() + "smaf-install-\(getpid())"

    func install() throws {
        let config = TestSupport.buildDirectory.hasSuffix("/release") ? "release" : "debug"
        let r = try TestSupport.run("/usr/bin/make", ["-C", TestSupport.packageRoot, "-s", "install-files",
                                                     "CONFIG=\(config)", "PREFIX=\(Self.prefix)"])
        try #require(r.status == 0, "make install-files failed: \(r.stderr)")
    }

    func pkgConfig(_ args: [String]) throws -> [String] {
        var env = ProcessInfo.processInfo.environment
        env["PKG_CONFIG_PATH"] = "\(Self.prefix)/lib/pkgconfig"
        let r = try TestSupport.run("/usr/bin/pkg-config", args, environment: env)
        try #require(r.status == 0, "pkg-config \(args): \(r.stderr)")
        return r.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    @Test func installedLayoutWorks() throws {
        try install()
        let fm = FileManager.default
        for path in ["bin/smaf", "bin/smaf-bench", "lib/libsmafapi.so", "lib/libsmaf.so", "include/smaf/smaf.h", "include/smaf/plugin.h",
                     "lib/pkgconfig/smaf.pc", "lib/pkgconfig/smaf-plugin.pc", "lib/smaf/plugins/libsmafplugin_memfd.so",
                     "share/smaf/source/Package.swift"] {
            #expect(fm.fileExists(atPath: "\(Self.prefix)/\(path)"), "\(path)")
        }
        // Loaded by every installed smaf: never the test module (it grants as told) nor the examples.
        let plugins = try fm.contentsOfDirectory(atPath: "\(Self.prefix)/lib/smaf/plugins").sorted()
        #expect(plugins == ["cma", "dmaheap", "dumb", "gbm", "memfd", "policy"].map { "libsmafplugin_\($0).so" })
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = nil
        let list = try TestSupport.run("\(Self.prefix)/bin/smaf", ["list", "--json"], environment: env)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("\"path\" : \"\(Self.prefix)/bin/../lib/smaf/plugins/libsmafplugin_memfd.so\""),
                "the installed smaf finds plugins in PREFIX/lib/smaf/plugins")
        // `smaf bench` is the smaf-bench installed beside it, help included.
        let bench = try TestSupport.run("\(Self.prefix)/bin/smaf", ["bench", "--help"], environment: env)
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(bench.stdout.contains("USAGE: smaf bench <options>") && bench.stdout.contains("--allocator <allocator>"), "\(bench.stdout)")
    }

    @Test func aCProgramUsesTheCAPI() throws {
        try install()
        let exe = "\(Self.prefix)/capi_test"
        let flags = try pkgConfig(["--cflags", "--libs", "smaf"])
        let cc = try TestSupport.run("/usr/bin/cc", ["-Wall", "-Werror", "-o", exe, "\(TestSupport.packageRoot)/Tests/Fixtures/capi_test.c"] + flags)
        try #require(cc.status == 0, "cc: \(cc.stderr)")
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = "\(Self.prefix)/lib/smaf/plugins/libsmafplugin_memfd.so"
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        let r = try TestSupport.run(exe, [], environment: env)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasSuffix("all checks passed\n"))
        #expect(r.stdout.contains("ok: exported fd"))
    }

    @Test func aCPluginBuildsWithSmafPluginPc() throws {
        try install()
        let so = "\(Self.prefix)/libmy-plugin.so"
        let flags = try pkgConfig(["--cflags", "smaf-plugin"])
        let cc = try TestSupport.run("/usr/bin/cc", ["-shared", "-fPIC", "-o", so, "-DFIXTURE_NAME=\"outoftree\"",
                                                     "\(TestSupport.packageRoot)/Tests/Fixtures/fixture_plugin.c"] + flags)
        try #require(cc.status == 0, "cc: \(cc.stderr)")
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = so
        let r = try TestSupport.run("\(Self.prefix)/bin/smaf", ["alloc", "--size", "4K", "--allocator", "outoftree"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("allocated 4 KiB with outoftree"))
    }
}
