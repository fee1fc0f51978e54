import Foundation
import XCTest

/// Runs the built `bench validate` on mutants of the shipped suites and the test fixtures: numbers replaced
/// by huge, negative, zero and non-numeric values, lines duplicated, deleted and swapped, deep nesting and
/// alias chains inserted, bytes flipped, the text truncated. The mutants come from a fixed seed, so every
/// run checks the same files. Each run is a separate process (a crash cannot take the tests with it) and
/// must exit with status 0, 1 or 64 within the time bound, never by a signal or an abort.
///
/// The files in `Fixtures/suite-crash-corpus/` crashed `bench run` before suites were bounds-checked
/// (overflow traps, failed allocations, stack overflows); each must now fail with an error naming it.
final class SuiteFuzzTests: XCTestCase {
    static let seed: UInt64 = 0x5EED_F022
    /// Mutants per source file.
    static let mutantsPerSource = 36
    /// Seconds one `bench validate` may take (a file check takes milliseconds; `--dataset` loads the
    /// embedded dataset in well under a second).
    static let timeLimit: TimeInterval = 20

    static var root: URL { BenchOutputTests.packageRoot }

    /// Values a number in a suite is replaced by.
    static let replacements = [
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999",
        "4611686018427387904", "100000000000", "2147483648", "1000000000", "10001", "4097", "1025", "-1", "0",
        "1e308", "-1e308", "1e-320", ".nan", ".inf", "-.inf", "0x7fffffffffffffff", "0o777", "1.5", "abc", "''",
        "[]", "{}", "~", "true", "\"5\"",
    ]

