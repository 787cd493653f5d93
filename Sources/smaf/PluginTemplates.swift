/// The projects `smaf plugin new` writes: a complete out-of-tree plugin that
/// builds against an installed smaf, or the smaf tree that wrote it, and passes `smaf plugin check` as
/// generated. Both serve plain CPU memory (Swift: POSIX shm, C: a sealed
/// memfd) at rank none, so a new plugin takes no buffer until it is named or
/// its author raises the rank; the comments mark where a vendor's heap goes.
enum PluginTemplates {
    struct File {
        var path: String
        var contents: String
    }

    /// `my-heap` -> `MyHeap`, a Swift type name.
    static func typeName(_ name: String) -> String {
        name.split(whereSeparator: { $0 == "-" || $0 == "_" }).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// `my-heap` -> `my_heap`, a C identifier.
    static func cName(_ name: String) -> String { name.replacingOccurrences(of: "-", with: "_") }

    // MARK: Swift

    /// A SwiftPM package whose dynamic library is the plugin. `smafSource`
    /// is the smaf source tree it depends on by path (for the kit).
    static func swift(name: String, smafSource: String) -> [File] {
        let type = typeName(name) + "Allocator", target = typeName(name) + "Plugin"
        let identity = smafSource.split(separator: "/").last.map { $0.lowercased() } ?? "smaf"
        return [
            File(path: "Package.swift", contents: #"""
            // swift-tools-version:6.1
            import PackageDescription

            // The plugin is the dynamic library product: .build/<config>/libsmafplugin_\#(name).so.
            // It depends on smaf's source tree for SMAFPluginKit (PREFIX/share/smaf/source
            // when smaf is installed; see README.md to point it elsewhere).
            let package = Package(
                name: "smaf-plugin-\#(name)",
                platforms: [.macOS(.v15)],
                products: [
                    .library(name: "smafplugin_\#(name)", type: .dynamic, targets: ["\#(target)"]),
                ],
                dependencies: [
                    .package(path: "\#(smafSource)"),
                ],
                targets: [
                    .target(name: "\#(target)", dependencies: [.product(name: "SMAFPluginKit", package: "\#(identity)")]),
                ]
            )

            """#),
            File(path: "Sources/\(target)/\(type).swift", contents: swiftSource(name: name, type: type)),
            File(path: ".gitignore", contents: ".build/\n"),
            File(path: "README.md", contents: readme(name: name, build: #"""
            swift build -c release
            export SMAF_PLUGIN_PATH=$PWD/.build/release/libsmafplugin_\#(name).so
            smaf list
            smaf alloc --size 4M --allocator \#(name) --explain
            smaf plugin check $SMAF_PLUGIN_PATH
            """#, install: "install -D -m 0755 .build/release/libsmafplugin_\(name).so PREFIX/lib/smaf/plugins/libsmafplugin_\(name).so",
            dependency: """
            The package depends on smaf's source tree, for SMAFPluginKit, by path:
            `\(smafSource)` (smaf installs its source in `PREFIX/share/smaf/source`).
            If smaf lives elsewhere, change the `.package(path:)` line in Package.swift,
            and the `package:` name next to it to that folder's last path component.
            """)),
        ]
    }

    private static func swiftSource(name: String, type: String) -> String {
        #"""
        import Glibc
        import SMAFPluginKit
        import Synchronization

        /// \#(name): TODO say in one line what memory this allocator hands out and
        /// which devices need it. As generated it serves POSIX shared memory (a file
        /// in /dev/shm, unlinked at once): CPU-mappable, not a dma-buf, not
        /// contiguous. Put your heap in `makeMemory`, keep match() honest about what
        /// that memory is, and run `smaf plugin check` after every change.
        final class \#(type): AllocatorPlugin {
            static let name = "\#(name)"
            static let summary = "TODO: what memory, for which devices"
            /// Rank none: used only when a request names it (`smaf alloc --allocator \#(name)`).
            /// Raise it (SMAF_RANK_MARGINAL, _SECONDARY, _PRIMARY) once it is ready.
            static let defaultRank = Int32(SMAF_RANK_NONE)
            /// Rows start on cache lines when no device asks for more.
            static let pitchAlignment: UInt64 = 64
            static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

            private let sequence = Mutex<UInt64>(0)

            init(core: PluginCore) throws(PluginError) {
                // Open your device or heap here; throw PluginError(errno:, "why") if it is
                // missing, and the core skips this plugin with that reason.
                core.log(SMAF_LOG_DEBUG, "opened")
            }

            /// Decides from the request and the devices alone: no allocation, no state
            /// change, the same answer every time. Every rejection says why.
            /// What every buffer is, said once: the core turns away devices
            /// that need more (a dma-buf, contiguity, an address range, other
            /// layouts) before match() is asked. TODO: your memory's truth.
            var capabilities: Capabilities { Capabilities([.cpuMappable, .bytes, .images]) }

            func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
                if request.size == 0 { return .reject("a buffer of 0 bytes") }
                if request.isImage && ((merged.maxWidth > 0 && request.width > merged.maxWidth)
                    || (merged.maxHeight > 0 && request.height > merged.maxHeight)) {
                    return .reject("\(request.width)x\(request.height) exceeds the devices' maximum")
                }
                if case .failure(let why) = layout(request, merged) { return .reject(why.message) }
                return .accept
            }

            /// The linear layout and the page-rounded size, or why there is none.
            private func layout(_ request: PluginRequest, _ merged: PluginConstraints) -> Result<(ImageLayout, UInt64), PluginError> {
                switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.pitchAlignment) {
                case .failure(let f):
                    return .failure(PluginError(errno: EINVAL, f.description))
                case .success(let l):
                    let (sum, overflow) = l.size.addingReportingOverflow(Self.pageSize - 1)
                    let size = sum / Self.pageSize * Self.pageSize
                    guard !overflow, size <= UInt64(Int64.max) else { return .failure(PluginError(errno: EOVERFLOW, "\(l.size) bytes is too large")) }
                    return .success((l, size))
                }
            }

            func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
                let (layout, size) = try self.layout(request, merged).get()
                var allocation = PluginAllocation(fd: try makeMemory(size), size: size, guarantees: [.cpuMappable])
                allocation.describe(request: request, layout: layout, modifier: .linear)
                allocation.detail = "\(size) bytes of POSIX shared memory"
                return allocation
            }

            /// TODO: your heap. Returns an fd this plugin owns until release().
            private func makeMemory(_ size: UInt64) throws(PluginError) -> Int32 {
                let name = "/smaf-\(Self.name)-\(getpid())-\(sequence.withLock { $0 += 1; return $0 })"
                let fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600) // shm_open adds O_CLOEXEC
                guard fd >= 0 else {
                    let e = errno
                    throw PluginError(errno: e, "shm_open(\(name)) failed: \(String(cString: strerror(e)))")
                }
                shm_unlink(name)
                guard ftruncate(fd, off_t(size)) == 0 else {
                    let e = errno
                    close(fd)
                    throw PluginError(errno: e, "ftruncate(\(size)) failed: \(String(cString: strerror(e)))")
                }
                return fd
            }

