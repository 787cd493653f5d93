import Glibc

/// Where the running smaf comes from: an installed prefix (PREFIX/bin/smaf) or
/// the source tree it was built in (TREE/.build/<triple>/<config>/smaf).
/// `smaf plugin new` points the projects it writes at the same smaf, so a
/// plugin builds and loads from a fresh clone without `make install`.
enum Origin {
    /// This executable, symlinks resolved.
    static var executable: String? { realPath("/proc/self/exe") }

    /// PREFIX, the folder above this executable's bin/ (whether or not smaf is installed there).
    static var prefix: String {
        let exe = executable ?? "/usr/local/bin/smaf"
        let bin = parent(exe)
        return bin.hasSuffix("/bin") ? parent(bin) : "/usr/local"
    }

    /// The smaf source tree this executable was built in, if it runs from
    /// one: the nearest folder above it holding Package.swift and the ABI header.
    static var sourceTree: String? {
        guard var dir = executable.map(parent) else { return nil }
        // .build/x86_64-unknown-linux-gnu/debug/smaf: the tree is 3 levels up; allow for custom build paths.
        var levels = 0
        while levels < 6 && dir != "/" && dir != "." {
            if access("\(dir)/Package.swift", R_OK) == 0 && access("\(dir)/\(pluginHeaderInTree)", R_OK) == 0 { return dir }
            dir = parent(dir)
            levels += 1
        }
        return nil
    }

    static let pluginHeaderInTree = "Sources/CSMAFPlugin/include/smaf/plugin.h"

    /// The folder holding smaf/plugin.h for this smaf: PREFIX/include when it
    /// is installed there, else its source tree's, else nil.
    static var pluginIncludeDirectory: String? {
        if access("\(prefix)/include/smaf/plugin.h", R_OK) == 0 { return "\(prefix)/include" }
        return sourceTree.map { "\($0)/Sources/CSMAFPlugin/include" }
    }

    /// smaf's source tree for SwiftPM packages: PREFIX/share/smaf/source when
    /// installed, else the tree this executable was built in.
    static var packageSource: String {
        let installed = "\(prefix)/share/smaf/source"
        if access("\(installed)/Package.swift", R_OK) == 0 { return installed }
        return sourceTree ?? installed
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}