    /// One mutation of `text`, with a short description.
    static func mutate(_ text: String, using rng: inout SplitMix64) -> (String, String) {
        var lines = text.components(separatedBy: "\n")
        func randomLine() -> Int { Int.random(in: 0..<max(1, lines.count), using: &rng) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1, 2, 3:
            // A number (two in a fifth of the cases) replaced.
            var out = text
            var replaced: [String] = []
            for _ in 0..<(Int.random(in: 0..<5, using: &rng) == 0 ? 2 : 1) {
                let numbers = numberRanges(in: out)
                guard let range = numbers.randomElement(using: &rng) else { break }
                let value = replacements.randomElement(using: &rng) ?? "0"
                replaced.append("\(out[range]) → \(value)")
                out.replaceSubrange(range, with: value)
            }
            return (out, "number " + replaced.joined(separator: ", "))
        case 4:
            let i = randomLine()
            lines.insert(lines[i], at: i)
            return (lines.joined(separator: "\n"), "line \(i + 1) duplicated")
        case 5:
            let i = randomLine(), j = randomLine()
            if Bool.random(using: &rng) {
                lines.remove(at: i)
                return (lines.joined(separator: "\n"), "line \(i + 1) deleted")
            }
            lines.swapAt(i, j)
            return (lines.joined(separator: "\n"), "lines \(i + 1) and \(j + 1) swapped")
        case 6:
            let i = randomLine()
            let depth = [63, 64, 65, 2000, 40_000].randomElement(using: &rng) ?? 65
            let indent = String(lines[i].prefix { $0 == " " })
            let nests = [
                indent + "k: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth),
                indent + "k: " + String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth),
                indent + "k:\n" + (1...min(depth, 3000)).map { indent + String(repeating: " ", count: $0) + "-" }
                    .joined(separator: "\n") + " x",
                indent + "- " + String(repeating: "- ", count: depth) + "x",
                (0..<min(depth, 3000)).map { k in
                    indent + "a\(k): &a\(k) [" + (k == 0 ? "1" : "*a\(k - 1), *a\(k - 1)") + "]"
                }.joined(separator: "\n"),
            ]
            let choice = Int.random(in: 0..<nests.count, using: &rng)
            lines.insert(nests[choice], at: i)
            return (lines.joined(separator: "\n"), "nesting \(choice) of depth \(depth) inserted at line \(i + 1)")
        case 7:
            var bytes = Array(text.utf8)
            var flips: [String] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                let byte = UInt8.random(in: 0...255, using: &rng)
                flips.append("\(at)=\(byte)")
                bytes[at] = byte
            }
            // Invalid UTF-8 stays in the file: the test writes bytes, not a String.
            return (String(decoding: bytes, as: UTF8.self), "bytes flipped: " + flips.joined(separator: " "))
        case 8:
            let cut = Int.random(in: 0...text.utf8.count, using: &rng)
            return (String(decoding: Array(text.utf8).prefix(cut), as: UTF8.self), "truncated at byte \(cut)")
        default:
            // A learner label or split name that cannot name a file, or an extreme hyperparameter.
            let insertions = ["    label: a/b", "    label: \"\\0\"", "    label: '..'", "    hyperparameters: {width: 4096}",
                              "    hyperparameters: {width: 4096, fce: true}", "    hyperparameters: {batch_size: 100000}",
                              "    hyperparameters: {inner_steps: 10000}", "    training: {meta_batch: 10000, train_queries: 99999}",
                              "  splits: {train: train, val: train}", "  image_size: 1024"]
            let insertion = insertions.randomElement(using: &rng) ?? ""
            let anchor = insertion.hasPrefix("  splits") || insertion.hasPrefix("  image_size") ? "  path:" : "  - name:"
            guard let i = lines.indices.filter({ lines[$0].hasPrefix(anchor) }).randomElement(using: &rng) else {
                return (text, "unchanged")
            }
            lines.insert(insertion, at: i + 1)
            return (lines.joined(separator: "\n"), "'\(insertion)' inserted after line \(i + 1)")
        }
    }

    /// The ranges of the unsigned decimal numbers in `text`.
    static func numberRanges(in text: String) -> [Range<String.Index>] {
        var ranges: [Range<String.Index>] = []
        var i = text.startIndex
        while i < text.endIndex {
            guard text[i].isASCII, text[i].isNumber else { i = text.index(after: i); continue }
            var j = i
            while j < text.endIndex, text[j].isASCII, text[j].isNumber || text[j] == "." { j = text.index(after: j) }
            ranges.append(i..<j)
            i = j
        }
        return ranges
    }

    /// Runs `bench arguments` in the package root, killing it after `timeLimit`.
    static func run(_ arguments: [String], scratch: URL) throws -> BenchProcess.Outcome {
        try BenchProcess.run(arguments, timeLimit: timeLimit, scratch: scratch)
    }

    /// Why an outcome is a bug, or nil: only exit statuses 0, 1 and 64 are allowed, an error message starts
    /// with "Error: ".
    static func problem(_ outcome: BenchProcess.Outcome) -> String? {
        if outcome.timedOut { return "still running after \(timeLimit) s" }
        if outcome.signalled { return "killed by signal \(outcome.status)" }
        guard [0, 1, 64].contains(outcome.status) else { return "exit status \(outcome.status)" }
        if outcome.status != 0, !outcome.standardError.hasPrefix("Error: ") {
            return "exit status \(outcome.status) without an 'Error: ' message"
        }
        return nil
    }

    func makeScratch() throws -> URL {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("suite-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        return scratch
    }

    func requireBench() throws {
        guard FileManager.default.isExecutableFile(atPath: BenchOutputTests.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests: \(BenchOutputTests.benchExecutable.path)")
            throw XCTSkip("no bench executable")
        }
    }

    func testMutatedSuitesFailCleanly() throws {
        try requireBench()
        let scratch = try makeScratch()
        // Kept when a mutant fails, so that it can be rerun and added to the crash corpus.
        var keep = false
        defer { if !keep { try? FileManager.default.removeItem(at: scratch) } }

        let fm = FileManager.default
        let sources = try ["suites", "Tests/BenchTests/Fixtures"].flatMap { folder in
            try fm.contentsOfDirectory(atPath: Self.root.appendingPathComponent(folder).path)
                .filter { $0.hasSuffix(".yaml") }.sorted().map { "\(folder)/\($0)" }
        }
        XCTAssertGreaterThanOrEqual(sources.count, 7, "\(sources)")

        var rng = SplitMix64(seed: Self.seed)
        var jobs: [(file: String, what: String, arguments: [String])] = []
        for source in sources {
            let text = try String(contentsOf: Self.root.appendingPathComponent(source), encoding: .utf8)
            let stem = (source as NSString).lastPathComponent.replacingOccurrences(of: ".yaml", with: "")
            for index in 0..<Self.mutantsPerSource {
                let (mutant, what) = Self.mutate(text, using: &rng)
                let file = scratch.appendingPathComponent("\(stem)-\(index).yaml")
                try Data(mutant.utf8).write(to: file)
                var arguments = ["validate", "--suite", file.path]
                // The embedded dataset loads fast: its mutants also go through the checks against the images.
                if text.contains("path: embedded"), index % 3 == 0 { arguments.append("--dataset") }
                jobs.append((file.path, what, arguments))
            }
        }

        var outcomes = [BenchProcess.Outcome?](repeating: nil, count: jobs.count)
        var errors: [String] = []
        let lock = NSLock()
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for i in stride(from: worker, to: jobs.count, by: 2) {
                do {
                    let outcome = try Self.run(jobs[i].arguments, scratch: scratch)
                    lock.withLock { outcomes[i] = outcome }
                } catch {
                    lock.withLock { errors.append("\(jobs[i].file): \(error)") }
                }
            }
        }
        XCTAssertEqual(errors, [])
        var statuses: [Int32: Int] = [:]
        for (job, outcome) in zip(jobs, outcomes) {
            guard let outcome else { continue }
            statuses[outcome.status, default: 0] += 1
            if let problem = Self.problem(outcome) {
                keep = true
                XCTFail("""
                    bench \(job.arguments.joined(separator: " ")) (\(job.what)): \(problem)
                    \(outcome.standardError.suffix(600))
                    """)
            }
        }
        // The mutants exercise both outcomes: some stay valid, most are errors.
        XCTAssertGreaterThan(statuses[1, default: 0], jobs.count / 2, "\(statuses)")
        XCTAssertGreaterThan(statuses[0, default: 0], 0, "\(statuses)")
        print("suite fuzz: \(jobs.count) mutants in \(String(format: "%.1f", Date().timeIntervalSince(started))) s, exit statuses \(statuses.sorted { $0.key < $1.key })")
    }

    func testCrashCorpusFailsWithErrors() throws {
        try requireBench()
        let scratch = try makeScratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let folder = "Tests/BenchTests/Fixtures/suite-crash-corpus"
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent(folder).path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10, "\(files)")
        for file in files {
            let path = "\(folder)/\(file)"
            let outcome = try Self.run(["validate", "--suite", path, "--dataset"], scratch: scratch)
            XCTAssertNil(Self.problem(outcome), "\(path): \(Self.problem(outcome) ?? "")\n\(outcome.standardError.suffix(600))")
            XCTAssertEqual(outcome.status, 1, "\(path) should be rejected")
            XCTAssertTrue(outcome.standardError.hasPrefix("Error: \(path):"), "\(path): \(outcome.standardError.prefix(400))")
        }
    }
}
