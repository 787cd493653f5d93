import Foundation
import Testing

/// `smaf bench` runs end to end and says what it measured in well-formed
/// JSON, CSV and SVG. No timing is asserted: only that every figure is there
/// and is a measurement (positive, finite), never what it should be.
@Suite struct BenchSmokeTests {
    func bench(_ args: [String]) throws -> TestSupport.RunResult {
        var environment = ProcessInfo.processInfo.environment
        environment["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("memfd")
        environment["SMAF_DEFAULT_PLUGINS"] = "0"
        environment["SMAF_RANKS"] = nil
        return try TestSupport.run(TestSupport.smafExecutable, ["bench"] + args, environment: environment)
    }

    func object(_ any: Any?) -> [String: Any] { any as? [String: Any] ?? [:] }
    func array(_ any: Any?) -> [[String: Any]] { any as? [[String: Any]] ?? [] }
    func number(_ any: Any?) -> Double { (any as? NSNumber)?.doubleValue ?? -1 }

    @Test func aShortRunGivesWellFormedJSON() throws {
        let r = try bench(["--iterations", "3", "--sizes", "4K", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let json = object(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)))
        #expect((object(json["machine"])["kernel"] as? String)?.hasPrefix("Linux ") == true)
        #expect(number(json["iterations"]) == 3)

        let results = array(json["results"])
        // memfd at 4 KiB: smaf in three modes, and the raw baseline for the cold one.
        let keys = Set(results.map { "\($0["allocator"] ?? "")/\($0["shape"] ?? "")/\($0["mode"] ?? "")/\($0["path"] ?? "")" })
        #expect(keys == ["memfd/4 KiB/cold/smaf", "memfd/4 KiB/cold/raw", "memfd/4 KiB/pooled/smaf", "memfd/4 KiB/pooled-noscrub/smaf"])
        for result in results {
            #expect(number(result["bytes"]) == 4096)
            let phases = object(result["phases"])
            #expect(Set(phases.keys) == ["allocate", "export", "touch", "import", "release"])
            for name in ["allocate", "export", "touch", "release"] {
                let p = object(phases[name])
                #expect(number(p["samples"]) == 3)
                #expect(number(p["median_ns"]) > 0, "\(name) of \(result["path"] ?? "") \(result["mode"] ?? "")")
                #expect(number(p["median_ns"]) <= number(p["p90_ns"]) && number(p["p90_ns"]) <= number(p["p99_ns"]))
            }
            #expect(number(result["touch_gb_per_s"]) > 0)
            // Imported where there are DRM devices (the VM's vgem takes udmabuf), nowhere without.
            let hasDRM = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/dri")) ?? []).contains { $0.hasPrefix("card") }
            #expect((result["import_into"] as? [String])?.isEmpty == !hasDRM)
        }

        let ratios = array(json["ratios"])
        #expect(ratios.count == 1)
        let ratio = number(ratios.first?["ratio"])
        #expect(ratio > 0 && ratio.isFinite)
        #expect(number(ratios.first?["target"]) == 1.2)
        #expect(ratios.first?["meets_target"] is Bool)

        let pool = array(json["pool"])
        #expect(pool.count == 1)
        #expect(number(pool.first?["recycled_scrubbed_ns"]) > 0 && number(pool.first?["speedup_unscrubbed"]) > 0)

        // The scale run: 1, 10, 100 and 1,000 live buffers.
        let scale = array(json["scale"])
        #expect(scale.map { Int(number($0["live"])) } == [1, 10, 100, 1000])
        #expect(scale.allSatisfy { number(object($0["allocate"])["samples"]) == number($0["live"]) })
    }

    @Test func csvAndPlot() throws {
        let svg = NSTemporaryDirectory() + "smaf-bench-\(getpid()).svg"
        defer { unlink(svg) }
        let r = try bench(["--iterations", "2", "--sizes", "4K,64K", "--modes", "cold", "--live", "1,5", "--csv", "--plot", svg])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first == "allocator,shape,bytes,mode,path,phase,median_ns,p90_ns,p99_ns,samples,touch_gb_per_s,ratio")
        // 2 sizes x (smaf, raw) x (5 phases + cycle).
        #expect(lines.count == 1 + 2 * 2 * 6)
        #expect(lines.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 12 })

        let text = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(text.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(text.hasSuffix("</svg>\n"))
        // memfd solid, its raw baseline dashed, and the live-buffer line.
        #expect(text.components(separatedBy: "<polyline").count - 1 == 3)
        #expect(text.contains("stroke-dasharray"))
        // Well formed: every element opened is closed.
        #expect(text.components(separatedBy: "<g>").count == text.components(separatedBy: "</g>").count)
    }

    @Test(arguments: [
        (["--sizes", "5000"], "smaf: error: --sizes: 5000 is not a multiple of 4 KiB (each size is laid out as 1024-pixel XR24 rows)"),
        (["--sizes", "lots"], "smaf: error: --sizes: 'lots' is not a size (examples: 4K, 64K, 1M, 8M)"),
        (["--image", "1920x:XR24"], "smaf: error: --image: '1920x:XR24' is not WIDTHxHEIGHT:FORMAT (example: 1920x1080:XR24)"),
        (["--modes", "warm"], "smaf: error: --modes: 'warm' is not one of cold, pooled, pooled-noscrub"),
        (["--live", "0"], "smaf: error: --live: '0' is not a count from 1 to 100000"),
    ])
    func badArgumentsGiveOneLine(args: [String], message: String) throws {
        let r = try bench(args)
        #expect(r.status == 64)
        #expect(r.stderr == message + "\n")
        #expect(r.stdout.isEmpty)
    }

    @Test func anAllocatorThatIsNotLoadedIsNamed() throws {
        let r = try bench(["--allocator", "gbm", "--iterations", "1", "--sizes", "4K", "--live", "1", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let json = object(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)))
        #expect(array(json["results"]).isEmpty)
        #expect((json["notes"] as? [String])?.contains { $0.hasPrefix("gbm: not loaded") } == true)
    }
}
