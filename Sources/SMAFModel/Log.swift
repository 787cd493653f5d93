import Glibc
import SMAFSys

public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case error = 0, warning, info, debug

    public init?(parsing text: String) {
        guard let l = LogLevel.allCases.first(where: { "\($0)" == text.lowercased() }) else { return nil }
        self = l
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// One line per event on stderr, `smaf: warning: [memfd] ...`, filtered by
/// SMAF_LOG. Plugins log through the same sink (smaf_core.log).
public struct Logger: Sendable {
    public var level: LogLevel

    public init(level: LogLevel) { self.level = level }

    public func callAsFunction(_ level: LogLevel, _ message: @autoclosure () -> String, plugin: String? = nil) {
        guard level <= self.level else { return }
        // Messages carry plugin words, paths and device names: escaped, so
        // none can end this line early and forge the next.
        let tag = plugin.map { "[\(DisplayText.escaped($0))] " } ?? ""
        writeStandardError("smaf: \(level): \(tag)\(DisplayText.escaped(message()))")
    }
}
