@testable import SMAF
import Foundation
@testable import SMAFProbe
import SMAFSys
import Testing

/// What smaf trusts without being told: the environment (not in a setuid or
/// capability-elevated process) and the probe's cache (only in a folder and
/// a file this user owns).
@Suite struct TrustTests {
    // MARK: the environment

    @Test func anElevatedProcessReadsNoVariable() throws {
        let entries = ["SMAF_PLUGIN_PATH=/home/mallory/evil.so", "SMAF_CONFIG=/home/mallory/smaf.conf", "HOME=/home/mallory",
                       "XDG_RUNTIME_DIR=/home/mallory/run", "SMAF_LOG=debug"]
        #expect(Environment.variables(entries, secureExecution: true).isEmpty)
        #expect(Environment.variables(entries, secureExecution: false)["SMAF_LOG"] == "debug")
        #expect(Environment.value("PATH", secureExecution: true) == nil)
        #expect(Environment.value("PATH", secureExecution: false) != nil)
        #expect(!Environment.isSecureExecution, "the test process is not setuid")
        let c = try Configuration.fromEnvironment(Environment.variables(entries, secureExecution: true))
        #expect(c.pluginPaths.isEmpty && c.configFile != "/home/mallory/smaf.conf" && c.logLevel == .warning)
    }

    static let canElevate = getuid() == 0 && access("/usr/sbin/setcap", X_OK) == 0 && access("/usr/bin/setpriv", X_OK) == 0

    /// The real thing: smaf with a file capability, run as an unprivileged
    /// user, gets AT_SECURE from the kernel and must not read SMAF_CONFIG.
    @Test(.enabled(if: canElevate, "needs root, setcap and setpriv"))
    func aCapabilityElevatedSmafIgnoresItsCallersEnvironment() throws {
        let dir = NSTemporaryDirectory() + "smaf-elevated-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let copy = dir + "/smaf"
        try TestSupport.copyExecutable(TestSupport.smafExecutable, to: copy)
        let env = ["SMAF_CONFIG": "/nonexistent/mallory.conf", "PATH": "/usr/bin:/bin"]
        let args = ["--reuid=65534", "--regid=65534", "--clear-groups", copy, "list"]
        let plain = try TestSupport.run("/usr/bin/setpriv", args, environment: env)
        #expect(plain.status == 1 && plain.stderr.contains("config file /nonexistent/mallory.conf"), "\(plain.stderr)")
        let setcap = try TestSupport.run("/usr/sbin/setcap", ["cap_net_bind_service+ep", copy])
        try #require(setcap.status == 0, "\(setcap.stderr)")
        let elevated = try TestSupport.run("/usr/bin/setpriv", args, environment: env)
        #expect(elevated.status == 0, "\(elevated.stderr)")
        #expect(!elevated.stderr.contains("mallory"), "\(elevated.stderr)")
    }

    // MARK: the probe cache

    func folder(mode: mode_t = 0o700, owner: uid_t? = nil) throws -> String {
        let base = NSTemporaryDirectory() + "smaf-cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try #require(mkdir(base, 0o755) == 0)
        let dir = base + "/smaf"
        try #require(mkdir(dir, 0o700) == 0 && chmod(dir, mode) == 0)
        if let owner { try #require(chown(dir, owner, owner) == 0) }
        return dir
    }

    @Test func theCacheNeverFallsBackToASharedFolder() {
        #expect(ImportCache.defaultDirectory(runtimeDirectory: "/run/user/1000", uid: 1000) == "/run/user/1000/smaf")
        let fallback = ImportCache.defaultDirectory(runtimeDirectory: nil, uid: getuid())
        #expect(fallback != nil && !fallback!.hasPrefix("/tmp"), "\(fallback ?? "nil")")
        #expect(ImportCache.defaultDirectory(runtimeDirectory: "relative/run", uid: getuid()) != "relative/run/smaf")
    }

    @Test func aRoundTripInAPrivateFolder() throws {
        let dir = try folder()
        let cache = ImportCache(directory: dir)
        cache.store(node: "/dev/dri/card0", driver: "vgem", imports: ["udmabuf": "ok"])
        #expect(cache.lookup(node: "/dev/dri/card0", driver: "vgem") == ["udmabuf": "ok"])
        var st = stat()
        #expect(stat(dir + "/probe.json", &st) == 0 && st.st_uid == geteuid() && st.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["probe.json"], "no temporary file is left")
    }

    @Test(.enabled(if: getuid() == 0, "needs root to make a folder another user owns"))
    func aFolderSomeoneElseOwnsIsNotUsed() throws {
        let dir = try folder(owner: 65534)
        let cache = ImportCache(directory: dir)
        #expect(throws: InputFileError.self) { _ = try cache.openDirectory() }
        cache.store(node: "/dev/dri/card0", driver: "vgem", imports: ["udmabuf": "ok"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test func aFolderOthersCanWriteInIsNotUsed() throws {
        let dir = try folder(mode: 0o777)
        let cache = ImportCache(directory: dir)
        let e = #expect(throws: InputFileError.self) { _ = try cache.openDirectory() }
        #expect(e?.description == "probe cache folder \(dir): writable by others (mode 777); not used")
        cache.store(node: "/dev/dri/card0", driver: "vgem", imports: ["udmabuf": "ok"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test(.enabled(if: getuid() == 0, "needs root to plant a file another user owns"))
    func aPlantedFileIsNotBelievedAndIsReplaced() throws {
        let dir = try folder()
        let cache = ImportCache(directory: dir)
        let forged = #"{"bootID": "\#(cache.bootID)", "devices": {"/dev/dri/card0": {"driver": "vgem", "imports": {"forged": "ok"}}}}"#
        _ = FileManager.default.createFile(atPath: dir + "/probe.json", contents: Data(forged.utf8))
        try #require(chown(dir + "/probe.json", 65534, 65534) == 0)
        #expect(cache.lookup(node: "/dev/dri/card0", driver: "vgem") == nil)
        cache.store(node: "/dev/dri/card0", driver: "vgem", imports: ["udmabuf": "ok"])
        #expect(cache.lookup(node: "/dev/dri/card0", driver: "vgem") == ["udmabuf": "ok"])
    }

    @Test func aSymlinkIsNotFollowed() throws {
        let dir = try folder()
        let target = dir + "/../victim"
        _ = FileManager.default.createFile(atPath: target, contents: Data("precious".utf8))
        try #require(symlink(target, dir + "/probe.json") == 0)
        let cache = ImportCache(directory: dir)
        #expect(cache.lookup(node: "/dev/dri/card0", driver: "vgem") == nil)
        cache.store(node: "/dev/dri/card0", driver: "vgem", imports: ["udmabuf": "ok"])
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious")
        #expect(cache.lookup(node: "/dev/dri/card0", driver: "vgem") == ["udmabuf": "ok"])
    }

    @Test func aSymlinkedFolderIsNotUsed() throws {
        let real = try folder()
        let link = real + "-link"
        try #require(symlink(real, link) == 0)
        #expect(throws: InputFileError.self) { _ = try ImportCache(directory: link).openDirectory() }
    }
}
