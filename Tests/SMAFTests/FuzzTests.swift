import Foundation
import Testing

/// A fixed, seeded fuzz run of the three parsers users feed (descriptors,
/// policy rules, config files) over Tests/Fuzz/corpus: every input gives a
/// value or one printable line, no trap, bounded memory. A few seconds;
/// Tests/Fuzz/README.md has the long libFuzzer run.
@Suite struct FuzzTests {
    @Test func seededMutationsOfTheCorpusBreakNoProperty() throws {
        let corpus = "\(TestSupport.packageRoot)/Tests/Fuzz/corpus"
        let r = try TestSupport.run("\(TestSupport.buildDirectory)/smaf-fuzz",
                                    ["--mutants", "100", "--seed", "1", "\(corpus)/descriptor", "\(corpus)/rules", "\(corpus)/config"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("0 properties broken"), "\(r.stdout)")
        // Bounded: the deepest mutant nests 100000 levels; a parser that
        // recursed or buffered without a cap would show here (or crash).
        let rss = r.stdout.split(separator: " ").split(separator: "RSS").last?.first.flatMap { Int($0) }
        #expect(rss.map { $0 < 256 } == true, "max RSS: \(r.stdout)")
    }
}
