import Foundation
import SMAF
import Testing

/// Generic rejections come from the core, from what each allocator
/// declared (ABI 1.1), in one wording whichever allocator they hit: memfd
/// and shm (Swift, the kit), carveout and the strict fixture (C, the
/// header alone). A plugin built for 1.0 declares nothing and keeps its own.
@Suite struct CapabilityFilterTests {
    static let declaring = ["memfd", "shm", "carveout", "strict"]

    func registry() throws -> AllocatorRegistry {
        let strict = try TestSupport.fixture(["FIXTURE_NAME": "\"strict\"", "FIXTURE_STRICT": ""])
        return try TestSupport.registry(["memfd", "shm", "carveout"].map(TestSupport.shippedPlugin) + [strict],
                                        ranks: "carveout:100") // rank none by default: asked only when named
    }

    func device(_ edit: (inout DeviceConstraints) -> Void) -> DeviceConstraints {
        var d = DeviceConstraints(name: "camera", usage: [.camera])
        edit(&d)
        return d
    }

    @Test(arguments: [
        ("contiguous", "it cannot deliver physically contiguous memory, which device camera needs"),
        ("dma bits", "it cannot keep memory below 2^32, which device camera needs"),
        ("secure", "the CPU can map its memory, and device camera needs memory the CPU cannot map"),
        ("alignment", "it aligns buffers to at most 4096 bytes, and device camera needs 65536"),
    ])
    func oneWordingWhicheverAllocatorItHits(need: String, reason: String) throws {
        let camera = device { d in
            switch need {
            case "contiguous": d.contiguous = true
            case "dma bits": d.dmaAddressBits = 32
            case "secure": d.secure = true
            default: d.addressAlignment = 65536
            }
        }
        let e = try registry().choose(.bytes(1 << 20), devices: [camera])
        #expect(e.chosen == nil)
        let reasons = Dictionary(uniqueKeysWithValues: e.entries.map { ($0.allocator, $0.reason) })
        for name in Self.declaring { #expect(reasons[name] == reason, "\(name): \(reasons[name] ?? "not asked")") }
    }

    /// Without udmabuf none of them makes dma-bufs (memfd declares so where udmabuf is missing).
    @Test(.enabled(if: access("/dev/udmabuf", F_OK) != 0, "this machine has /dev/udmabuf"))
    func aDeviceThatImportsADmaBufIsTurnedAwayByTheDeclarations() throws {
        let importer = device { $0.needsDmaBuf = true }
        let e = try registry().choose(.bytes(4096), devices: [importer])
        for entry in e.entries where Self.declaring.contains(entry.allocator) {
            #expect(entry.reason == "its memory is not a dma-buf, and device camera imports one", "\(entry.allocator)")
        }
    }

    @Test func theDeclarationsAreWhatSmafListShows() throws {
        let r = try registry()
        #expect(r.plugin(named: "memfd")?.capabilities?.flags.names == ["cpu-mappable", "bytes", "images"] ||
                r.plugin(named: "memfd")?.capabilities?.flags.names == ["dma-buf", "cpu-mappable", "bytes", "images"])
        #expect(r.plugin(named: "strict")?.capabilities?.modifiers == [.linear], "no list declared: LINEAR")
        #expect(r.plugin(named: "strict")?.abiVersion.minor == 1)
    }
}
