import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Damaged dataset files never crash, hang or abort `bench`: each ends in exit 0 or in exit 1 with an
/// `Error: ` line, within a time bound.
///
/// Each case runs the built `bench datasets inspect PATH` as a subprocess (a crash would otherwise take the
/// test process down), which loads the whole dataset: every HDF5 object, every pixel, every PNG. Two sets:
///
/// - the crash corpus (`Fixtures/crash-corpus/mutants.tsv`): every mutant that crashed, hung or misread
///   before the data layer checked what files declare; each must now fail with its stated message;
/// - a deterministic mutation fuzzer (fixed seed; bit flips, bytes set to extreme values, zeroed ranges,
///   truncation, biased towards HDF5's structures) over the shipped HDF5 files.
final class DatasetFuzzTests: XCTestCase {
    static let packageRoot = BenchOutputTests.packageRoot
    static let corpus = packageRoot.appendingPathComponent("Tests/BenchTests/Fixtures/crash-corpus")
    /// The most seconds one run may take (a debug build loads the larger fixtures in about a second).
    static let timeLimit = 30.0
    /// Runs at once.
    static let workers = 2

    // MARK: - The crash corpus

    func testCrashCorpusFailsCleanly() throws {
        try requireBench()
        let lines = try String(contentsOf: Self.corpus.appendingPathComponent("mutants.tsv"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let cases = try lines.map { line -> (Case, String) in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5 else { throw CocoaError(.fileReadCorruptFile) }
            let mutation = try Mutation(recipe: fields[2])
            return (Case(base: try Self.base(fields[0]), target: fields[1] == "-" ? nil : fields[1], mutation: mutation,
                         label: "\(fields[0]) \(fields[2]) (before the fix: \(fields[3]))"), fields[4])
        }
        XCTAssertGreaterThanOrEqual(cases.count, 150, "the corpus lost entries")
        let outcomes = try Self.run(cases.map(\.0))
        for ((testCase, phrase), outcome) in zip(cases, outcomes) {
            XCTAssertEqual(outcome.summary, "exit 1", "\(testCase.label): \(outcome.standardError)")
            XCTAssertTrue(outcome.standardError.hasPrefix("Error: "), "\(testCase.label): \(outcome.standardError)")
            XCTAssertTrue(outcome.standardError.contains(phrase), "\(testCase.label): expected '\(phrase)' in \(outcome.standardError)")
            XCTAssertTrue(outcome.standardError.contains(testCase.target ?? URL(fileURLWithPath: testCase.base).lastPathComponent),
                          "the message names the file: \(outcome.standardError)")
        }
    }

    /// A corpus base: `layout-fixtures/…` (the shipped fixtures) or `bases/…` (small files beside the corpus).
    static func base(_ name: String) throws -> String {
        name.hasPrefix("layout-fixtures/")
            ? packageRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(name).path
            : corpus.appendingPathComponent(name).path
    }

    // MARK: - The fuzzer

    func testMutatedShippedFilesNeverCrashOrHang() throws {
        try requireBench()
        let scratch = try makeFolder()
        // Omniglot: a copy that lists a few characters only, so each run reads a small part of the real file.
        let omniglot = scratch + "/omniglot"
        try FileManager.default.createDirectory(atPath: omniglot, withIntermediateDirectories: true)
        let real = Self.packageRoot.appendingPathComponent("datasets/omniglot-small").path
        try FileManager.default.copyItem(atPath: real + "/data.hdf5", toPath: omniglot + "/data.hdf5")
        for (split, count) in [("train", 6), ("test", 3)] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(real)/\(split)_labels.json"))
            let labels = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [Any])
            try JSONSerialization.data(withJSONObject: Array(labels.prefix(count)))
                .write(to: URL(fileURLWithPath: "\(omniglot)/\(split)_labels.json"))
        }
        let fixtures = Self.packageRoot.appendingPathComponent("Tests/Fixtures/layout-fixtures").path
        let targets: [(folder: String, file: String, count: Int)] = [
            (fixtures + "/tieredimagenet", "train_data.hdf5", 70),
            (fixtures + "/miniimagenet", "train_data.hdf5", 45),
            (fixtures + "/cifar100", "data.hdf5", 45),
            (omniglot, "data.hdf5", 60),
            (fixtures + "/miniimagenet", "train_labels.json", 15),
        ]
        var generator = SplitMix64(seed: 0x4655_5A5A_4D42)
        var cases: [Case] = []
        for target in targets {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: target.folder + "/" + target.file)))
            let hot = Self.structureOffsets(bytes)
            for index in 0..<target.count {
                let mutation = Mutation.random(length: bytes.count, hot: hot, using: &generator)
                cases.append(Case(base: target.folder, target: target.file, mutation: mutation,
                                  label: "\(URL(fileURLWithPath: target.folder).lastPathComponent)/\(target.file) mutant \(index): \(mutation.recipe)"))
            }
        }
        let start = Date()
        let outcomes = try Self.run(cases)
        var counts: [String: Int] = [:]
        for (testCase, outcome) in zip(cases, outcomes) {
            counts[outcome.summary, default: 0] += 1
            guard outcome.summary == "exit 0" || outcome.summary == "exit 1" else {
                XCTFail("\(testCase.label): \(outcome.summary) after \(String(format: "%.1f", outcome.seconds)) s\n\(outcome.standardError)")
                continue
            }
            if outcome.summary == "exit 1" {
                XCTAssertTrue(outcome.standardError.hasPrefix("Error: "), "\(testCase.label): \(outcome.standardError)")
            }
        }
        // The mutations must actually damage files: a good share of the runs end in an error.
        XCTAssertGreaterThan(counts["exit 1", default: 0], cases.count / 5, "\(counts)")
        print("fuzzed \(cases.count) mutants in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(counts)")
    }

    /// Offsets of HDF5 structures worth damaging: the B-tree, local heap, symbol table and global heap
    /// signatures, and the object headers of every global heap collection.
    static func structureOffsets(_ bytes: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        let signatures = ["TREE", "HEAP", "SNOD", "GCOL"].map { Array($0.utf8) }
        guard bytes.count >= 16 else { return [] }
        var isFirstByte = [Bool](repeating: false, count: 256)
        for signature in signatures { isFirstByte[Int(signature[0])] = true }
        for start in 0...(bytes.count - 16) where isFirstByte[Int(bytes[start])] {
            guard let signature = signatures.first(where: { bytes[start..<(start + 4)].elementsEqual($0) }) else { continue }
            offsets += Array(start..<min(start + 48, bytes.count))
            guard signature == signatures[3] else { continue }
            // Global heap objects: index (2), references (2), reserved (4), size (8), data padded to 8.
            let size = Int(littleEndian(bytes, start + 8))
            var object = start + 16
            while object + 16 <= min(start + size, bytes.count) {
                offsets += Array(object..<(object + 16))
                if bytes[object] == 0 && bytes[object + 1] == 0 { break }
                let objectSize = Int(clamping: littleEndian(bytes, object + 8))
                guard objectSize < size else { break }
                object += 16 + (objectSize + 7) / 8 * 8
            }
        }
        return offsets
    }

    private static func littleEndian(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[offset + $1]) }
    }

    // MARK: - Running

    /// A dataset to inspect: `base` (a folder, or a file when `target` is nil) with `mutation` applied to `target`.
    struct Case {
        var base: String
        var target: String?
        var mutation: Mutation
        var label: String
    }

    typealias Outcome = BenchProcess.Outcome

    /// Runs every case, `workers` at a time, each in its own copy of its base.
    static func run(_ cases: [Case]) throws -> [Outcome] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-fuzz-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var outcomes = [Outcome?](repeating: nil, count: cases.count)
        var failure: Error?
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var copies: [String: String] = [:]   // base → this worker's copy
            for index in stride(from: worker, to: cases.count, by: workers) {
                do {
                    let testCase = cases[index]
                    let original = testCase.target.map { testCase.base + "/" + $0 } ?? testCase.base
                    let copy: String
                    if let known = copies[testCase.base] {
                        copy = known
                    } else {
                        copy = "\(scratch)/\(worker)-\(copies.count)/" + URL(fileURLWithPath: testCase.base).lastPathComponent
                        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: copy).deletingLastPathComponent().path,
                                                                withIntermediateDirectories: true)
                        try FileManager.default.copyItem(atPath: testCase.base, toPath: copy)
                        copies[testCase.base] = copy
                    }
                    let mutated = testCase.target.map { copy + "/" + $0 } ?? copy
                    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: original)))
                    try Data(testCase.mutation.apply(to: bytes)).write(to: URL(fileURLWithPath: mutated))
                    let outcome = try inspect(copy, scratch: scratch)
                    lock.lock()
                    outcomes[index] = outcome
                    lock.unlock()
                } catch {
                    lock.lock()
                    failure = error
                    lock.unlock()
                }
            }
        }
        if let failure { throw failure }
        return outcomes.map { $0! }
    }

    /// `bench datasets inspect path`, killed after `timeLimit` seconds.
    static func inspect(_ path: String, scratch: String) throws -> Outcome {
        try BenchProcess.run(["datasets", "inspect", path], environment: ["METABENCH_HDF5_TIMEOUT": "10"],
                             timeLimit: timeLimit, scratch: URL(fileURLWithPath: scratch))
    }

    /// The `bench` built beside the tests, or `METABENCH_FUZZ_BENCH` (to replay the cases with another build).
    static var benchExecutable: URL {
        ProcessInfo.processInfo.environment["METABENCH_FUZZ_BENCH"].map { URL(fileURLWithPath: $0) }
            ?? BenchOutputTests.benchExecutable
    }

    private func requireBench() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests: \(Self.benchExecutable.path)")
            throw CocoaError(.fileNoSuchFile)
        }
    }

    private func makeFolder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}

