import Foundation
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// Hostile inputs against the real kernel: device nodes that are not DRM
/// nodes, a planted probe cache, a process out of file descriptors.
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct InputVMTests {
    var smaf: String { "\(KernelTestBed.buildDirectory)/smaf" }

    @Test func udmabufIsNotOpenedAsADRMDevice() throws {
        let e = #expect(throws: SystemError.self) { try DRMDevice(path: "/dev/udmabuf") }
        #expect(e?.description == "/dev/udmabuf: not a DRM device (a character device of major 10, not 226)")
        for node in DRMDevice.primaryNodes() + DRMDevice.renderNodes() {
            #expect(throws: Never.self, "\(node) is a DRM node") { _ = try DRMDevice(path: node) }
        }
        // The dumb allocator, given it as a descriptor's import_node.
        let registry = KernelTestBed.registry("dumb")
        var device = DeviceConstraints(name: "sneaky", usage: [.scanout])
        device.importNode = "/dev/udmabuf"
        let buffer = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888))
        try buffer.attach(device)
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message.contains("/dev/udmabuf: not a DRM device (a character device of major 10, not 226)") == true,
                "\(error?.message ?? "")")
    }

    /// With stdin, stdout and stderr open and /dev/udmabuf held by the
    /// plugin, the udmabuf export hits the limit of 5 (loading the plugin
    /// itself takes two fds for a moment: the checked file and dlopen's
    /// /proc/self/fd path, so 4 would stop the loader instead): the plugin's
    /// message names EMFILE, the core must not again.
    @Test(arguments: [5])
    func runningOutOfDescriptorsNamesEMFILEOnce(limit: Int) throws {
        // The test process's other descriptors are closed first and stderr
        // joined to stdout before the limit: dash cannot redirect under it.
        let script = "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- 2>&1; ulimit -n \(limit); "
            + "SMAF_DEFAULT_PLUGINS=0 SMAF_PLUGIN_PATH='\(KernelTestBed.buildDirectory)/libsmafplugin_memfd.so' "
            + "exec '\(smaf)' alloc --size 4K --allocator memfd"
        let out = try KernelTestBed.run("/bin/sh", ["-c", script])
        #expect(out.hasPrefix("smaf: error: forced allocator memfd cannot satisfy the request: memfd: match accepted but allocate failed: "), "\(out)")
        #expect(out.hasSuffix("failed: Too many open files (EMFILE)\n"), "\(out)")
        #expect(!out.contains("(EMFILE) (EMFILE)"), "\(out)")
    }

    /// Another user plants import results claiming vgem imports from an
    /// exporter called "forged", where the old cache looked ($XDG_RUNTIME_DIR/
    /// smaf-probe-<uid>.json, read whoever owned it) and where the new one
    /// looks ($XDG_RUNTIME_DIR/smaf/probe.json). Root's probe must measure.
    @Test func aPlantedProbeCacheIsNotBelieved() throws {
        let vgem = try KernelTestBed.device(driver: "vgem").path
        let run = NSTemporaryDirectory() + "smaf-run-\(getpid())"
        try FileManager.default.createDirectory(atPath: run + "/smaf", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: run) }
        let bootID = try readTextFile("/proc/sys/kernel/random/boot_id").filter { !$0.isWhitespace }
        let forged = #"{"bootID": "\#(bootID)", "devices": {"\#(vgem)": {"driver": "vgem", "imports": {"forged": "ok"}}}}"#
        for path in ["\(run)/smaf-probe-\(getuid()).json", "\(run)/smaf/probe.json"] {
            try #require(FileManager.default.createFile(atPath: path, contents: Data(forged.utf8)))
            try #require(chown(path, 65534, 65534) == 0)
        }
        let out = try KernelTestBed.run("/usr/bin/env", ["XDG_RUNTIME_DIR=\(run)", smaf, "probe", "--json"])
        #expect(out.contains("\"udmabuf\" : \"ok\""), "the probe measured: \(out)")
        #expect(!out.contains("forged"), "\(out)")
    }

    @Test func withoutARuntimeFolderNothingIsCachedInTmp() throws {
        let old = "/tmp/smaf-probe-\(getuid()).json"
        unlink(old)
        let out = try KernelTestBed.run("/usr/bin/env", ["-u", "XDG_RUNTIME_DIR", smaf, "probe", "--json"])
        #expect(out.contains("\"udmabuf\" : \"ok\""), "\(out)")
        #expect(access(old, F_OK) != 0, "the probe wrote its cache to \(old), where any user can plant one")
        #expect(!((try? Directory.entries("/tmp")) ?? []).contains { $0.hasPrefix("smaf-probe") })
    }
}
