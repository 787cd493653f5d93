import Foundation
import SMAFDRM
import Testing

/// `smaf bench` against the real drivers: every shipped allocator that
/// loads is measured, each against its raw baseline, and the DRM import
/// phase imports into the devices that take the buffer (measured: vgem takes
/// udmabuf and dma-heap buffers; each DRM device takes its own dumb
/// buffers). No timing is asserted, only that every figure was measured.
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct BenchVMTests {
    func object(_ any: Any?) -> [String: Any] { any as? [String: Any] ?? [:] }
    func array(_ any: Any?) -> [[String: Any]] { any as? [[String: Any]] ?? [] }
    func number(_ any: Any?) -> Double { (any as? NSNumber)?.doubleValue ?? -1 }

    @Test func everyAllocatorAgainstItsRawBaselineWithImports() throws {
        let smaf = "\(KernelTestBed.buildDirectory)/smaf"
        let out = try KernelTestBed.run(smaf, ["bench", "--iterations", "3", "--sizes", "4K,1M", "--live", "1,10", "--json"])
        let json = object(try JSONSerialization.jsonObject(with: Data(out.utf8)))
        #expect(object(json["machine"])["in_vm"] as? Bool == KernelTestBed.inVM)
        let results = array(json["results"])
        let ratios = array(json["ratios"])

        // The three allocators that are always there in the test bed, plus
        // gbm when its library loads; each has a raw path.
        var expected = ["memfd", "dmaheap", "dumb"]
        if results.contains(where: { $0["allocator"] as? String == "gbm" }) { expected.append("gbm") }
        for allocator in expected {
            for shape in ["4 KiB", "1 MiB"] {
                let mine = results.filter { $0["allocator"] as? String == allocator && $0["shape"] as? String == shape }
                let paths = Set(mine.map { "\($0["mode"] ?? "")/\($0["path"] ?? "")" })
                #expect(paths.isSuperset(of: ["cold/smaf", "cold/raw", "pooled/smaf", "pooled-noscrub/smaf"]), "\(allocator) \(shape): \(paths)")
                let ratio = ratios.first { $0["allocator"] as? String == allocator && $0["shape"] as? String == shape }
                #expect(number(ratio?["ratio"]) > 0, "\(allocator) \(shape) has a ratio")
                for result in mine where result["mode"] as? String == "cold" {
                    let into = result["import_into"] as? [String] ?? []
                    #expect(!into.isEmpty, "\(allocator) \(shape) \(result["path"] ?? ""): imported into some DRM device")
                    #expect(number(object(object(result["phases"])["import"])["median_ns"]) > 0)
                    #expect(number(result["touch_gb_per_s"]) > 0)
                }
            }
        }
        // udmabuf buffers import into vgem only (the measured matrix).
        let memfd = results.first { $0["allocator"] as? String == "memfd" && $0["path"] as? String == "smaf" }
        #expect(memfd?["import_into"] as? [String] == ["vgem"])
        #expect(memfd?["exporter"] as? String == "udmabuf")

        // Scale rows for every measured allocator.
        let scale = array(json["scale"])
        for allocator in expected {
            #expect(scale.filter { $0["allocator"] as? String == allocator }.map { Int(number($0["live"])) } == [1, 10])
        }
    }
}
