import Foundation
import SMAF
import SMAFConformance
import Testing

/// `smaf plugin new` writes projects that build out of tree the way a
/// plugin author builds them (make with pkg-config, or against the smaf tree
/// that generated them; swift build against the kit), load through
/// SMAF_PLUGIN_PATH and pass `smaf plugin check`.
@Suite(.serialized) struct PluginNewTests {
    static let workspace: String = {
        let dir = NSTemporaryDirectory() + "smaf-plugin-new-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    func smaf(_ args: [String], env extra: [String: String] = [:]) throws -> TestSupport.RunResult {
        var env = ProcessInfo.processInfo.environment
        env["SMAF_LOG"] = nil
        env["SMAF_RANKS"] = nil
        for (k, v) in extra { env[k] = v }
        return try TestSupport.run(TestSupport.smafExecutable, args, environment: env)
    }

    /// Loads the built plugin the way a user would, and checks it.
    func loadAndCheck(_ so: String, name: String) throws {
        let list = try smaf(["list", "--json"], env: ["SMAF_PLUGIN_PATH": so, "SMAF_DEFAULT_PLUGINS": "0"])
        #expect(list.status == 0, "\(list.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
        let plugins = json?["plugins"] as? [[String: Any]] ?? []
        #expect(plugins.map { $0["name"] as? String } == [name])
        #expect(plugins.first?["rank"] as? Int == 0, "generated plugins start at rank none")

        let alloc = try smaf(["alloc", "--width", "640", "--height", "480", "--format", "XR24", "--allocator", name, "--json"],
                             env: ["SMAF_PLUGIN_PATH": so, "SMAF_DEFAULT_PLUGINS": "0"])
        #expect(alloc.status == 0, "\(alloc.stderr)")
        #expect(alloc.stdout.contains("\"allocator\" : \"\(name)\""), "\(alloc.stdout)")

        let report = try ConformanceTests.check(so)
        for c in report.checks where c.outcome != .pass { Issue.record("\(name) \(c.name): \(c.outcome.rawValue): \(c.reason)") }
    }

