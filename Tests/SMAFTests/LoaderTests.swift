import SMAF
import Testing

/// The loader refuses what it cannot trust, with one warning naming the file
/// and the reason, and keeps going.
@Suite struct LoaderTests {
    func refusal(_ path: String) throws -> String {
        let registry = try TestSupport.registry([path, TestSupport.shippedPlugin("memfd")])
        #expect(registry.plugins.map(\.name) == ["memfd"], "the good plugin still loads")
        try #require(registry.warningLines.count == 1)
        #expect(registry.warningLines[0].hasPrefix("skipping plugin \(path): "))
        return registry.warningLines[0]
    }

    @Test func wrongABIMajor() throws {
        let w = try refusal(try TestSupport.fixture(["FIXTURE_NAME": "\"abi2\"", "FIXTURE_ABI_MAJOR": "2"]))
        #expect(w.hasSuffix("built for ABI 2.\(ABIStabilityTests.coreMinor), this smaf speaks ABI 1.\(ABIStabilityTests.coreMinor)"))
    }

    @Test func needsNewerMinor() throws {
        let w = try refusal(try TestSupport.fixture(["FIXTURE_NAME": "\"future\"", "FIXTURE_ABI_REQUIRED": "7"]))
        #expect(w.hasSuffix("needs ABI 1.7 or newer, this smaf speaks ABI 1.\(ABIStabilityTests.coreMinor)"))
    }

    @Test func missingEntrySymbol() throws {
        let w = try refusal(try TestSupport.fixture(name: "noentry", "FIXTURE_NO_ENTRY"))
        #expect(w.hasSuffix("no entry symbol 'smaf_plugin_entry' (is it a smaf plugin?)"))
    }

    @Test func entryReturnsNull() throws {
        let w = try refusal(try TestSupport.fixture(name: "nullentry", "FIXTURE_NULL_ENTRY"))
        #expect(w.hasSuffix("smaf_plugin_entry() returned NULL"))
    }

    @Test func missingRequiredOp() throws {
        let w = try refusal(try TestSupport.fixture(name: "norelease", "FIXTURE_NO_RELEASE"))
        #expect(w.hasSuffix("'norelease' lacks required op release"))
    }

    @Test func failingOpen() throws {
        let w = try refusal(try TestSupport.fixture(name: "nohw", "FIXTURE_OPEN_FAILS"))
        #expect(w.hasSuffix("'nohw' open failed (No such device): no such hardware here"))
    }

    @Test func badName() throws {
        let w = try refusal(try TestSupport.fixture(name: "Bad Name"))
        #expect(w.hasSuffix("plugin name 'Bad Name' is not [a-z0-9_-]{1,63}"))
    }

    @Test func notALibrary() throws {
        let w = try refusal("\(TestSupport.packageRoot)/README.md")
        #expect(w.contains("dlopen failed"))
    }

    @Test func duplicateNameKeepsTheFirst() throws {
        let first = try TestSupport.fixture(name: "twin", rank: 10)
        let second = try TestSupport.fixture(name: "twin", rank: 20)
        let registry = try TestSupport.registry([first, second])
        #expect(registry.plugins.map(\.name) == ["twin"])
        #expect(registry.plugins.first?.path == first)
        #expect(registry.warningLines == ["skipping plugin \(second): duplicate plugin name 'twin' (already loaded from \(first))"])
    }

    @Test func sameFileTwiceIsLoadedOnce() throws {
        let memfd = TestSupport.shippedPlugin("memfd")
        let registry = try TestSupport.registry([memfd, memfd, TestSupport.buildDirectory + "/./libsmafplugin_memfd.so"])
        #expect(registry.plugins.count == 1)
        #expect(registry.warningLines.isEmpty)
    }

    @Test func aFolderOnThePathLoadsEverySharedObjectInIt() throws {
        let a = try TestSupport.fixture(name: "dir-a")
        let folder = String(a[..<a.lastIndex(of: "/")!])
        let registry = try TestSupport.registry([folder])
        #expect(registry.plugins.contains { $0.name == "dir-a" })
    }

    @Test func settingsReachThePlugin() throws {
        // The fixture logs its 'greeting' setting at open; reading it back proves the path.
        let registry = try TestSupport.registry([try TestSupport.fixture(name: "greeter")], settings: ["greeter.greeting": "hello"])
        #expect(registry.plugins.map(\.name) == ["greeter"])
    }
}
