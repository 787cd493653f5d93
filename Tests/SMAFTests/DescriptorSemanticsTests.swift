import Foundation
import SMAF
import SMAFSys
import Testing

/// Values a descriptor may not hold because they mean nothing or mislead
/// (docs/CONSTRAINTS.md, "Values that are refused"), and text from outside
/// that must not reach a terminal or a log as is.
@Suite struct DescriptorSemanticsTests {
    func parse(_ json: String) throws -> DeviceConstraints {
        try DeviceConstraints.fromJSON(Array(json.utf8), source: "d.json")
    }

    @Test(arguments: [
        (#"{"name": "x", "max_pitch": 0}"#, "field 'max_pitch': a limit of 0 allows nothing; leave the key out for no limit"),
        (#"{"name": "x", "max_width": 0}"#, "field 'max_width': a limit of 0 allows nothing; leave the key out for no limit"),
        (#"{"name": "x", "max_height": 0}"#, "field 'max_height': a limit of 0 allows nothing; leave the key out for no limit"),
        (#"{"name": "x", "max_size": 0}"#, "field 'max_size': a limit of 0 allows nothing; leave the key out for no limit"),
        (#"{"name": "x", "max_segments": 0}"#, "field 'max_segments': a limit of 0 allows nothing; leave the key out for no limit"),
        (#"{"name": "x", "formats": []}"#, "field 'formats': an empty list would accept no format; leave the key out to accept any"),
        (#"{"name": "x", "formats": [{"format": "XR24", "modifiers": ["LINEAR"]}, {"format": "XRGB8888"}]}"#,
         "field 'formats[1].format': XR24 is listed twice; list each format once with all its modifiers"),
        (#"{"name": ""}"#, "field 'name': an empty name cannot be told apart in errors and explanations"),
        (#"{"name": "plane\nsmaf: info: forged"}"#, "field 'name': control characters are not allowed in a name (it is printed in logs and explanations)"),
        (#"{"name": "\u001b[31mred"}"#, "field 'name': control characters are not allowed in a name (it is printed in logs and explanations)"),
        (#"{"name": "x", "import_node": ""}"#, "field 'import_node': must be a DRM node path such as /dev/dri/card0"),
        (#"{"name": "x", "importable_from": ["udmabuf", "\u0007"]}"#,
         "field 'importable_from[1]': exporter names are non-empty and without control characters"),
    ])
    func meaninglessValuesAreRefusedAtParse(json: String, expected: String) {
        let e = #expect(throws: SMAFError.self) { try parse(json) }
        #expect(e?.message == "d.json: \(expected)")
        #expect(e?.kind == .invalidDescriptor)
    }

    @Test func aFormatListedTwiceInALongListIsFound() throws {
        let codes = ["XR24", "AR24", "XB24", "AB24", "RG16", "NV12", "NV21", "YUYV", "UYVY", "P010", "R8  ", "GR88",
                     "XR30", "AR30", "XB30", "AB30", "RG24", "BG24", "YU12", "XR24"]
        let json = #"{"name": "x", "formats": ["# + codes.map { #"{"format": "\#($0)"}"# }.joined(separator: ", ") + "]}"
        let e = #expect(throws: SMAFError.self) { try parse(json) }
        #expect(e?.message == "d.json: field 'formats[19].format': XR24 is listed twice; list each format once with all its modifiers")
    }

    @Test func anEmptyImportableFromListStillMeansNoExporter() throws {
        // The probe writes [] for a device measured to import from nothing.
        #expect(try parse(#"{"name": "x", "importable_from": []}"#).importableFrom == [])
    }

    @Test func aDescriptorBuiltInCodeIsHeldToTheSameRules() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
        var zero = DeviceConstraints(name: "narrow")
        zero.maxWidth = 0
        var none = DeviceConstraints(name: "picky")
        none.formats = []
        let forged = DeviceConstraints(name: "plane\u{1b}[2J")
        for (device, expected) in [
            (zero, "device narrow: field 'max_width': a limit of 0 allows nothing; leave the key out for no limit"),
            (none, "device picky: field 'formats': an empty list would accept no format; leave the key out to accept any"),
            (forged, "device plane\\u{1b}[2J: field 'name': control characters are not allowed in a name (it is printed in logs and explanations)"),
        ] {
            let buffer = try registry.buffer(.bytes(4096))
            let e = #expect(throws: SMAFError.self) { try buffer.attach(device) }
            #expect(e?.message == expected)
            #expect(throws: SMAFError.self) { _ = try MergedConstraints([device]) }
        }
    }

    @Test func explanationsEscapeWhatPluginsWrote() throws {
        // A verdict as a plugin could word it, in an explanation read back from JSON.
        let json = #"{"devices": ["cpu"], "entries": [{"allocator": "evil", "rank": 10, "outcome": "rejected", "#
            + #""reason": "no\u001b[2J\nsmaf: info: forged line\u202e"}]}"#
        let text = try JSONDecoder().decode(Explanation.self, from: Data(json.utf8)).description
        #expect(text.split(separator: "\n").count == 2)
        #expect(text.contains("no\\u{1b}[2J\\nsmaf: info: forged line\\u{202e}"))
        #expect(!text.unicodeScalars.contains { $0 == "\u{1b}" || $0 == "\u{202e}" })
    }

    @Test func cliLinesEscapeNamesAndPaths() throws {
        // A file whose name holds a newline and a forged log line, and a
        // missing path holding an escape sequence.
        let dir = NSTemporaryDirectory() + "smaf-escape-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rules = dir + "/rules\nsmaf: info: forged.json"
        _ = FileManager.default.createFile(atPath: rules, contents: Data(#"{"default": "read_write", "cpu": "read_write"}"#.utf8))
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = [TestSupport.shippedPlugin("memfd"), TestSupport.shippedPlugin("policy")].joined(separator: ":")
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_LOG"] = "info"
        let logged = try TestSupport.run(TestSupport.smafExecutable, ["alloc", "--size", "4K", "--policy", rules], environment: env)
        let lines = logged.stderr.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("smaf: info: forged") }, "\(logged.stderr)")
        #expect(logged.stderr.contains("rules from \(dir)/rules\\nsmaf: info: forged.json"), "\(logged.stderr)")
        env["SMAF_LOG"] = nil
        let missing = dir + "/\u{1b}[31mred.json"
        let failed = try TestSupport.run(TestSupport.smafExecutable, ["alloc", "--size", "4K", "--device", missing], environment: env)
        #expect(failed.stderr == "smaf: error: device descriptor \(dir)/\\u{1b}[31mred.json: open failed: No such file or directory (ENOENT)\n")
    }
}
