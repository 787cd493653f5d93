import ArgumentParser
import SMAF

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Show what smaf does in one run: plugins, devices, a scanout-sized buffer and why it went where it went."
    )

    func run() throws {
        let registry = try AllocatorRegistry.load()
        print("== allocator plugins, in the order they are tried")
        print(pluginTable(registry))
        for w in registry.loadWarnings { print("refused: \(w)") }
    }
}
