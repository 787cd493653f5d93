import Foundation
import Testing

/// The module structure as built, not as intended: what each shipped binary
/// exports and links, what the core imports and how big it is, and whether
/// docs/ARCHITECTURE.md still draws Package.swift.
@Suite struct LayeringTests {
    /// Package.swift as SwiftPM reads it (`swift package dump-package`), in
    /// a scratch folder of its own so it never waits for this build's lock.
    static let manifestText: String = {
        let scratch = NSTemporaryDirectory() + "smaf-dump-package-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let r = try? TestSupport.run("/usr/bin/env", ["swift", "package", "--package-path", TestSupport.packageRoot,
                                                      "--scratch-path", scratch, "dump-package"])
        return r?.status == 0 ? r?.stdout ?? "" : ""
    }()

    static var manifest: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(manifestText.utf8)) as? [String: Any]) ?? [:]
    }

    /// Every dependency between the package's own targets, `A -> B` when A
    /// depends on B (products of other packages left out), tests excluded.
    static func packageEdges() throws -> Set<String> {
        let targets = try #require(manifest["targets"] as? [[String: Any]], "swift package dump-package failed")
        var edges = Set<String>()
        for target in targets where target["type"] as? String != "test" {
            let name = try #require(target["name"] as? String)
            for dependency in target["dependencies"] as? [[String: Any]] ?? [] {
                // {"byName": ["X", null]} or {"target": ["X", null]}; {"product": [...]} is another package's.
                guard let ref = (dependency["byName"] ?? dependency["target"]) as? [Any], let other = ref.first as? String else { continue }
                edges.insert("\(name) -> \(other)")
            }
        }
        return edges
    }

    /// The edges of the first ```mermaid block of `markdown`: `A --> B`,
    /// `A & B --> C & D` (every pair), nodes named `id["label"]` by their label.
    static func diagramEdges(_ markdown: String) -> Set<String> {
        guard let start = markdown.range(of: "```mermaid\n"),
              let end = markdown.range(of: "\n```", range: start.upperBound..<markdown.endIndex) else { return [] }
        let block = markdown[start.upperBound..<end.lowerBound]
        var labels: [String: String] = [:]
        let node = /([A-Za-z0-9_]+)\["([^"]+)"\]/
        for match in block.matches(of: node) { labels[String(match.1)] = String(match.2) }
        func names(_ side: Substring) -> [String] {
            side.split(separator: "&").map { part in
                let id = String(part.replacing(node) { $0.1 }).trimmingCharacters(in: .whitespaces)
                return labels[id] ?? id
            }
        }
        var edges = Set<String>()
        for line in block.split(separator: "\n") where line.contains("-->") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("%%") {
            let sides = line.components(separatedBy: "-->")
            guard sides.count == 2 else { continue }
            for a in names(Substring(sides[0])) { for b in names(Substring(sides[1])) { edges.insert("\(a) -> \(b)") } }
        }
        return edges
    }

    @Test func theArchitectureDiagramIsPackageSwift() throws {
        let doc = try String(contentsOfFile: TestSupport.packageRoot + "/docs/ARCHITECTURE.md", encoding: .utf8)
        let drawn = Self.diagramEdges(doc), declared = try Self.packageEdges()
        #expect(declared.count > 40, "the manifest was read: \(declared.count) edges")
        #expect(drawn.subtracting(declared).sorted() == [], "drawn in docs/ARCHITECTURE.md, not in Package.swift")
        #expect(declared.subtracting(drawn).sorted() == [], "in Package.swift, not drawn in docs/ARCHITECTURE.md")
    }

    /// The parser reads what it should, so an empty or garbled block cannot pass for a match.
    @Test func theDiagramParserReadsGroupsAndLabels() {
        let doc = "x\n```mermaid\nflowchart BT\n  %% a --> comment\n  a & b[\"b-1\"] --> c\n  b --> a & c\n```\n"
        #expect(Self.diagramEdges(doc) == ["a -> c", "b-1 -> c", "b-1 -> a", "b-1 -> c"])
        #expect(Self.diagramEdges("no diagram") == [])
    }

    /// The core: nothing of DRM or GBM (the compiler holds it to
    /// Package.swift; this holds Package.swift to the issue), and at most
    /// 2,000 lines counted as `wc -l` counts them.
    /// Each plugin file readable in a minute: none over 300 lines.
    @Test func noPluginFileIsOver300Lines() throws {
        let root = TestSupport.packageRoot + "/plugins"
        let files = try FileManager.default.subpathsOfDirectory(atPath: root)
            .filter { [".swift", ".c", ".h"].contains(where: $0.hasSuffix) }
        #expect(files.count > 10)
        for file in files {
            let lines = try String(contentsOfFile: "\(root)/\(file)", encoding: .utf8).utf8.count { $0 == 0x0A }
            #expect(lines <= 300, "plugins/\(file) has \(lines) lines")
        }
    }

    @Test func theCoreImportsNoDRMAndStaysSmall() throws {
        let folder = TestSupport.packageRoot + "/Sources/SMAF"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".swift") }.sorted()
        #expect(files.count > 10)
        var lines = 0
        let forbidden = /^\s*(@\w+\s+)*import\s+(\w+\s+)?(SMAFDRM|CLibDRM|CLibGBM|SMAFProbe|SMAFScanout)\b/
        for file in files {
            let text = try String(contentsOfFile: "\(folder)/\(file)", encoding: .utf8)
            lines += text.utf8.count { $0 == 0x0A }
            for line in text.split(separator: "\n") where line.firstMatch(of: forbidden) != nil {
                Issue.record("Sources/SMAF/\(file): \(line)")
            }
        }
        #expect(lines <= 2000, "Sources/SMAF has \(lines) lines")
        // What SMAF may reach at all: its dependencies in Package.swift, transitively.
        let edges = try Self.packageEdges()
        var reach: Set<String> = [], todo = ["SMAF"]
        while let next = todo.popLast() {
            for edge in edges where edge.hasPrefix("\(next) -> ") {
                let to = String(edge.dropFirst(next.count + 4))
                if reach.insert(to).inserted { todo.append(to) }
            }
        }
        #expect(reach.isDisjoint(with: ["SMAFDRM", "CLibDRM", "CLibGBM"]), "SMAF depends on \(reach.sorted())")
    }

    /// Each shipped plugin exports its entry symbol and nothing else
    /// (plugins/exports.map); a Swift plugin used to export thousands.
    @Test func pluginsExportOnlyTheirEntrySymbol() throws {
        let products = try #require(Self.manifest["products"] as? [[String: Any]])
        let plugins = products.compactMap { $0["name"] as? String }.filter { $0.hasPrefix("smafplugin_") }
        #expect(plugins.count >= 9, "\(plugins)")
        for plugin in plugins {
            let path = "\(TestSupport.buildDirectory)/lib\(plugin).so"
            let r = try TestSupport.run("/usr/bin/nm", ["-D", "--defined-only", path])
            #expect(r.status == 0, "nm \(path): \(r.stderr)")
            let symbols = r.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            #expect(symbols == ["smaf_plugin_entry"], "lib\(plugin).so exports \(symbols.count): \(symbols.prefix(5))")
        }
    }

    /// The libraries a binary loads, as the dynamic loader resolves them.
    static func linked(_ binary: String) throws -> [String] {
        let r = try TestSupport.run("/usr/bin/ldd", [binary])
        guard r.status == 0 else { throw TestSupport.FixtureError(message: "ldd \(binary): \(r.stderr)") }
        // "\tlibgbm.so.1 => /lib/x86_64-linux-gnu/libgbm.so.1 (0x...)"
        return r.stdout.split(separator: "\n").compactMap { $0.split(whereSeparator: \.isWhitespace).first.map(String.init) }
    }

    /// GBM is linked by the benchmark harness (its raw baseline) and the gbm
    /// plugin alone: neither smaf nor the C API library loads it.
    @Test func onlyTheHarnessAndTheGBMPluginLinkGBM() throws {
        let dir = TestSupport.buildDirectory
        #expect(try Self.linked("\(dir)/smaf").contains { $0.hasPrefix("libgbm") } == false)
        #expect(try Self.linked("\(dir)/libsmafapi.so").contains { $0.hasPrefix("libgbm") } == false)
        #expect(try Self.linked("\(dir)/smaf-bench").contains { $0.hasPrefix("libgbm") }, "ldd sees GBM where it is")
        #expect(try Self.linked("\(dir)/libsmafplugin_gbm.so").contains { $0.hasPrefix("libgbm") })
    }
}
