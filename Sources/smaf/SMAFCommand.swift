import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFSys

@main
struct SMAFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smaf",
        abstract: "Secure Memory Allocation Framework: describe the devices that will touch a buffer, get memory all of them can use.",
        // Paragraphs are single lines (`\` joins the source lines): the parser
        // wraps them to the terminal. The variable list is a block of short lines.
        discussion: """
        smaf loads allocator plugins at run time, ranks them, and gives each buffer to \
        the first allocator whose match() accepts every attached device. Allocation is \
        deferred until the memory is first needed, so every device has had its say.

        Environment:
          SMAF_PLUGIN_PATH      plugin files or folders to search first (a:b:c)
          SMAF_DEFAULT_PLUGINS  0: search SMAF_PLUGIN_PATH only
          SMAF_RANKS            rank overrides: memfd:primary,dumb:none
          SMAF_LOG              error, warning (default), info or debug
          SMAF_CONFIG           another config file
          SMAF_<PLUGIN>_<KEY>   a plugin setting, e.g. SMAF_CMA_SIZE=64M

        The config file (~/.config/smaf/smaf.conf, else /etc/smaf/smaf.conf) has one \
        `key = value` a line: ranks, plugin_path, log, <plugin>.<setting>; the \
        environment wins over it.
        """,
        subcommands: [DemoCommand.self, ListCommand.self, AllocCommand.self, ProbeCommand.self, CMACommand.self, ScanoutCommand.self, PluginCommand.self, BenchCommand.self],
        defaultSubcommand: nil
    )

    /// `smaf bench ...` is smaf-bench's (BenchLauncher), help included;
    /// everything else is parsed here, with one rule for every error.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == BenchCommand.configuration.commandName { BenchLauncher.exec(Array(arguments.dropFirst())) }
        runWithOneErrorRule(arguments)
    }
}

/// Options every command that touches the registry shares.
struct RegistryOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text.")
    var json = false

    /// The registry for this environment, with `settings` (plugin.key)
    /// layered on top, as command-line options like --policy need.
    func registry(settings: [String: String] = [:]) throws -> AllocatorRegistry {
        var configuration = try Configuration.fromEnvironment()
        configuration.settings.merge(settings) { _, option in option }
        return AllocatorRegistry(configuration: configuration)
    }
}
