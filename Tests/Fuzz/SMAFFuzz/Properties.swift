import PolicyRules
import SMAF
import SMAFSys

/// What must hold for every input, whatever it is: each parser (a device
/// descriptor, policy rules, the config file, the strict JSON pass) gives
/// a value or one printable line, never a trap; and a descriptor that
/// parses writes back to JSON that parses to the same descriptor.
/// Memory is bounded by construction (inputs are capped, nesting is
/// capped at 32); the drivers measure it.
enum Properties {
    struct Tally {
        var inputs = 0
        var descriptors = 0
        var rules = 0
        var configs = 0
        var broken: [String] = []
    }

    /// Every input goes through every parser: a descriptor seed is also a
    /// malformed config file, which is coverage for free.
    static func check(_ bytes: [UInt8], into tally: inout Tally) {
        tally.inputs += 1
        func oneLine(_ what: String, _ message: String) {
            if message.isEmpty || DisplayText.containsControlCharacters(message) {
                tally.broken.append("\(what): the error is not one printable line: \(message.debugDescription)")
            }
        }
        do {
            let d = try DeviceConstraints.fromJSON(bytes, source: "input")
            tally.descriptors += 1
            roundTrip(d, into: &tally)
        } catch {
            oneLine("descriptor", error.message)
        }
        do {
            _ = try PolicyRules.parse(bytes)
            tally.rules += 1
        } catch {
            oneLine("rules", error.description)
        }
        do {
            _ = try Configuration.parsingConfigFile(bytes, source: "input")
            tally.configs += 1
        } catch {
            oneLine("config", error.message)
        }
        do {
            try StrictJSON.check(bytes)
        } catch {
            oneLine("strict JSON", error.description)
        }
    }

    private static func roundTrip(_ d: DeviceConstraints, into tally: inout Tally) {
        let text = d.jsonString(pretty: false)
        do {
            let again = try DeviceConstraints.fromJSON(Array(text.utf8), source: "written")
            if again != d { tally.broken.append("descriptor: reads back different from what it wrote: \(text)") }
        } catch {
            tally.broken.append("descriptor: what it wrote does not read back (\(error.message)): \(text)")
        }
    }
}