extension DatasetFuzzTests {
    /// Changes to a file's bytes: bytes set or bits flipped at offsets, then an optional truncation.
    struct Mutation {
        enum Edit {
            /// The byte at the offset becomes the value.
            case set(Int, UInt8)
            /// The byte at the offset is xored with the mask.
            case xor(Int, UInt8)
        }

        var edits: [Edit] = []
        var length: Int?

        /// The recipe form used in `mutants.tsv`: `OFFSET:HEX` (set), `OFFSET^HEX` (xor), `truncate:LENGTH`,
        /// separated by commas.
        var recipe: String {
            let parts = edits.map { edit -> String in
                switch edit {
                case .set(let offset, let value): return "\(offset):" + String(format: "%02x", value)
                case .xor(let offset, let mask): return "\(offset)^" + String(format: "%02x", mask)
                }
            }
            return (parts + (length.map { ["truncate:\($0)"] } ?? [])).joined(separator: ",")
        }

        init(edits: [Edit] = [], length: Int? = nil) {
            self.edits = edits
            self.length = length
        }

        init(recipe: String) throws {
            for part in recipe.split(separator: ",").map(String.init) {
                if part.hasPrefix("truncate:"), let length = Int(part.dropFirst("truncate:".count)) {
                    self.length = length
                } else if let colon = part.firstIndex(of: ":"), let offset = Int(part[..<colon]),
                          let value = UInt8(part[part.index(after: colon)...], radix: 16) {
                    edits.append(.set(offset, value))
                } else if let caret = part.firstIndex(of: "^"), let offset = Int(part[..<caret]),
                          let mask = UInt8(part[part.index(after: caret)...], radix: 16) {
                    edits.append(.xor(offset, mask))
                } else {
                    throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "bad mutation '\(part)'"])
                }
            }
        }

        func apply(to bytes: [UInt8]) -> [UInt8] {
            var result = bytes
            for edit in edits {
                switch edit {
                case .set(let offset, let value) where offset < result.count: result[offset] = value
                case .xor(let offset, let mask) where offset < result.count: result[offset] ^= mask
                default: break
                }
            }
            if let length, length < result.count { result.removeLast(result.count - length) }
            return result
        }

        /// A random mutation of a file of `length` bytes. Positions: 40% in the first 8 KiB (superblock, root
        /// group, object headers), 40% among `hot` (structure) offsets, 20% anywhere. Kinds: 45% one bit
        /// flipped, 20% one byte set to 0x00, 0xFF, 0x7F, 0x80 or 0x01, 15% 1–64 bytes zeroed, 10% 3–8 bits
        /// flipped, 10% truncation.
        static func random(length: Int, hot: [Int], using generator: inout SplitMix64) -> Mutation {
            func position() -> Int {
                let roll = generator.next(below: 10)
                if roll < 4 { return generator.next(below: min(length, 8192)) }
                if roll < 8, !hot.isEmpty { return hot[generator.next(below: hot.count)] }
                return generator.next(below: length)
            }
            func bit() -> UInt8 { UInt8(1) << UInt8(generator.next(below: 8)) }
            switch generator.next(below: 20) {
            case 0..<9:
                return Mutation(edits: [.xor(position(), bit())])
            case 9..<13:
                let values: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x01]
                return Mutation(edits: [.set(position(), values[generator.next(below: values.count)])])
            case 13..<16:
                let start = position(), count = 1 + generator.next(below: 64)
                return Mutation(edits: (start..<min(start + count, length)).map { .set($0, 0) })
            case 16..<18:
                return Mutation(edits: (0..<(3 + generator.next(below: 6))).map { _ in .xor(position(), bit()) })
            default:
                return Mutation(length: generator.next(below: length))
            }
        }
    }
}
