import Foundation
import Testing

/// `smaf --help` as a user reads it in a terminal: swift-argument-parser
/// wraps prose to the width, so prose must carry no line breaks of its own
/// (a manual break after the parser's wrap leaves a word or two alone on a
/// line, mid-sentence), and the deliberate blocks (examples, variable lists)
/// must fit the width unwrapped.
@Suite struct HelpTextTests {
    /// Every command path, root first, from the parser's own description of
    /// the command tree, so a new subcommand is covered without listing it here.
    static func commandPaths() throws -> [[String]] {
        let r = try TestSupport.run(TestSupport.smafExecutable, ["--experimental-dump-help"])
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let root = json["command"] as? [String: Any] else {
            throw TestSupport.FixtureError(message: "smaf --experimental-dump-help: status \(r.status): \(r.stderr)")
        }
        func walk(_ command: [String: Any], _ path: [String]) -> [[String]] {
            let children = command["subcommands"] as? [[String: Any]] ?? []
            return [path] + children.flatMap { child -> [[String]] in
                guard let name = child["commandName"] as? String, name != "help" else { return [] }
                return walk(child, path + [name])
            }
        }
        return walk(root, [])
    }

    static func help(_ path: [String], columns: Int) throws -> String {
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "\(columns)"
        let r = try TestSupport.run(TestSupport.smafExecutable, path + ["--help"], environment: env)
        guard r.status == 0 else { throw TestSupport.FixtureError(message: "smaf \(path.joined(separator: " ")) --help: status \(r.status): \(r.stderr)") }
        return r.stdout
    }

    /// Lines that betray a manual break the parser wrapped again: a line of a
    /// word or two that continues the line above (same indentation) and is
    /// itself continued below, or that is the tail the parser cut off an
    /// indented block line (it lands at column 0 under the block).
    static func strandedFragments(_ text: String) -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func indent(_ s: String) -> Int { s.prefix { $0 == " " }.count }
        func words(_ s: String) -> Int { s.split(separator: " ").count }
        var found: [String] = []
        for i in lines.indices.dropFirst() {
            let above = lines[i - 1], line = lines[i]
            guard !above.isEmpty, (1...2).contains(words(line)) else { continue }
            let below = i + 1 < lines.count ? lines[i + 1] : ""
            // An option's name on a line of its own, its help below, is the parser's layout.
            if indent(line) == 2 && line.dropFirst(2).hasPrefix("-") { continue }
            let continuesAbove = indent(above) == indent(line)
            let continuedBelow = !below.isEmpty && indent(below) >= indent(line)
            // "For example:" under a block introduces the next one.
            let blockTail = indent(line) == 0 && indent(above) > 0 && !line.hasSuffix(":")
            if (continuesAbove && continuedBelow) || blockTail {
                found.append("'\(above)' / '\(line)' / '\(below)'")
            }
        }
        return found
    }

    @Test(arguments: [80, 120])
    func everyCommandsHelpWrapsCleanly(columns: Int) throws {
        let paths = try Self.commandPaths()
        #expect(paths.count >= 10, "the root, its subcommands and plugin's: \(paths)")
        for path in paths {
            let text = try Self.help(path, columns: columns)
            let name = (["smaf"] + path).joined(separator: " ")
            for fragment in Self.strandedFragments(text) {
                Issue.record("\(name) --help at \(columns) columns breaks mid-sentence: \(fragment)")
            }
            // The USAGE line is the parser's own, never wrapped.
            for line in text.split(separator: "\n") where line.count > columns && !line.hasPrefix("USAGE:") {
                Issue.record("\(name) --help at \(columns) columns has a line of \(line.count) characters: '\(line)'")
            }
        }
    }

    /// The detector itself, on the breaks the issue quoted from an 80-column terminal.
    @Test func theDetectorFindsTheBreaksUsersSaw() {
        let broken = """
        smaf loads allocator plugins at run time, ranks them, and gives each buffer to
        the
        first allocator whose match() accepts every attached device.

        Ask for bytes (--size 8M) or an image (--width 1920 --height 1080 --format
        XR24).
        Each --device adds a device constraint descriptor (JSON, see

        Hand the buffer to another program with --exec: it runs with the buffer as fd 3
        and
          SMAF_FD=3 SMAF_SIZE SMAF_FORMAT SMAF_WIDTH SMAF_HEIGHT SMAF_MODIFIER

        Environment:
          SMAF_RANKS        rank overrides, e.g. memfd:primary,dumb:none (none = only
        when forced)
        """
        #expect(Self.strandedFragments(broken).count == 4, "\(Self.strandedFragments(broken))")
        let clean = """
        OVERVIEW: Show the cma allocator's region: size, backing, use, free runs and a
        map.

        Environment:
          SMAF_LOG              error, warning (default), info or debug

        OPTIONS:
          --secure-module <secure-module>
                                  The secure module to use (default: the highest
                                  ranked).
          --export-to <export-to> For a secure buffer: the attached device --exec hands
        """
        #expect(Self.strandedFragments(clean).isEmpty, "\(Self.strandedFragments(clean))")
    }
}
