import FoundationEssentials
import Glibc
import SMAF
import SMAFDRM
import SMAFSys

/// Turns a DRM device into a constraint descriptor, with what it can import
/// measured rather than guessed: DRM_CAP_PRIME says a driver imports, not
/// whose buffers. The probe test-imports a small buffer from every exporter
/// this machine has (udmabuf, each dma-heap, each DRM device's dumb buffers,
/// the device's own included) and records which ones it took.
public struct DeviceProbe: Sendable, Codable {
    public var node: String
    public var driver: String
    public var driverVersion: String
    public var kms: Bool
    /// Exporter ("udmabuf", "dma-heap:system", "drm:virtio_gpu") -> "ok" or the errno name.
    public var imports: [String: String]
    public var constraints: DeviceConstraints

    enum CodingKeys: String, CodingKey {
        case node, driver, kms, imports, constraints
        case driverVersion = "driver_version"
    }
}

extension DeviceConstraints {
    /// The descriptor of one DRM device: its name, scanout formats and size
    /// limits from KMS, and the exporters it imports from (cached per boot).
    public static func probe(node: String, refresh: Bool = false) throws(SMAFError) -> DeviceConstraints {
        try DeviceProbe.run(node: node, refresh: refresh).constraints
    }
}

extension DeviceProbe {
    /// Probes `node`, reusing this boot's cached import results unless `refresh`.
    public static func run(node: String, refresh: Bool = false) throws(SMAFError) -> DeviceProbe {
        let device: DRMDevice
        do { device = try DRMDevice(path: node) } catch { throw SMAFError.system(error, "probe") }
        let kms = device.kmsInfo()
        let nodeName = node.split(separator: "/").last.map(String.init) ?? node
        var c = DeviceConstraints(name: "\(device.driver)@\(nodeName)")
        c.importNode = node
        c.needsDmaBuf = true
        if let kms, kms.planes.contains(where: { $0.type == .primary }) {
            c.usage = [.scanout]
            // 0 in KMS means "not reported"; a descriptor leaves such a limit out.
            if kms.maxWidth > 0 { c.maxWidth = kms.maxWidth }
            if kms.maxHeight > 0 { c.maxHeight = kms.maxHeight }
            let formats = scanoutFormats(kms)
            if !formats.isEmpty { c.formats = formats }
        }
        let cache = ImportCache()
        let imports = (refresh ? nil : cache.lookup(node: node, driver: device.driver)) ?? measureImports(into: device)
        cache.store(node: node, driver: device.driver, imports: imports)
        c.importableFrom = imports.filter { $0.value == "ok" }.map(\.key).sorted()
        return DeviceProbe(node: node, driver: device.driver, driverVersion: device.driverVersion,
                           kms: kms != nil, imports: imports, constraints: c)
    }

    /// Every primary plane's formats, modifiers merged per format.
    static func scanoutFormats(_ kms: KMSInfo) -> [DeviceConstraints.FormatModifiers] {
        var order: [UInt32] = []
        var mods: [UInt32: [Modifier]] = [:]
        for plane in kms.planes where plane.type == .primary {
            for (format, modifiers) in plane.formats {
                if mods[format] == nil { order.append(format) }
                for m in modifiers.map(Modifier.init(rawValue:)) where !(mods[format]?.contains(m) ?? false) {
                    mods[format, default: []].append(m)
                }
            }
        }
        return order.map { .init(FourCC(rawValue: $0), mods[$0] ?? []) }
    }

    /// Imports one small buffer from each exporter into `device`.
    static func measureImports(into device: DRMDevice) -> [String: String] {
        var results: [String: String] = [:]
        func attempt(_ exporter: String, _ make: () throws -> UniqueFD?) {
            do {
                guard let fd = try make() else { return }
                _ = try device.importDmaBuf(fd.rawValue)
                results[exporter] = "ok"
            } catch let e as SystemError where e.call == "drmPrimeFDToHandle" {
                results[exporter] = e.errno.symbolicName
            } catch {
                // The exporter itself failed: nothing measured about the importer.
            }
        }
        let page = Memory.pageSize
        let udmabuf = UdmabufExporter()
        if udmabuf.isAvailable {
            attempt("udmabuf") {
                let memfd = try Memfd.create(name: "smaf-probe", size: page)
                try Memfd.addSeals(memfd.rawValue, UdmabufExporter.requiredSeals)
                return try udmabuf.export(memfd: memfd.rawValue, offset: 0, size: page, name: "smaf:probe")
            }
        }
        for heap in DmaHeap.heapNames() {
            attempt("dma-heap:\(heap)") {
                let heapFD = try UniqueFD.open(DmaHeap.path(heap), O_RDONLY)
                return try DmaHeap.allocate(heap: heapFD.rawValue, size: page, context: DmaHeap.path(heap))
            }
        }
        for node in DRMDevice.primaryNodes() {
            // A fresh fd per exporter keeps the GEM handles of the probe apart
            // from everyone else's, the importer's own included.
            guard let exporter = try? DRMDevice(path: node),
                  exporter.supportsDumbBuffers, exporter.canExportPRIME else { continue }
            attempt("drm:\(exporter.driver)") {
                let dumb = try exporter.createDumbBuffer(width: 64, height: 64, bitsPerPixel: 32)
                return try exporter.exportDmaBuf(dumb.handle)
            }
        }
        return results
    }
}
