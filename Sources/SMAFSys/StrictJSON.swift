/// A strict, bounded check of JSON text, run before a decoder sees it.
///
/// Foundation's JSONDecoder keeps one of two equal keys without a word,
/// while jq and Python keep the other: `{"secure": false, "secure": true}`
/// would be read one way by smaf and shown another way by every tool an
/// administrator checks it with. So a duplicate key anywhere is refused with
/// its path (`devices.x`, `formats[1].format`). Keys are compared as Swift
/// compares strings, after escapes are decoded and up to canonical
/// equivalence, since that is how the decoder's dictionaries compare them.
///
/// Also refused: nesting deeper than `maximumDepth` (so neither this pass
/// nor the decoder recurses without bound), text that is not UTF-8,
/// unpaired surrogates, numbers longer than `maximumNumberLength`
/// characters, and anything RFC 8259 does not allow.
public enum StrictJSON {
    public static let maximumDepth = 32
    public static let maximumNumberLength = 64

    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Throws the first problem in `bytes`, or returns if it is one JSON value.
    public static func check(_ bytes: [UInt8], maximumDepth: Int = maximumDepth) throws(Problem) {
        guard String(validating: bytes, as: UTF8.self) != nil else { throw Problem("malformed JSON: not UTF-8 text") }
        // A buffer pointer, not the array: no retain and release per byte.
        try bytes.withUnsafeBufferPointer { (buffer) throws(Problem) in
            var scanner = Scanner(bytes: buffer, maximumDepth: maximumDepth)
            try scanner.document()
        }
    }
}

private struct Scanner {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    var i = 0
    /// Where the value being scanned sits, for the duplicate-key message.
    var path: [Component] = []

    enum Component {
        case key(String)
        case index(Int)
    }

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func document() throws(StrictJSON.Problem) {
        skipWhitespace()
        if peek == nil { throw StrictJSON.Problem("malformed JSON: the input is empty") }
        try value(depth: 0)
        skipWhitespace()
        if peek != nil { throw problem("unexpected \(describe(peek)) after the JSON value") }
    }

    mutating func value(depth: Int) throws(StrictJSON.Problem) {
        skipWhitespace()
        switch peek {
        case UInt8(ascii: "{"): try object(depth: depth + 1)
        case UInt8(ascii: "["): try array(depth: depth + 1)
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case let b? where b == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b): try number()
        default: throw problem("expected a value, found \(describe(peek))")
        }
    }

    mutating func object(depth: Int) throws(StrictJSON.Problem) {
        guard depth <= maximumDepth else { throw problem("nested deeper than \(maximumDepth) levels") }
        i += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") { i += 1; return }
        var keys = Set<String>()
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw problem("expected a key in double quotes, found \(describe(peek))") }
            let keyStart = i
            let key = try string()
            guard keys.insert(key).inserted else {
                throw StrictJSON.Problem("duplicate key '\(render(path + [.key(key)]))' at \(position(keyStart)): "
                                         + "JSON readers disagree on which value counts, so none is taken")
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw problem("expected ':' after a key, found \(describe(peek))") }
            i += 1
            path.append(.key(key))
            try value(depth: depth)
            path.removeLast()
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return
            default: throw problem("expected ',' or '}' in an object, found \(describe(peek))")
            }
        }
    }

    mutating func array(depth: Int) throws(StrictJSON.Problem) {
        guard depth <= maximumDepth else { throw problem("nested deeper than \(maximumDepth) levels") }
        i += 1
        skipWhitespace()
        if peek == UInt8(ascii: "]") { i += 1; return }
        var index = 0
        while true {
            path.append(.index(index))
            try value(depth: depth)
            path.removeLast()
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1; index += 1
            case UInt8(ascii: "]"): i += 1; return
            default: throw problem("expected ',' or ']' in a list, found \(describe(peek))")
            }
        }
    }

    /// A string with its escapes decoded (the input is valid UTF-8 already).
    mutating func string() throws(StrictJSON.Problem) -> String {
        i += 1
        var decoded: [UInt8] = []
        while let b = peek {
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                try escape(into: &decoded)
            case let c where c < 0x20:
                throw problem("a control character (\(describe(b))) inside a string must be escaped")
            default:
                decoded.append(b)
                i += 1
            }
        }
        throw problem("a string is not closed")
    }

    mutating func escape(into decoded: inout [UInt8]) throws(StrictJSON.Problem) {
        let simple: [UInt8: UInt8] = [0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 0x08, 0x66: 0x0C, 0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09]
        guard let b = peek else { throw problem("a string is not closed") }
        if let plain = simple[b] {
            decoded.append(plain)
            i += 1
            return
        }
        guard b == UInt8(ascii: "u") else { throw problem("unknown escape: '\\' followed by \(describe(b))") }
        i += 1
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard peek == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else {
                throw problem("unpaired surrogate \\u\(String(scalar, radix: 16))")
            }
            i += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw problem("unpaired surrogate \\u\(String(scalar, radix: 16))") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw problem("unpaired surrogate \\u\(String(scalar, radix: 16))")
        }
        decoded.append(contentsOf: String(Unicode.Scalar(scalar)!).utf8) // not a surrogate: a valid scalar
    }

    mutating func hex4() throws(StrictJSON.Problem) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let b = peek, let digit = UInt32(String(UnicodeScalar(b)), radix: 16) else {
                throw problem("\\u needs four hex digits")
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }

    mutating func number() throws(StrictJSON.Problem) {
        let start = i
        func digits(_ s: inout Scanner) -> Int {
            let from = s.i
            while let b = s.peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { s.i += 1 }
            return s.i - from
        }
        if peek == UInt8(ascii: "-") { i += 1 }
        if peek == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw problem("expected a digit, found \(describe(peek))")
        }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw problem("expected a digit after '.', found \(describe(peek))") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw problem("expected a digit in the exponent, found \(describe(peek))") }
        }
        if i - start > StrictJSON.maximumNumberLength {
            throw StrictJSON.Problem("malformed JSON at \(position(start)): a number longer than \(StrictJSON.maximumNumberLength) characters")
        }
    }

    mutating func literal(_ word: String) throws(StrictJSON.Problem) {
        let expected = Array(word.utf8)
        guard bytes.count - i >= expected.count, bytes[i..<i + expected.count].elementsEqual(expected) else {
            throw problem("expected \(word), found \(describe(peek))")
        }
        i += expected.count
    }

    mutating func skipWhitespace() {
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
    }

    func problem(_ text: String) -> StrictJSON.Problem {
        StrictJSON.Problem("malformed JSON at \(position(i)): \(text)")
    }

    /// "line 3 column 7" (columns in bytes, from 1).
    func position(_ offset: Int) -> String {
        var line = 1, lineStart = 0, n = 0
        let end = min(offset, bytes.count)
        while n < end {
            if bytes[n] == 0x0A {
                line += 1
                lineStart = n + 1
            }
            n += 1
        }
        return "line \(line) column \(offset - lineStart + 1)"
    }

    func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "the end of the input" }
        return (0x21...0x7E).contains(byte) ? "'\(Character(UnicodeScalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    func render(_ components: [Component]) -> String {
        var out = ""
        for c in components {
            switch c {
            case .key(let k): out += (out.isEmpty ? "" : ".") + DisplayText.escaped(k)
            case .index(let n): out += "[\(n)]"
            }
        }
        return out
    }
}
