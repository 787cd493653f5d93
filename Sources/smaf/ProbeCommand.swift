import ArgumentParser
import SMAF
import SMAFCommandLine
import SMAFDRM
import SMAFProbe

struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Probe every DRM device into a constraint descriptor, with what it can import measured.",
        discussion: """
        For each /dev/dri/card* node: the driver, its caps, its display planes \
        (formats and modifiers from IN_FORMATS), and which exporters' dma-bufs it \
        really imports: a small udmabuf, a buffer from each dma-heap and a dumb \
        buffer from each DRM device are test-imported. Import results are cached for \
        the current boot; --refresh measures again. The descriptor printed is what \
        `smaf alloc --device /dev/dri/cardN` uses.
        """
    )

    @Flag(help: "Print JSON for scripts instead of text.") var json = false
    @Flag(help: "Measure imports again instead of using this boot's cached results.") var refresh = false
    @Argument(help: "Nodes to probe (default: every /dev/dri/card*).") var nodes: [String] = []

    func run() throws {
        let paths = nodes.isEmpty ? DRMDevice.primaryNodes() : nodes
        let probes = try paths.map { node throws(SMAFError) in try DeviceProbe.run(node: node, refresh: refresh) }
        if json {
            try printJSON(probes)
            return
        }
        if probes.isEmpty { print("no DRM devices (/dev/dri/card* missing); scripts/vm probes the VM test bed's") }
        for p in probes {
            print(describe(p))
        }
    }

    func describe(_ p: DeviceProbe) -> String {
        var lines = ["\(p.node): \(p.driver) \(p.driverVersion) -> device \(p.constraints.name)"]
        if let device = try? DRMDevice(path: p.node) {
            let caps = [("dumb buffers", device.supportsDumbBuffers), ("PRIME import", device.canImportPRIME),
                        ("PRIME export", device.canExportPRIME), ("ADDFB2 modifiers", device.supportsFramebufferModifiers)]
            lines.append("  caps:     " + caps.map { "\($0.0) \($0.1 ? "yes" : "no")" }.joined(separator: ", "))
            if let kms = device.kmsInfo() {
                lines.append("  display:  \(kms.connectorCount) connectors, \(kms.crtcCount) CRTCs, framebuffers \(kms.minWidth)x\(kms.minHeight) to \(kms.maxWidth)x\(kms.maxHeight)")
                for plane in kms.planes {
                    let formats = plane.formats.map { FourCC(rawValue: $0.format).code }.joined(separator: " ")
                    lines.append("  plane \(plane.id) (\(plane.type.rawValue)\(plane.hasInFormats ? "" : ", no IN_FORMATS")): \(formats)")
                }
            } else {
                lines.append("  display:  none (no KMS)")
            }
        }
        let imports = p.imports.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        lines.append("  imports:  \(imports.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }
}
