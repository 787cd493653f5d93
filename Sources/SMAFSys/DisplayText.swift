/// Text from outside (descriptor names, paths, plugin messages, file
/// contents) made safe to print on a terminal or in a log: a name must not
/// be able to start a forged `smaf: info:` line, move the cursor or recolour
/// the screen.
public enum DisplayText {
    /// `text` with every control character written out: `\n`, `\r`, `\t`,
    /// else `\u{1b}`. Also the line and paragraph separators and the
    /// bidirectional overrides, which reorder what a terminal shows.
    public static func escaped(_ text: some StringProtocol) -> String {
        guard containsControlCharacters(text) else { return String(text) }
        var out = ""
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }

    /// For text that is several lines by design (a plugin's state report):
    /// each line escaped, the line breaks kept.
    public static func escapedLines(_ text: some StringProtocol) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { escaped($0) }.joined(separator: "\n")
    }

    /// True if printing `text` as is could break a line or drive the terminal.
    public static func containsControlCharacters(_ text: some StringProtocol) -> Bool {
        // Every such character starts with a byte below 0x20, 0x7F, or the
        // lead bytes 0xC2 (C1) and 0xE2 (U+2000 block): most text is
        // cleared by this byte scan without decoding a scalar.
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 || $0 == 0xE2 }) else { return false }
        return text.unicodeScalars.contains(where: isControl)
    }

    /// C0, DEL, C1, the line separators and the bidirectional controls.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true // C0, DEL, C1 (CSI is 0x9B)
        case 0x2028, 0x2029: true // line and paragraph separators
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true // bidi marks, embeddings, overrides, isolates
        default: false
        }
    }
}
