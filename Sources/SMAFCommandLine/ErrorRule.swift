import ArgumentParser
import Glibc
import SMAFModel
import SMAFSys

/// An error a command-line tool reports itself (not the library's): one line, an exit code.
public struct CommandFailure: Error {
    public var message: String
    public var code: Int32

    public init(message: String, code: Int32 = 1) {
        self.message = message
        self.code = code
    }
}

extension ParsableCommand {
    /// Parses the command line and runs the command with one rule for every
    /// error, the same in smaf and smaf-bench: one line on stderr
    /// (`smaf: error: ...`), exit 1. Argument mistakes keep ArgumentParser's
    /// usage text (exit 64).
    public static func runWithOneErrorRule(_ arguments: [String]? = nil) {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let error as SMAFError {
            failCommand(error.message)
        } catch let error as CommandFailure {
            failCommand(error.message, code: error.code)
        } catch {
            exit(withError: error)
        }
    }
}

/// `smaf: error: MESSAGE` on stderr (escaped: one line), then exit.
public func failCommand(_ message: String, code: Int32 = 1) -> Never {
    writeStandardError("smaf: error: \(DisplayText.escaped(message))")
    Glibc.exit(code)
}
