import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFConformance
import SMAFSys

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Write a new allocator plugin project, or check a plugin binary against the ABI.",
        discussion: """
        docs/PLUGINS.md describes the ABI these commands hold plugins to.
        """,
        subcommands: [New.self, Check.self]
    )

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a complete out-of-tree plugin project that builds against this smaf.",
            discussion: """
            --lang swift: a SwiftPM package depending on smaf's source tree (for \
            SMAFPluginKit), building libsmafplugin_NAME.so with `swift build`.

            --lang c: NAME.c and a Makefile taking <smaf/plugin.h> from `pkg-config \
            smaf-plugin` where smaf is installed, else from this smaf (its PREFIX/include, \
            or the source tree it was built in), so it builds without `make install`.

            Either loads as written: SMAF_PLUGIN_PATH=<the .so> smaf list; `make check` \
            or `smaf plugin check` runs the conformance checks.
            """
        )

        enum Language: String, ExpressibleByArgument, CaseIterable { case swift, c }

        @Argument(help: "The plugin's name: a lowercase letter, then [a-z0-9_-], at most 63 characters.")
        var name: String
        @Option(help: "swift or c.") var lang: Language
        @Option(help: "The folder to write (default: ./NAME). Must not exist or be empty.")
        var output: String?
        @Option(help: "For --lang swift: smaf's source tree the package depends on (default: PREFIX/share/smaf/source, else the tree this smaf was built in).")
        var smafSource: String?

        func validate() throws {
            let ok = name.utf8.count < 64 && name.utf8.first.map { $0 >= 0x61 && $0 <= 0x7a } == true
                && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2d }
            guard ok else { throw ValidationError("name: '\(name)' is not a lowercase letter followed by [a-z0-9_-] (at most 63)") }
            if smafSource != nil && lang != .swift { throw ValidationError("--smaf-source is for --lang swift") }
        }

        func run() throws {
            let dir = output ?? name
            try requireEmptyFolder(dir)
            let files: [PluginTemplates.File]
            switch lang {
            case .swift:
                let source = try absolute(smafSource ?? Origin.packageSource)
                files = PluginTemplates.swift(name: name, smafSource: source)
            case .c:
                files = PluginTemplates.c(name: name, include: Origin.pluginIncludeDirectory, smaf: Origin.executable)
            }
            for file in files { try write(file.contents, to: "\(dir)/\(file.path)") }
            print("wrote \(lang.rawValue) plugin '\(name)' in \(dir):")
            for file in files { print("  \(file.path)") }
            let smaf = Origin.executable ?? "smaf"
            print(lang == .swift
                  ? "next: cd \(dir) && swift build && \(smaf) plugin check .build/debug/libsmafplugin_\(name).so"
                  : "next: cd \(dir) && make && make check")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the conformance checks against a plugin binary.",
            discussion: """
            Loads the plugin through smaf's own loader and checks: \
            \(Conformance.checks.map(\.name).joined(separator: ", ")).

            One PASS/FAIL/SKIP line per check with the reason; exit status 1 if any \
            check failed. SKIP means nothing to check with (e.g. no device on this \
            machine the plugin serves). SMAF_LOG=debug shows the plugin's own log lines.
            """
        )

        @Argument(help: "The plugin's .so file.") var path: String
        @Flag(help: "Print JSON for scripts instead of text.") var json = false

        struct ReportJSON: Encodable {
            var report: ConformanceReport
            func encode(to encoder: any Encoder) throws {
                try report.encode(to: encoder)
                var c = encoder.container(keyedBy: Key.self)
                try c.encode(report.passed, forKey: .passed)
            }
            enum Key: String, CodingKey { case passed }
        }

        func run() throws {
            // dlopen searches the library path for a name without a slash; the user means this file.
            guard access(path, R_OK) == 0 else {
                throw CommandFailure(message: "plugin check: cannot read \(path): \(String(cString: strerror(errno)))")
            }
            // A folder holds any number of plugins; which one to check is the user's to say.
            if let names = try? Directory.entries(path) {
                let plugins = names.filter { $0.hasSuffix(".so") }
                throw CommandFailure(message: "plugin check: \(path) is a folder; name one plugin file in it"
                                     + (plugins.isEmpty ? " (it has no .so file)" : " (\(plugins.count) .so: \(plugins.prefix(3).joined(separator: ", "))\(plugins.count > 3 ? ", ..." : ""))"))
            }
            let file = path.contains("/") ? path : "./\(path)"
            // The plugin's code runs in this process: if a bad request makes it eat
            // all memory, the OOM killer should take the checker, not a bystander.
            if let adj = fopen("/proc/self/oom_score_adj", "w") { fputs("1000", adj); fclose(adj) }
            let level = Environment.value("SMAF_LOG").flatMap(LogLevel.init(parsing:)) ?? .error
            if !json { print("checking \(file)") }
            let width = Conformance.checks.map(\.name.count).max() ?? 0
            let report = Conformance.run(path: file, logLevel: level) { check in
                guard !json else { return }
                print("\(check.outcome.rawValue.uppercased().padded(4))  \(check.name.padded(width))  \(DisplayText.escaped(check.reason))")
                fflush(nil) // a plugin that crashes the next check leaves this line behind
            }
            if json {
                try printJSON(ReportJSON(report: report))
            } else {
                let count = { (o: ConformanceCheck.Outcome) in report.checks.filter { $0.outcome == o }.count }
                print("\(report.plugin ?? file): \(count(.pass)) passed, \(count(.fail)) failed, \(count(.skip)) skipped")
            }
            if !report.passed { throw ExitCode(1) }
        }
    }
}

private func absolute(_ path: String) throws -> String {
    if path.hasPrefix("/") { return path }
    guard let cwd = getcwd(nil, 0) else { throw CommandFailure(message: "getcwd failed: \(String(cString: strerror(errno)))") }
    defer { free(cwd) }
    return "\(String(cString: cwd))/\(path)"
}

/// Refuses to write into a folder that has something in it.
private func requireEmptyFolder(_ dir: String) throws {
    let names: [String]
    do { names = try Directory.entries(dir) } catch {
        if error.errno.rawValue == ENOENT { return }
        throw CommandFailure(message: "plugin new: \(dir): \(error.errno.description)")
    }
    if !names.isEmpty { throw CommandFailure(message: "plugin new: \(dir) exists and is not empty") }
}

/// Writes `contents` to `path`, creating the folders on the way.
private func write(_ contents: String, to path: String) throws {
    var folder = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/").dropLast() {
        folder += "/\(part)"
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw CommandFailure(message: "plugin new: mkdir \(folder): \(String(cString: strerror(errno)))")
        }
    }
    do {
        let fd = try UniqueFD.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = try retryingSyscall("write", context: path) {
                bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress! + offset, bytes.count - offset) }
            }
            offset += n
        }
    } catch {
        throw CommandFailure(message: "plugin new: \(error)")
    }
}
