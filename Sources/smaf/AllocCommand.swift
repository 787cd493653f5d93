import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFProbe
import SMAFSys

struct AllocCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Allocate one buffer for a set of devices and show what was chosen.",
        discussion: """
        Ask for bytes (--size 8M) or an image (--width 1920 --height 1080 --format \
        XR24). Each --device adds a device constraint descriptor (JSON, see \
        docs/CONSTRAINTS.md); the first allocator in rank order whose match() accepts \
        all of them allocates.

        Hand the buffer to another program with --exec, and smaf exits with its \
        status. The program gets the buffer as fd 3, and in its environment:
          SMAF_FD=3 SMAF_SIZE SMAF_FORMAT SMAF_WIDTH SMAF_HEIGHT SMAF_MODIFIER
          SMAF_PLANES=offset:stride,... SMAF_DMABUF=1|0
        For example:
          smaf alloc --size 4M --exec -- sh -c 'ls -l /proc/self/fd/3'
        """
    )

    @OptionGroup var options: RegistryOptions

    @Option(help: "Bytes to allocate: 4096, 64K, 8M, 1G.")
    var size: String?
    @Option(help: "Image width in pixels.") var width: UInt32?
    @Option(help: "Image height in pixels.") var height: UInt32?
    @Option(help: "DRM format: a fourcc (XR24) or its name (XRGB8888).")
    var format: String?
    @Option(name: .customLong("modifier"), help: "Acceptable modifier (LINEAR, INVALID, 0x...); repeat for several.")
    var modifiers: [String] = []
    @Option(name: .customLong("device"), help: "A device: a descriptor file (JSON) or a DRM node to probe (/dev/dri/card0); repeat for several.")
    var devices: [String] = []
    @Option(help: "Force this allocator by name, even one ranked 'none'.")
    var allocator: String?
    @Flag(help: "Print every allocator's verdict, in the order they were asked.")
    var explain = false
    @Flag(help: "Mark the buffer secure: a secure module grants each device access and decides whether the CPU may map it.")
    var secure = false
    @Option(help: "Rules file for the policy secure module (JSON, see docs/SECURE.md); implies --secure.")
    var policy: String?
    @Option(name: .customLong("secure-module"), help: "The secure module to use (default: the highest ranked).")
    var secureModule: String?
    @Option(name: .customLong("export-to"), help: "For a secure buffer: the attached device --exec hands the fd to (default: the first).")
    var exportTo: String?
    @Flag(help: "Run the command after -- with the buffer as fd 3; exit with its status.")
    var exec = false
    @Argument(parsing: .postTerminator, help: .hidden)
    var command: [String] = []

    func validate() throws {
        if size != nil && (width != nil || height != nil || format != nil) {
            throw ValidationError("give --size or --width/--height/--format, not both")
        }
        if size == nil && (width == nil || height == nil || format == nil) {
            throw ValidationError("give --size, or all of --width, --height and --format")
        }
        if exec && command.isEmpty { throw ValidationError("--exec needs a command after --, e.g. --exec -- sh -c 'ls -l /proc/self/fd/3'") }
        if !exec && !command.isEmpty { throw ValidationError("a command after -- needs --exec") }
    }

    func request() throws -> BufferRequest {
        if let size {
            guard let bytes = parseSize(size) else {
                throw SMAFError(.invalidRequest, "size: '\(size)' is not a size (examples: 4096, 64K, 8M, 1G)")
            }
            return .bytes(bytes, allocator: allocator)
        }
        guard let format, let fourcc = FourCC(parsing: format) else {
            throw SMAFError(.invalidRequest, "format: '\(format ?? "")' is not a known DRM format (examples: XR24, XRGB8888, NV12)")
        }
        let mods = try modifiers.map { text in
            guard let m = Modifier(parsing: text) else {
                throw SMAFError(.invalidRequest, "modifier: '\(text)' is not LINEAR, INVALID or a number")
            }
            return m
        }
        return .image(width: width!, height: height!, format: fourcc, modifiers: mods, allocator: allocator)
    }

    func run() throws {
        let isSecure = secure || policy != nil || secureModule != nil
        let registry = try options.registry(settings: policy.map { ["policy.rules": $0] } ?? [:])
        let descriptors = try devices.map { path throws(SMAFError) in
            path.hasPrefix("/dev/dri/") ? try DeviceConstraints.probe(node: path) : try DeviceConstraints.load(path: path)
        }
        let buffer = try registry.buffer(try request())
        if isSecure { try buffer.markSecure(module: secureModule ?? (policy != nil ? "policy" : nil)) }
        for d in descriptors { try buffer.attach(d) }
        let allocation: Allocation
        do { allocation = try buffer.materialize() } catch {
            if explain, let e = buffer.explanation { printErr(e.description) }
            if explain { buffer.securityLog.forEach { printErr(DisplayText.escaped($0)) } }
            throw error
        }
        if options.json {
            try printJSON(AllocJSON(allocation: allocation, explanation: explain ? buffer.explanation : nil,
                                    security: isSecure ? buffer.securityLog : nil))
        } else {
            print(describe(allocation))
            if explain, let e = buffer.explanation { print(e.description) }
            if explain && isSecure { print("secure module decisions:\n" + buffer.securityLog.map { "  " + DisplayText.escaped($0) }.joined(separator: "\n")) }
        }
        if exec {
            fflush(nil) // our report first, then the child's output
            let fd = isSecure ? try buffer.exportFD(for: exportTo ?? descriptors.first?.name ?? "cpu") : try buffer.exportFD()
            let status = try runWithBuffer(command, fd: fd.rawValue, allocation)
            throw ExitCode(status)
        }
    }

    struct AllocJSON: Encodable {
        var allocation: Allocation
        var explanation: Explanation?
        var security: [String]?
    }
}

