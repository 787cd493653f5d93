import Foundation
import SMAF
import SMAFSys
import Testing

/// Duplicate keys: smaf kept one value, jq and Python keep the other, so a
/// descriptor or rules file could say one thing to an administrator and
/// another to smaf. Every duplicate is refused, with its path.
@Suite struct DuplicateKeyTests {
    func descriptorError(_ json: String) -> String? {
        do {
            _ = try DeviceConstraints.fromJSON(Array(json.utf8), source: "d.json")
            return nil
        } catch {
            return error.message
        }
    }

    @Test(arguments: [
        (#"{"name": "x", "secure": false, "secure": true}"#, "duplicate key 'secure' at line 1 column 32"),
        (#"{"name": "x", "name": "y"}"#, "duplicate key 'name' at line 1 column 15"),
        // After escapes are decoded: \u0073 is "s".
        (#"{"name": "x", "secure": false, "\u0073ecure": true}"#, "duplicate key 'secure' at line 1 column 32"),
        // Canonically equivalent spellings are one key to Swift's dictionaries.
        ("{\"name\": \"x\", \"importable_from\": [], \"caf\u{e9}\": 1, \"cafe\u{301}\": 2}", "duplicate key 'caf\u{e9}'"),
        (#"{"name": "x", "formats": [{"format": "XR24"}, {"format": "AR24", "format": "XR24"}]}"#,
         "duplicate key 'formats[1].format' at line 1 column 66"),
    ])
    func descriptorsWithDuplicateKeysAreRefused(json: String, expected: String) {
        let message = descriptorError(json)
        #expect(message?.hasPrefix("d.json: \(expected)") == true, "\(message ?? "accepted")")
    }

    @Test func nestingIsBounded() {
        let deep = #"{"name": "x", "usage": "# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}"
        #expect(descriptorError(deep)?.hasPrefix("d.json: malformed JSON at line 1 column 55: nested deeper than 32 levels") == true,
                "\(descriptorError(deep) ?? "accepted")")
        // Deep enough to overflow a recursive parser's stack: refused just the same.
        let abyss = String(repeating: "[", count: 1_000_000)
        #expect(descriptorError(abyss)?.contains("nested deeper than 32 levels") == true)
    }

    @Test func policyRulesWithDuplicateKeysAreRefused() throws {
        let path = NSTemporaryDirectory() + "smaf-dup-rules-\(getpid()).json"
        for (json, key) in [(#"{"devices": {"x": "read_write", "x": "none"}}"#, "devices.x"),
                            (#"{"default": "none", "cpu": "none", "default": "read_write"}"#, "default")] {
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            let r = try TestSupport.registry([TestSupport.shippedPlugin("memfd"), TestSupport.shippedPlugin("policy")],
                                             settings: ["policy.rules": path])
            #expect(r.secureModules.isEmpty, "rules with a duplicate key must not load")
            #expect(r.warningLines.first?.contains("rules file \(path): duplicate key '\(key)'") == true, "\(r.warningLines)")
        }
    }

    @Test func configFilesWithDuplicateKeysAreRefused() throws {
        let path = NSTemporaryDirectory() + "smaf-dup-\(getpid()).conf"
        for (text, expected) in [("ranks = memfd:none\nranks = memfd:primary\n", "\(path):2: duplicate key 'ranks' (first set on line 1); set it once"),
                                 ("cma.size = 64M\n# a comment\nCMA.size = 1G\n", "\(path):3: duplicate key 'CMA.size' (first set on line 1); set it once")] {
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            let e = #expect(throws: SMAFError.self) { try Configuration.fromEnvironment(["SMAF_CONFIG": path]) }
            #expect(e?.message == expected)
        }
    }

    @Test func configFilesWithCRLFLineEndsRead() throws {
        // As Characters, "\r\n" is one grapheme, so splitting a String on
        // "\n" saw the whole file as one line.
        let c = try Configuration.parsingConfigFile(Array("ranks = memfd:none\r\nlog = debug\r\n".utf8), source: "crlf.conf")
        #expect(c.logLevel == .debug)
        #expect(c.rankOverrides.first?.ranks["memfd"] == Rank.none)
    }

    @Test func configLinesWithControlCharactersAreRefused() {
        let e = #expect(throws: SMAFError.self) {
            try Configuration.parsingConfigFile(Array("log = debug\n# ok\ncma.size = 1\u{1b}[2J\n".utf8), source: "evil.conf")
        }
        #expect(e?.message == "evil.conf:3: control characters are not allowed")
        let tab = #expect(throws: SMAFError.self) { try Configuration.parsingConfigFile(Array("log\t= loud\n".utf8), source: "t.conf") }
        #expect(tab?.message == "t.conf:1: log level 'loud' is not one of error, warning, info, debug")
        let quoted = #expect(throws: SMAFError.self) { try Configuration.parsingConfigFile(Array("no\tequals\n".utf8), source: "t.conf") }
        #expect(quoted?.message == "t.conf:1: expected 'key = value', got 'no\\tequals'")
    }

    @Test func oneSettingSetTwiceThroughTheEnvironmentIsRefused() {
        let e = #expect(throws: SMAFError.self) {
            try Configuration.fromEnvironment(["SMAF_CMA_SIZE": "64M", "SMAF_cma_size": "1G"])
        }
        #expect(e?.message == "SMAF_CMA_SIZE and SMAF_cma_size both set cma.size; set it once")
    }

    @Test func aVariableDefinedTwiceKeepsItsFirstValueAsGetenvDoes() {
        let env = Environment.variables(["SMAF_RANKS=memfd:none", "HOME=/root", "SMAF_RANKS=memfd:primary"], secureExecution: false)
        #expect(env == ["SMAF_RANKS": "memfd:none", "HOME": "/root"])
    }

    @Test func wellFormedJSONStillReads() throws {
        let examples = "\(TestSupport.packageRoot)/examples/devices"
        for name in try FileManager.default.contentsOfDirectory(atPath: examples) where name.hasSuffix(".json") {
            _ = try DeviceConstraints.load(path: "\(examples)/\(name)")
        }
        try StrictJSON.check(Array(#" {"a": [1, -0.5e+3, true, false, null, "\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}} "#.utf8))
    }

    @Test(arguments: [
        ("", "malformed JSON: the input is empty"),
        (#"{"a": 1,}"#, "malformed JSON at line 1 column 9: expected a key in double quotes, found '}'"),
        (#"{"a": 01}"#, "malformed JSON at line 1 column 8: expected ',' or '}' in an object, found '1'"),
        ("{\"a\": \"tab\there\"}", "malformed JSON at line 1 column 11: a control character (byte 0x9) inside a string must be escaped"),
        (#"{"a": "\ud800"}"#, "malformed JSON at line 1 column 14: unpaired surrogate \\ud800"),
        (#"{"a": "\x"}"#, "malformed JSON at line 1 column 9: unknown escape: '\\' followed by 'x'"),
        ("{\"a\": 1}\n{}", "malformed JSON at line 2 column 1: unexpected '{' after the JSON value"),
        (#"{"a": 1e}"#, "malformed JSON at line 1 column 9: expected a digit in the exponent, found '}'"),
        (#"{"a": tru}"#, "malformed JSON at line 1 column 7: expected true, found 't'"),
        ("{\"a\": 1" + String(repeating: "0", count: 70) + "}", "malformed JSON at line 1 column 7: a number longer than 64 characters"),
    ])
    func malformedJSONIsNamedWithItsPosition(text: String, expected: String) {
        let e = #expect(throws: StrictJSON.Problem.self) { try StrictJSON.check(Array(text.utf8)) }
        #expect(e?.description == expected)
    }

    @Test func textThatIsNotUTF8IsRefused() {
        let e = #expect(throws: StrictJSON.Problem.self) { try StrictJSON.check([0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]) }
        #expect(e?.description == "malformed JSON: not UTF-8 text")
    }
}
