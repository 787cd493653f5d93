/// Deterministic mutations of the corpus, for the run without libFuzzer:
/// the same seed gives the same inputs on every machine, so a failure in
/// `scripts/test` can be replayed. Each mutation aims at one way input has
/// gone wrong before: cut short, a key twice, nesting without end, numbers
/// no type holds, control characters, text that is not UTF-8.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Mutator {
    /// One to three stacked mutations of `input`; `others` are for splicing.
    static func mutant(of input: [UInt8], others: [[UInt8]], rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            bytes = mutate(bytes, others: others, rng: &rng)
        }
        return bytes
    }

    static func mutate(_ input: [UInt8], others: [[UInt8]], rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        /// Inserts by concatenation: Array's generic insert(contentsOf:at:)
        /// goes element by element in a debug build, which scripts/test runs.
        func insert(_ new: [UInt8], at index: Int) { bytes = Array(bytes[..<index]) + new + Array(bytes[index...]) }
        let at = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &rng)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: // cut short
            bytes = Array(bytes[..<at])
        case 1:
            bytes = duplicateKey(bytes, rng: &rng)
        case 2: // nesting: just past the cap, or far past any stack
            let depth = [33, 64, 5_000, 100_000].randomElement(using: &rng)!
            insert([UInt8](repeating: UInt8(ascii: "["), count: depth), at: at)
            if Bool.random(using: &rng) { bytes += [UInt8](repeating: UInt8(ascii: "]"), count: depth) }
        case 3:
            bytes = replaceNumber(bytes, rng: &rng)
        case 4: // a control character, raw or escaped
            let raw: [[UInt8]] = [[0x00], [0x1B], [0x0A], [0x7F], [0xC2, 0x9B], Array("\\u001b[2J".utf8), Array("\\u0000".utf8)]
            insert(raw.randomElement(using: &rng)!, at: at)
        case 5: // not UTF-8: a bad lead byte, a cut sequence, an encoded surrogate, an overlong form
            let bad: [[UInt8]] = [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], Array("\\ud800".utf8)]
            insert(bad.randomElement(using: &rng)!, at: at)
        case 6:
            if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng)) }
        case 7: // a token of one of the three grammars
            let tokens = ["{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "-", "1e", "=", "\n", "#", ".", "name", "formats"]
            insert(Array(tokens.randomElement(using: &rng)!.utf8), at: at)
        case 8: // splice with another seed
            if let other = others.randomElement(using: &rng), !other.isEmpty {
                let from = Int.random(in: 0..<other.count, using: &rng)
                insert(Array(other[from..<min(other.count, from + Int.random(in: 1...64, using: &rng))]), at: at)
            }
        default: // delete a run
            if at < bytes.count { bytes = Array(bytes[..<at]) + Array(bytes[min(bytes.count, at + Int.random(in: 1...16, using: &rng))...]) }
        }
        return bytes
    }

    /// Copies one `"key": value` member (or `key = value` line) in place,
    /// so the same key comes twice with the same or a neighbouring value.
    static func duplicateKey(_ bytes: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        let starts = bytes.indices.filter { i in
            bytes[i] == UInt8(ascii: "\"") && (i == 0 || [UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: " "), 0x0A].contains(bytes[i - 1]))
        } + bytes.indices.filter { $0 == 0 || bytes[$0 - 1] == 0x0A }
        guard let start = starts.randomElement(using: &rng) else { return bytes }
        let stops: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "}"), 0x0A]
        guard let end = bytes[start...].firstIndex(where: stops.contains), end > start else { return bytes }
        let separator: [UInt8] = bytes[end] == 0x0A ? [0x0A] : Array(", ".utf8)
        return Array(bytes[..<start]) + Array(bytes[start..<end]) + separator + Array(bytes[start...])
    }

    /// A number no field can hold, or one that means nothing.
    static func replaceNumber(_ bytes: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        let digits = bytes.indices.filter { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[$0]) }
        guard let at = digits.randomElement(using: &rng) else { return bytes }
        var end = at
        while end < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[end]) { end += 1 }
        let numbers = ["0", "-1", "18446744073709551616", "4294967296", "1e999", "-0", "1.5", "0.0000001",
                       String(repeating: "9", count: 80), "1E+2"]
        return Array(bytes[..<at]) + Array(numbers.randomElement(using: &rng)!.utf8) + Array(bytes[end...])
    }
}
