import Glibc
import SMAFSys
import Testing

/// StandardErrorCapture on the host, in child processes (fd 2 is the whole
/// process's: no other test may write there meanwhile): what the call writes
/// is taken aside, smaf's own lines are told apart for forwarding, fd 2 is
/// restored whatever the call does, and nothing leaks. The VM's
/// QuietStderrTests check it against Mesa itself.
@Suite struct StandardErrorCaptureTests {
    @Test func aCallsOutputIsTakenAsideAndSmafsLinesForwarded() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardErrorContent]) {
            var before = stat(), after = stat()
            fstat(2, &before)
            let fds = TestSupport.openFDs()
            let (value, said) = StandardErrorCapture.capturing { () -> Int in
                let mesa = "MESA-LOADER: failed to open vgem: no such file\nfailed to load driver: vgem\nkmsro: driver missing\n"
                _ = mesa.withCString { write(2, $0, strlen($0)) }
                writeStandardError("smaf: warning: [memfd] a line from another thread")
                return 42
            }
            #expect(value == 42)
            #expect(said.call == ["MESA-LOADER: failed to open vgem: no such file", "failed to load driver: vgem", "kmsro: driver missing"])
            #expect(said.smafs == ["smaf: warning: [memfd] a line from another thread"])
            StandardErrorCapture.forward(said.smafs)
            writeStandardError("after the window")
            fstat(2, &after)
            #expect(after.st_dev == before.st_dev && after.st_ino == before.st_ino, "fd 2 is the same file again")
            #expect(TestSupport.openFDs() == fds, "the capture's memfd and the saved fd 2 are closed")
        }
        let stderr = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(stderr.contains("smaf: warning: [memfd] a line from another thread\nafter the window\n"), "\(stderr)")
        #expect(!stderr.contains("MESA-LOADER") && !stderr.contains("kmsro"), "\(stderr)")
    }

    @Test func aThrowingCallStillGetsFd2BackAndItsOutputIsNotLost() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardErrorContent]) {
            struct Refused: Error {}
            var before = stat(), after = stat()
            fstat(2, &before)
            #expect(throws: Refused.self) {
                _ = try StandardErrorCapture.capturing { () throws(Refused) -> Int in
                    _ = "KMS: DRM_IOCTL_MODE_CREATE_DUMB failed\n".withCString { write(2, $0, strlen($0)) }
                    throw Refused()
                }
            }
            fstat(2, &after)
            #expect(after.st_dev == before.st_dev && after.st_ino == before.st_ino)
        }
        #expect(String(decoding: result.standardErrorContent, as: UTF8.self).contains("KMS: DRM_IOCTL_MODE_CREATE_DUMB failed\n"))
    }
}
