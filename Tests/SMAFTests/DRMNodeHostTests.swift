import Foundation
import SMAFSys
import Testing

/// The core's DRM node check (no libdrm) on what a hostile descriptor may
/// name instead of a node: each is one error, never a hang or a write open.
/// (Real nodes are checked against libdrm in the VM: SecureVMTests.)
@Suite struct DRMNodeHostTests {
    @Test func whatIsNotADRMNodeIsRefusedAtOnce() throws {
        let fifo = NSTemporaryDirectory() + "smaf-fifo-\(getpid())"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        for path in [fifo, "/dev/zero", "/dev/null", "/etc/passwd", "/nonexistent/card0"] {
            let e = #expect(throws: SystemError.self) { _ = try DRMNode.identify(path) }
            #expect(e?.context == path)
            #expect(e?.errno.rawValue == (path.hasPrefix("/nonexistent") ? ENOENT : ENODEV), "\(e?.description ?? "")")
        }
    }
}