func printErr(_ text: String) { writeStandardError(text) }

/// The text `alloc` and `demo` print for an allocation.
func describe(_ a: Allocation) -> String {
    // detail and exporter are the plugin's words.
    var lines = ["allocated \(formatBytes(a.size)) with \(a.allocator): \(DisplayText.escaped(a.detail))"]
    if let f = a.format {
        lines.append("  image:      \(a.width)x\(a.height) \(f), modifier \(a.modifier?.description ?? "-")")
        lines.append("  planes:     " + a.planes.enumerated().map { "\($0): offset \($1.offset) pitch \($1.stride)" }.joined(separator: "; "))
    }
    var guarantees: [String] = []
    if a.isDmaBuf { guarantees.append("dma-buf (exporter \(a.exporter.isEmpty ? "?" : DisplayText.escaped(a.exporter)))") }
    if a.cpuMappable { guarantees.append("cpu-mappable") }
    if a.contiguous { guarantees.append("contiguous (verified, largest run \(formatBytes(a.largestContiguous)))") }
    if a.coherent { guarantees.append("coherent") }
    if a.readOnly { guarantees.append("read-only") }
    if !a.isDmaBuf { guarantees.append("NOT a dma-buf (shared memory only)") }
    lines.append("  guarantees: \(guarantees.joined(separator: ", "))")
    return lines.joined(separator: "\n")
}

/// Runs `argv` with `fd` as its fd 3 and the SMAF_* description of the buffer.
func runWithBuffer(_ argv: [String], fd: Int32, _ a: Allocation) throws -> Int32 {
    var env = currentEnvironment()
    env["SMAF_FD"] = "3"
    env["SMAF_SIZE"] = "\(a.size)"
    env["SMAF_FORMAT"] = a.format?.code ?? ""
    env["SMAF_WIDTH"] = "\(a.width)"
    env["SMAF_HEIGHT"] = "\(a.height)"
    env["SMAF_MODIFIER"] = a.modifier.map { "0x" + String($0.rawValue, radix: 16) } ?? ""
    env["SMAF_PLANES"] = a.planes.map { "\($0.offset):\($0.stride)" }.joined(separator: ",")
    env["SMAF_DMABUF"] = a.isDmaBuf ? "1" : "0"

    return try spawnAndWait(argv, environment: env, fd3: fd)
}

/// Runs `argv` (argv[0] looked up on PATH unless it has a slash) with
/// `environment` (nil: this process's own) and, if given, `fd3` as its fd 3;
/// waits for it and returns its exit status, 128+N when signal N ended it.
func spawnAndWait(_ argv: [String], environment: [String: String]?, fd3: Int32? = nil) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // dup2 clears close-on-exec on the new descriptor, so fd 3 survives exec.
    if let fd3 { posix_spawn_file_actions_adddup2(&actions, fd3, 3) }

    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = environment.map { env in env.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { (cArgs + (cEnv ?? [])).forEach { free($0) } }
    var pid = pid_t()
    let rc = cEnv.map { posix_spawnp(&pid, argv[0], &actions, nil, cArgs, $0) } ?? posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
    guard rc == 0 else {
        throw CommandFailure(message: "exec: cannot run '\(argv[0])': \(String(cString: strerror(rc)))", code: 127)
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // WIFEXITED / WEXITSTATUS / WTERMSIG are macros; decode the wait status by hand.
    if status & 0x7f == 0 { return (status >> 8) & 0xff }
    return 128 + (status & 0x7f)
}