            /// Closes every fd allocate() made for this allocation.
            func release(_ allocation: PluginAllocation) {
                close(allocation.fd)
            }
        }

        @_cdecl("smaf_plugin_entry")
        public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
            PluginExport.entry(\#(type).self)
        }

        """#
    }

    // MARK: C

    /// A C source file and a Makefile that takes the header from pkg-config
    /// where smaf is installed, else from `include`, the smaf that wrote the
    /// project (its PREFIX/include or its source tree), so the project builds
    /// from a fresh clone without `make install`. `smaf` is that smaf's
    /// executable, for `make check` where no smaf is on PATH.
    static func c(name: String, include: String?, smaf: String?) -> [File] {
        let cname = cName(name)
        // make cannot quote a path with blanks or make syntax in it: such a path is left out,
        // and the Makefile's error says how to give one.
        let include = include.flatMap(makeSafe) ?? ""
        let smaf = smaf.flatMap(makeSafe) ?? "smaf"
        return [
            File(path: "\(cname).c", contents: cSource(name: name, cname: cname)),
            File(path: "Makefile", contents: #"""
            # libsmafplugin_\#(name).so. The header <smaf/plugin.h> comes from pkg-config's
            # smaf-plugin where smaf is installed (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a
            # prefix pkg-config does not search), else from SMAF_INCLUDE: the smaf that
            # generated this project. `make check` runs smaf's conformance checks.
            PKG_CONFIG ?= pkg-config
            CFLAGS ?= -O2 -g
            LIB := libsmafplugin_\#(name).so
            SMAF_INCLUDE ?= \#(include)
            # The smaf on PATH, else the one that generated this project.
            SMAF ?= $(if $(shell command -v smaf),smaf,\#(smaf))

            ifeq ($(shell $(PKG_CONFIG) --exists smaf-plugin && echo yes),yes)
            SMAF_CFLAGS := $(shell $(PKG_CONFIG) --cflags smaf-plugin)
            PLUGINDIR ?= $(shell $(PKG_CONFIG) --variable=plugindir smaf-plugin)
            else ifneq ($(wildcard $(SMAF_INCLUDE)/smaf/plugin.h),)
            SMAF_CFLAGS := -I$(SMAF_INCLUDE)
            PLUGINDIR ?= /usr/local/lib/smaf/plugins
            else
            $(error smaf/plugin.h not found: pkg-config knows no smaf-plugin and SMAF_INCLUDE ($(SMAF_INCLUDE)) has none; build with: make SMAF_INCLUDE=<smaf tree>/Sources/CSMAFPlugin/include)
            endif

            all: $(LIB)

            $(LIB): \#(cname).c
            \#t$(CC) $(CFLAGS) -std=c11 -Wall -Wextra -fPIC -shared $(SMAF_CFLAGS) -o $@ $< $(LDFLAGS)

            check: $(LIB)
            \#t$(SMAF) plugin check ./$(LIB)

            install: $(LIB)
            \#tinstall -D -m 0755 $(LIB) $(DESTDIR)$(PLUGINDIR)/$(LIB)

            clean:
            \#trm -f $(LIB)

            .PHONY: all check install clean

            """#),
            File(path: "README.md", contents: readme(name: name, build: #"""
            make
            export SMAF_PLUGIN_PATH=$PWD/libsmafplugin_\#(name).so
            smaf list
            smaf alloc --size 4M --allocator \#(name) --explain
            make check
            """#, install: "make install", dependency: """
            The Makefile takes the header from `pkg-config --cflags smaf-plugin` where smaf is
            installed (with smaf outside the standard prefixes, set
            `PKG_CONFIG_PATH=PREFIX/lib/pkgconfig`), else from `SMAF_INCLUDE`, set to the smaf
            that generated this project: `make SMAF_INCLUDE=<smaf tree>/Sources/CSMAFPlugin/include`
            points it at another. Without an installed smaf, `smaf` above is the one in
            `<smaf tree>/.build/debug/`.
            """)),
        ]
    }

    /// `path` if make can take it as written (no blanks, quotes, backslashes or make syntax), else nil.
    static func makeSafe(_ path: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,@=~")
        return !path.isEmpty && path.allSatisfy(allowed.contains) ? path : nil
    }

    private static func readme(name: String, build: String, install: String, dependency: String) -> String {
        """
        # smaf plugin: \(name)

        An allocator plugin for smaf, generated by `smaf plugin new`. As generated it hands
        out plain CPU memory at rank none (used only when a request names it); the source
        marks with TODO where your heap goes. smaf's docs/PLUGINS.md describes the ABI:
        what match() must and must not do, who owns which fd, threading, versions.

        ## Build, load, check

        ```sh
        \(build)
        ```

        `smaf plugin check` runs the conformance checks (deterministic match, bad requests
        refused, allocations as promised, no leaked fds, threads, open/close). Watch the core
        load the plugin and every match verdict with `SMAF_LOG=debug`.

        \(dependency)

        ## Install

        ```sh
        \(install)
        ```

        smaf loads every `*.so` in `PREFIX/lib/smaf/plugins`, and the files or folders in
        `SMAF_PLUGIN_PATH` before them. Change the rank without rebuilding:
        `SMAF_RANKS=\(name):secondary`.

        """
    }
}
