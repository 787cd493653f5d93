import Foundation
import Testing

/// The C API with hostile arguments (Tests/Fixtures/capi_hostile.c), built
/// against the header in the tree and the libsmafapi.so next to the tests.
@Suite struct CAPIHostileTests {
    @Test func badArgumentsAreRefusedWithOneLine() throws {
        let root = TestSupport.packageRoot
        let build = TestSupport.buildDirectory
        let program = NSTemporaryDirectory() + "smaf-capi-hostile-\(getpid())"
        defer { unlink(program) }
        let cc = try TestSupport.run("/usr/bin/cc", ["-Wall", "-Werror", "-o", program, "\(root)/Tests/Fixtures/capi_hostile.c",
                                                     "-I", "\(root)/Sources/CSMAFAPI/include", "-L", build, "-lsmafapi",
                                                     "-Wl,-rpath,\(build)"])
        try #require(cc.status == 0, "\(cc.stderr)")
        var env = ProcessInfo.processInfo.environment
        env["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("memfd")
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        let r = try TestSupport.run(program, [], environment: env)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasSuffix("all checks passed\n"), "\(r.stdout)")
    }
}
