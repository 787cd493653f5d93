import SMAFDRM
import Testing

/// smaf says nothing on stderr unless something went wrong or the user asked
/// for a log: Mesa's loader, which talks there whenever GBM opens a device it
/// has no driver for (vgem, bochs), is kept out of the output of `smaf demo`
/// (the gbm plugin and the benchmark's raw gbm baseline) and of a gbm
/// allocation on every DRM device. Any DRM device will do: this runs on real
/// hardware too.
@Suite(.enabled(if: KernelTestBed.anyDRM, KernelTestBed.noDRMReason), .serialized)
struct QuietStderrTests {
    static let smaf = "\(KernelTestBed.buildDirectory)/smaf"

    @Test func theDemoSaysNothingOnStderr() throws {
        let r = try KernelTestBed.execute(Self.smaf, ["demo", "--iterations", "3"], environment: KernelTestBed.environmentWithoutSMAF)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "smaf demo wrote on stderr:\n\(r.stderr)")
        #expect(r.stdout.contains("== benchmark"), "the demo ran to its benchmark:\n\(r.stdout.suffix(2000))")
        if KernelTestBed.inVM {
            #expect(r.stdout.contains("gbm"), "gbm loaded, so Mesa opened devices:\n\(r.stdout.suffix(2000))")
        }
    }

    /// `smaf alloc --allocator gbm` on each primary node (gbm.device picks it).
    /// In the test bed every node takes a BO (kms_swrast serves vgem and
    /// bochs, after the loader failed to find a driver of their own); on
    /// real hardware a node gbm cannot serve may refuse, in one error line.
    @Test(arguments: DRMDevice.primaryNodes())
    func aGBMAllocationSaysNothingOnStderr(node: String) throws {
        var env = KernelTestBed.environmentWithoutSMAF
        env["SMAF_GBM_DEVICE"] = node
        let r = try KernelTestBed.execute(Self.smaf, ["alloc", "--allocator", "gbm", "--width", "64", "--height", "64", "--format", "XR24"],
                                          environment: env)
        if r.status == 0 || KernelTestBed.inVM {
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.isEmpty, "smaf alloc --allocator gbm on \(node) wrote on stderr:\n\(r.stderr)")
            #expect(r.stdout.hasPrefix("allocated ") && r.stdout.contains(" with gbm: "), "\(r.stdout)")
        } else {
            #expect(r.stderr.hasPrefix("smaf: error: ") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
        }
    }
}
