import Foundation
import SMAF
import Testing

@Suite struct ConstraintTests {
    func device(_ name: String, _ configure: (inout DeviceConstraints) -> Void) -> DeviceConstraints {
        var d = DeviceConstraints(name: name)
        configure(&d)
        return d
    }

    @Test func alignmentsMergeByLCMAndLimitsByMinimum() throws {
        let display = device("display") { $0.pitchAlignment = 64; $0.maxWidth = 4096; $0.maxPitch = 65536 }
        let codec = device("codec") { $0.pitchAlignment = 96; $0.heightAlignment = 16; $0.maxWidth = 1920 }
        let m = try MergedConstraints([display, codec]).combined
        #expect(m.pitchAlignment == 192)
        #expect(m.heightAlignment == 16)
        #expect(m.maxWidth == 1920)
        #expect(m.maxPitch == 65536)
    }

    @Test func requirementsAreUnioned() throws {
        let camera = device("camera") { $0.contiguous = true; $0.dmaAddressBits = 32; $0.usage = [.camera] }
        let cpu = device("cpu") { $0.usage = [.cpuRead] }
        let m = try MergedConstraints([camera, cpu]).combined
        #expect(m.contiguous)
        #expect(m.cpuAccess)
        #expect(m.dmaAddressBits == 32)
        #expect(m.usage == [.camera, .cpuRead])
    }

    @Test func formatsAndModifiersIntersect() throws {
        let plane = device("plane") {
            $0.formats = [.init(.xrgb8888, [.linear, .invalid]), .init(.argb8888, [.linear]), .init(.nv12)]
        }
        let gpu = device("gpu") { $0.formats = [.init(.xrgb8888, [.linear]), .init(.nv12, [.linear])] }
        let m = try MergedConstraints([plane, gpu]).combined
        #expect(m.formats == [.init(.xrgb8888, [.linear]), .init(.nv12, [.linear])])
    }

    @Test func noCommonFormatNamesTheDevices() {
        let plane = device("plane") { $0.formats = [.init(.xrgb8888), .init(.argb8888)] }
        let isp = device("isp") { $0.formats = [.init(.nv12)] }
        let error = #expect(throws: SMAFError.self) { try MergedConstraints([plane, isp]) }
        #expect(error?.kind == .conflictingConstraints)
        #expect(error?.message == "no format all devices accept: device plane accepts XR24, AR24; device isp accepts NV12")
    }

    @Test func noCommonModifierSaysWhichFormat() {
        let a = device("a") { $0.formats = [.init(.xrgb8888, [.linear])] }
        let b = device("b") { $0.formats = [.init(.xrgb8888, [Modifier(rawValue: 0x0100_0000_0000_0001)])] }
        let error = #expect(throws: SMAFError.self) { try MergedConstraints([a, b]) }
        #expect(error?.message == "no modifier all devices accept: XR24: device a takes LINEAR, device b takes INTEL_0x1")
    }

    @Test func secureAndCPUConflict() {
        let tee = device("tee") { $0.secure = true }
        let cpu = device("cpu") { $0.cpuAccess = true }
        let error = #expect(throws: SMAFError.self) { try MergedConstraints([tee, cpu]) }
        #expect(error?.message == "device cpu needs CPU access but device tee requires a secure buffer the CPU may not map")
    }

    @Test func maxPitchBelowAlignmentConflicts() {
        let a = device("a") { $0.maxPitch = 128 }
        let b = device("b") { $0.pitchAlignment = 256 }
        let error = #expect(throws: SMAFError.self) { try MergedConstraints([a, b]) }
        #expect(error?.message == "max pitch 128 of device a is below the pitch alignment 256 of device b")
    }

    @Test func failedAddLeavesTheMergeUnchanged() throws {
        var m = try MergedConstraints([device("a") { $0.formats = [.init(.xrgb8888)] }])
        let before = m
        #expect(throws: SMAFError.self) { try m.add(device("b") { $0.formats = [.init(.nv12)] }) }
        #expect(m == before)
    }
}

@Suite struct DescriptorJSONTests {
    @Test func roundTrip() throws {
        var d = DeviceConstraints(name: "display-plane", usage: [.scanout, .cpuWrite])
        d.pitchAlignment = 64
        d.maxWidth = 4096
        d.formats = [.init(.xrgb8888, [.linear, .invalid]), .init(.nv12, [Modifier(rawValue: 0x0100_0000_0000_0002)])]
        d.contiguous = true
        d.importNode = "/dev/dri/card0"
        d.dmaAddressBits = 32
        let json = d.jsonString()
        #expect(json.contains("\"pitch_alignment\" : 64"))
        #expect(json.contains("\"XR24\""))
        let back = try DeviceConstraints.fromJSON(Array(json.utf8), source: "test")
        #expect(back == d)
    }

    @Test(arguments: [
        (#"{"name":"x","pitch_alignement":64}"#, "t.json: field 'pitch_alignement': unknown key 'pitch_alignement'"),
        (#"{"name":"x","formats":[{"format":"ZZ99"}]}"#, "t.json: field 'formats[0].format': unknown format \"ZZ99\" (try XR24 or XRGB8888)"),
        (#"{"name":"x","max_width":"wide"}"#, "t.json: field 'max_width': expected a non-negative whole number"),
        (#"{"usage":["scanout"]}"#, "t.json: missing required field 'name'"),
        (#"{"name":"x","usage":["teleport"]}"#, "t.json: field 'usage[0]': unknown usage 'teleport'"),
        (#"{"name":"x","pitch_alignment":0}"#, "t.json: field 'pitch_alignment': an alignment of 0 means nothing; leave the key out"),
        (#"{"name":"x","dma_address_bits":65}"#, "t.json: field 'dma_address_bits': must be 1...64, got 65"),
        (#"{"name": "x""#, "t.json: malformed JSON"),
    ])
    func badDescriptorsGiveOneClearLine(json: String, expected: String) {
        let error = #expect(throws: SMAFError.self) { try DeviceConstraints.fromJSON(Array(json.utf8), source: "t.json") }
        #expect(error?.kind == .invalidDescriptor)
        #expect(error?.message.hasPrefix(expected) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("\n") == false)
    }

    @Test func shippedExamplesParse() throws {
        let dir = "\(TestSupport.packageRoot)/examples/devices"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().filter { $0.hasSuffix(".json") }
        #expect(files.count >= 3)
        for f in files { _ = try DeviceConstraints.load(path: "\(dir)/\(f)") }
    }
}