    @Test func theCProjectBuildsWithMakeAndPkgConfig() throws {
        let dir = "\(Self.workspace)/demo-c"
        let r = try smaf(["plugin", "new", "demo-c", "--lang", "c", "--output", dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("  demo_c.c\n  Makefile\n  README.md\n"), "\(r.stdout)")

        // An installed smaf's smaf-plugin.pc, standing in for `make install`'s.
        let pcDir = "\(Self.workspace)/pkgconfig"
        try FileManager.default.createDirectory(atPath: pcDir, withIntermediateDirectories: true)
        try """
        prefix=\(Self.workspace)/prefix
        includedir=\(TestSupport.packageRoot)/Sources/CSMAFPlugin/include
        plugindir=${prefix}/lib/smaf/plugins
        Name: smaf-plugin
        Description: smaf allocator plugin ABI
        Version: 1.0
        Cflags: -I${includedir}
        """.write(toFile: "\(pcDir)/smaf-plugin.pc", atomically: true, encoding: .utf8)

        var env = ProcessInfo.processInfo.environment
        env["PKG_CONFIG_PATH"] = pcDir
        env["CFLAGS"] = "-O2 -Werror"
        let started = Date()
        let make = try TestSupport.run("/usr/bin/make", ["-C", dir], environment: env)
        #expect(make.status == 0, "\(make.stdout)\(make.stderr)")
        print("generated C plugin built in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        try loadAndCheck("\(dir)/libsmafplugin_demo-c.so", name: "demo-c")
    }

    /// A fresh clone, nothing installed: pkg-config knows no smaf-plugin, so
    /// the Makefile takes the header from the tree whose smaf generated it,
    /// `make check` runs that smaf, and the plugin loads.
    @Test func theCProjectBuildsFromTheGeneratingTreeWithoutInstall() throws {
        let dir = "\(Self.workspace)/fresh-c"
        let r = try smaf(["plugin", "new", "fresh-c", "--lang", "c", "--output", dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasSuffix("next: cd \(dir) && make && make check\n"), "\(r.stdout)")
        let makefile = try String(contentsOfFile: "\(dir)/Makefile", encoding: .utf8)
        #expect(makefile.contains("SMAF_INCLUDE ?= \(TestSupport.packageRoot)/Sources/CSMAFPlugin/include\n"), "\(makefile)")

        var env = ProcessInfo.processInfo.environment
        env["PKG_CONFIG_PATH"] = "/nonexistent"
        env["PKG_CONFIG_LIBDIR"] = "/nonexistent" // not even a system-wide smaf-plugin.pc
        env["PATH"] = "/usr/bin:/bin" // no smaf on PATH: `make check` runs the generating one
        env["CFLAGS"] = "-O2 -Werror"
        let make = try TestSupport.run("/usr/bin/make", ["-C", dir], environment: env)
        #expect(make.status == 0, "\(make.stdout)\(make.stderr)")
        #expect(make.stdout.contains("-I\(TestSupport.packageRoot)/Sources/CSMAFPlugin/include"), "\(make.stdout)")
        try loadAndCheck("\(dir)/libsmafplugin_fresh-c.so", name: "fresh-c")
        let check = try TestSupport.run("/usr/bin/make", ["-C", dir, "check"], environment: env)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("fresh-c: \(Conformance.checks.count) passed, 0 failed"), "\(check.stdout)")

        // Neither pkg-config nor the tree: the Makefile says how to build instead of a compiler error.
        let missing = try TestSupport.run("/usr/bin/make", ["-C", dir, "clean", "all", "SMAF_INCLUDE=/nonexistent"], environment: env)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("smaf/plugin.h not found: pkg-config knows no smaf-plugin and SMAF_INCLUDE (/nonexistent) has none; build with: make SMAF_INCLUDE=<smaf tree>/Sources/CSMAFPlugin/include"), "\(missing.stderr)")
    }

    /// Builds the generated SwiftPM package against this checkout (about 1-2
    /// minutes: it compiles the kit and resolves smaf's dependencies).
    @Test func theSwiftProjectBuildsWithSwiftBuild() throws {
        let dir = "\(Self.workspace)/demo-swift"
        let r = try smaf(["plugin", "new", "demo-swift", "--lang", "swift", "--output", dir, "--smaf-source", TestSupport.packageRoot])
        #expect(r.status == 0, "\(r.stderr)")
        let manifest = try String(contentsOfFile: "\(dir)/Package.swift", encoding: .utf8)
        #expect(manifest.contains(".package(path: \"\(TestSupport.packageRoot)\")"))
        #expect(FileManager.default.fileExists(atPath: "\(dir)/Sources/DemoSwiftPlugin/DemoSwiftAllocator.swift"))

        let started = Date()
        let build = try TestSupport.run("/usr/bin/env", ["swift", "build", "--package-path", dir])
        #expect(build.status == 0, "\(build.stdout)\(build.stderr)")
        print("generated Swift plugin built in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        try loadAndCheck("\(dir)/.build/debug/libsmafplugin_demo-swift.so", name: "demo-swift")
    }

    @Test func badNamesAndNonEmptyFoldersAreRefused() throws {
        let bad = try smaf(["plugin", "new", "Bad Name", "--lang", "c", "--output", "\(Self.workspace)/bad"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("name: 'Bad Name' is not a lowercase letter followed by [a-z0-9_-]"), "\(bad.stderr)")
        let taken = "\(Self.workspace)/taken"
        try FileManager.default.createDirectory(atPath: taken, withIntermediateDirectories: true)
        try "x".write(toFile: "\(taken)/file", atomically: true, encoding: .utf8)
        let r = try smaf(["plugin", "new", "ok", "--lang", "c", "--output", taken])
        #expect(r.status == 1)
        #expect(r.stderr == "smaf: error: plugin new: \(taken) exists and is not empty\n")
    }
}
