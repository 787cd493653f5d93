import Foundation
import SMAF
import SMAFProbe
import SMAFSys
import Testing

/// A descriptor's `import_node` names a file that smaf opens and sends DRM
/// ioctls to. Anything but a DRM character device (major 226) is refused
/// before it is opened, whichever part of smaf opens it (the probe, the dumb
/// and gbm allocators, the C API).
@Suite struct DeviceNodeTests {
    static let folder: String = {
        let dir = NSTemporaryDirectory() + "smaf-nodes-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static let fifo: String = {
        let path = folder + "/card0"
        _ = mkfifo(path, 0o600)
        return path
    }()

    static let regular: String = {
        let path = folder + "/shadow"
        _ = FileManager.default.createFile(atPath: path, contents: Data("root:secret\n".utf8))
        return path
    }()

    @Test(arguments: [
        (fifo, "not a DRM device (a FIFO)"),
        (regular, "not a DRM device (a regular file)"),
        ("/dev/null", "not a DRM device (a character device of major 1, not 226)"),
        (folder, "not a DRM device (a directory)"),
    ])
    func theProbeRefusesWhatIsNotADRMNode(path: String, reason: String) {
        let e = #expect(throws: SMAFError.self) { try DeviceProbe.run(node: path) }
        #expect(e?.message == "probe: \(path): \(reason)")
    }

    @Test func aRefusedNodeIsNeverOpened() throws {
        // inotify reports every open of the file; the check must come first.
        let inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        try #require(inotify >= 0)
        defer { close(inotify) }
        try #require(inotify_add_watch(inotify, Self.regular, UInt32(IN_OPEN)) >= 0)
        _ = try? DeviceProbe.run(node: Self.regular)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(inotify, &buffer, buffer.count)
        #expect(n < 0 && errno == EAGAIN, "\(Self.regular) was opened (\(n) bytes of inotify events)")
    }

    /// Counted in a child process, where no other test opens fds meanwhile.
    @Test func refusalsLeakNoDescriptor() async {
        await #expect(processExitsWith: .success) {
            let paths = [DeviceNodeTests.fifo, DeviceNodeTests.regular, "/dev/null", DeviceNodeTests.folder, "/nonexistent"]
            let before = TestSupport.openFDs()
            for path in paths { _ = try? DeviceProbe.run(node: path) }
            #expect(TestSupport.openFDs() == before)
        }
    }

    @Test(arguments: ["dumb", "gbm"])
    func deviceLocalAllocatorsRefuseTheNodeWithTheReason(allocator: String) throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin(allocator)])
        var device = DeviceConstraints(name: "sneaky", usage: [.scanout])
        device.importNode = Self.fifo
        let buffer = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888, allocator: allocator))
        try buffer.attach(device)
        let e = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e?.message.contains("\(Self.fifo): not a DRM device (a FIFO)") == true, "\(e?.message ?? "")")
    }

    @Test func aDescriptorNamingAFIFOFailsQuicklyFromTheCLI() throws {
        let descriptor = Self.folder + "/sneaky.json"
        _ = FileManager.default.createFile(atPath: descriptor, contents: Data(#"{"name": "sneaky", "import_node": "\#(Self.fifo)"}"#.utf8))
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("dumb")
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        let r = try TestSupport.run("/usr/bin/timeout", ["-k", "5", "20", TestSupport.smafExecutable, "alloc", "--width", "64", "--height", "64",
                                                         "--format", "XR24", "--device", descriptor], environment: env)
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("dumb: \(Self.fifo): not a DRM device (a FIFO)\n"), "\(r.stderr)")
    }
}
