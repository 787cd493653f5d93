import Foundation
import SMAF
import Testing

/// What the loader refuses to run code from (docs/PLUGINS.md, "What the
/// loader refuses"): files or folders others could write, files owned by
/// someone else, anything but a regular file, and a second plugin of a
/// name already taken. Each refusal is one warning; the other plugins load.
@Suite(.serialized) struct LoaderTrustTests {
    static let isRoot = geteuid() == 0

    /// A fresh private folder (0755) holding a copy of `fixture` as `name`, with `mode`.
    static func placed(_ fixture: String, as name: String = "libplugin.so", mode: mode_t = 0o755,
                       folderMode: mode_t = 0o755) throws -> (folder: String, file: String) {
        var template = Array("\(NSTemporaryDirectory())smaf-trust-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestSupport.FixtureError(message: "mkdtemp failed") }
        let folder = String(cString: made)
        let file = "\(folder)/\(name)"
        try FileManager.default.copyItem(atPath: fixture, toPath: file)
        chmod(file, mode)
        chmod(folder, folderMode)
        return (folder, file)
    }

    static func remove(_ folder: String) { try? FileManager.default.removeItem(atPath: folder) }

    static func loaded(_ paths: [String]) throws -> AllocatorRegistry {
        try TestSupport.registry(paths + [TestSupport.shippedPlugin("memfd")])
    }

    @Test(arguments: [(mode_t(0o666), "its group and anyone (mode 0666)"), (0o664, "its group (mode 0664)"), (0o646, "anyone (mode 0646)")])
    func aFileOthersCanWriteIsRefused(mode: mode_t, writers: String) throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "writable"), mode: mode)
        defer { Self.remove(folder) }
        let r = try Self.loaded([file])
        #expect(r.plugins.map(\.name) == ["memfd"])
        #expect(r.warningLines == ["skipping plugin \(file): the file \(file) is writable by \(writers): only its owner may write it"])
    }

    @Test func aFolderOthersCanWriteIsRefused() throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "in-open-folder"), folderMode: 0o777)
        defer { Self.remove(folder) }
        for entry in [file, folder] {
            let r = try Self.loaded([entry])
            #expect(r.plugins.map(\.name) == ["memfd"])
            #expect(r.warningLines == ["skipping plugin \(file): its folder \(folder) is writable by its group and anyone (mode 0777): "
                                       + "only its owner may write it, or anyone could put another plugin in its place"])
        }
    }

    /// /tmp's sticky bit lets nobody but a file's owner rename or delete it.
    @Test func aStickyFolderIsTrusted() throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "in-sticky-folder"), folderMode: 0o1777)
        defer { Self.remove(folder) }
        let r = try Self.loaded([file])
        #expect(r.warningLines.isEmpty, "\(r.warningLines)")
        #expect(r.plugins.contains { $0.name == "in-sticky-folder" })
    }

    @Test(.enabled(if: isRoot, "chown needs root"))
    func rootRefusesAPluginOwnedBySomeoneElse() throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "nobodys"))
        defer { Self.remove(folder) }
        chown(file, 65534, 65534)
        let r = try Self.loaded([file])
        #expect(r.plugins.map(\.name) == ["memfd"])
        #expect(r.warningLines == ["skipping plugin \(file): the file \(file) is owned by uid 65534 (nobody), not root: root loads only plugins root owns"])
    }

    /// Another user than root: its own plugins and root's load, a third user's do not.
    @Test(.enabled(if: isRoot && access("/usr/bin/setpriv", X_OK) == 0, "needs root and setpriv to become nobody"))
    func aUserRefusesAThirdUsersPlugin() throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "third-party"))
        defer { Self.remove(folder) }
        chown(file, 1234, 1234)
        let (rootsFolder, rootOwned) = try Self.placed(try TestSupport.fixture(name: "roots"))
        defer { Self.remove(rootsFolder) }
        var env = ProcessInfo.processInfo.environment
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_PLUGIN_PATH"] = [file, rootOwned].joined(separator: ":")
        env["SMAF_LOG"] = nil
        let r = try TestSupport.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                          TestSupport.smafExecutable, "list"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("smaf: warning: skipping plugin \(file): the file \(file) is owned by uid 1234, "
                                  + "neither root nor the user running smaf (uid 65534 (nobody))"), "\(r.stderr)")
        #expect(r.stdout.contains("roots"), "\(r.stdout)")
    }

    /// A FIFO named like a plugin is refused from its status alone: opening it would block.
    @Test func aFIFONamedLikeAPluginNeitherHangsNorLoads() throws {
        let (folder, _) = try Self.placed(try TestSupport.fixture(name: "beside-a-fifo"))
        defer { Self.remove(folder) }
        let fifo = "\(folder)/pipe.so"
        #expect(mkfifo(fifo, 0o644) == 0)
        var env = ProcessInfo.processInfo.environment
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_PLUGIN_PATH"] = folder
        env["SMAF_LOG"] = nil
        // timeout(1): a loader that opens the FIFO blocks for ever (SIGTERM only restarts the open); 30 s is failure, not a hung suite.
        let r = try TestSupport.run("/usr/bin/timeout", ["-s", "KILL", "30", TestSupport.smafExecutable, "list"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "smaf: warning: skipping plugin \(fifo): \(fifo) is a FIFO, not a regular file\n")
        #expect(r.stdout.contains("beside-a-fifo"))
    }

    /// A name belongs to the first file that claims it, and the default
    /// folders load first: a `policy` on SMAF_PLUGIN_PATH never replaces the
    /// shipped secure module, nor a `memfd` the shipped allocator.
    @Test(arguments: [("policy", "fixture_secure.c"), ("memfd", "fixture_plugin.c")])
    func aPluginOnThePathCannotTakeAShippedName(name: String, source: String) throws {
        let impostor = try TestSupport.fixture(["FIXTURE_NAME": "\"\(name)\""], source: source)
        var env = ProcessInfo.processInfo.environment
        env["SMAF_DEFAULT_PLUGINS"] = nil
        env["SMAF_PLUGIN_PATH"] = impostor
        env["SMAF_LOG"] = nil
        let r = try TestSupport.run(TestSupport.smafExecutable, ["list", "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let shipped = TestSupport.shippedPlugin(name)
        #expect(r.stderr.contains("smaf: warning: skipping plugin \(impostor): duplicate plugin name '\(name)' (already loaded from \(shipped))"),
                "\(r.stderr)")
        struct Listing: Decodable {
            struct Plugin: Decodable { var name: String; var path: String }
            var plugins: [Plugin]
        }
        let listing = try JSONDecoder().decode(Listing.self, from: Data(r.stdout.utf8))
        #expect(listing.plugins.filter { $0.name == name }.map(\.path) == [shipped])
    }

    /// The file checked is the file mapped: a plugin rebuilt in place (a new
    /// file at the same path) is loaded as what it now is, not as the image
    /// an earlier load left under that path.
    @Test func aFileReplacedAtTheSamePathLoadsAsWhatItIsNow() throws {
        let (folder, file) = try Self.placed(try TestSupport.fixture(name: "before"))
        defer { Self.remove(folder) }
        #expect(try Self.loaded([file]).plugins.contains { $0.name == "before" })
        unlink(file)
        try FileManager.default.copyItem(atPath: try TestSupport.fixture(name: "after"), toPath: file)
        chmod(file, 0o755)
        let again = try Self.loaded([file])
        #expect(again.plugins.map(\.name).sorted() == ["after", "memfd"], "\(again.warningLines)")
    }
}
