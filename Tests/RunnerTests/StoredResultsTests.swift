import Engine
import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// Stored cells are checked before reuse, carry their own provenance, and rebuild byte-identical reports.
final class StoredResultsTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    private func run(_ suite: Suite, _ registry: LearnerRegistry, only: [String] = [],
                     messages: UnsafeMutablePointer<String>? = nil) throws -> RunSummary {
        let progress = ProgressPrinter(interactive: false) { messages?.pointee += $0 }
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                 options: RunOptions(only: only, threads: 1, outputDirectory: folder), progress: progress)
        return try runner.run()
    }

    private func cellPath(_ name: String) -> String { folder + "/cells/" + name }

    private func files() throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in ["results.json", "results.csv", "REPORT.md", "learning-curves.svg"] {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: folder + "/cells") {
            out["cells/" + name] = try Data(contentsOf: URL(fileURLWithPath: cellPath(name)))
        }
        return out
    }

    func testReuseRewritesNothing() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        _ = try run(suite, registry)
        let before = try files()
        Thread.sleep(forTimeInterval: 1.1)  // a new date would show in anything rewritten
        let again = try run(suite, registry)
        XCTAssertEqual(again.reusedCells, 4)
        let after = try files()
        XCTAssertEqual(before.keys.sorted(), after.keys.sorted())
        for (name, data) in before {
            XCTAssertEqual(data, after[name], "\(name) changed although every cell was reused")
        }
    }

    /// A stored cell that is inconsistent or of another format is not trusted: warned about and retrained.
    func testInvalidStoredCellsAreRetrainedWithAWarning() throws {
        let log = LearnerLog()
        let registry = Fixtures.registry(log: log)
        let suite = try Fixtures.suite(registry: registry)
        let first = try run(suite, registry)
        let name = "nearest-3w1s2q-seed0.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: cellPath(name)))
        let good = try XCTUnwrap(first.results.cells.first { $0.key.fileName == name })

        func edited(_ change: (inout CellResult) -> Void) throws -> Data {
            var cell = good
            change(&cell)
            return try StoredJSON.data(cell, for: name)
        }
        let cases: [(String, Data)] = [
            ("its accuracy", try edited { $0.accuracy! += 10 }),
            ("evaluated episodes", try edited {
                $0.episodeCorrect.removeLast(2)
                $0.episodeAccuracies.removeLast(2)
                $0.accuracy = Statistics.mean($0.episodeAccuracies) * 100
                $0.ci95 = Statistics.ci95($0.episodeAccuracies) * 100
            }),
            ("episode 0", try edited { $0.episodeCorrect[0] += 1 }),
            ("cell format 99", try edited { $0.format = 99 }),
            ("cell format missing", Data(String(decoding: original, as: UTF8.self)
                .replacingOccurrences(of: "\"format\" : 2,", with: "").utf8)),
            ("no provenance", try edited { $0.provenance = nil }),
            ("own fingerprint", try edited { $0.config.seed = 9 }),
            ("not a MetaBench cell file", Data("[1, 2".utf8)),
        ]
        for (reason, data) in cases {
            try data.write(to: URL(fileURLWithPath: cellPath(name)))
            let made = log.made
            var messages = ""
            let summary = try run(suite, registry, messages: &messages)
            XCTAssertEqual(summary.trainedCells, 1, reason)
            XCTAssertEqual(log.made, made + 1, reason)
            XCTAssertTrue(messages.contains("warning: \(cellPath(name)):"), "\(reason): \(messages)")
            XCTAssertTrue(messages.contains(reason), "\(reason): \(messages)")
            XCTAssertTrue(messages.contains("retraining the cell"), messages)
            let cell = try XCTUnwrap(summary.results.cells.first { $0.key.fileName == name })
            XCTAssertEqual(cell.episodeCorrect, good.episodeCorrect, reason)
            XCTAssertEqual(cell.accuracy, good.accuracy, reason)
        }
    }

    /// `--only` runs one learner, and the reports still hold every other stored cell.
    func testOnlyKeepsTheOtherStoredCellsInTheReports() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        let all = try run(suite, registry)
        let one = try run(suite, registry, only: ["nearest-b"])
        XCTAssertEqual(one.reusedCells, 2)
        XCTAssertEqual(one.results.cells, all.results.cells)
        XCTAssertEqual(try ResultSet.load(folder).cells.count, 4)

        // Without stored cells for the others, the reports hold what exists.
        try FileManager.default.removeItem(atPath: cellPath("nearest-3w1s2q-seed1.json"))
        let partial = try run(suite, registry, only: ["nearest-b"])
        XCTAssertEqual(partial.results.cells.map(\.key.description).sorted(),
                       ["nearest 3w1s2q seed 0", "nearest-b 3w1s2q seed 0", "nearest-b 3w1s2q seed 1"])
    }

    func testCellFileNamesAreInjective() {
        let labels = ["a/b", "a_b", "a-b", "a%2Fb", "a%252Fb", "a b", "a.b", "a+b", "é", "e", "..", "."]
        let names = labels.map { CellKey(label: $0, setting: "5w1s", seed: 0).fileName }
        XCTAssertEqual(Set(names).count, labels.count, "\(names)")
        for name in names {
            XCTAssertFalse(name.contains("/"), name)
            XCTAssertNotEqual(name, ".json")
        }
        // Names of ordinary labels read as before.
        XCTAssertEqual(CellKey(label: "baseline++", setting: "5w1s-train60w1s5q", seed: 3).fileName,
                       "baseline++-5w1s-train60w1s5q-seed3.json")
    }

    func testReportSaysWhenTheSetMixesProducers() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        var results = try run(suite, registry).results
        XCTAssertFalse(Report.markdown(results).contains("mixes"))
        results.cells[1].provenance?.openblasKernels = "OtherKernels"
        results.cells[2].provenance?.gitCommit = "0123456789abcdef"
        results.producers = ProducerSummary.summarize(results.cells)
        XCTAssertEqual(results.producers.count, 3)
        let markdown = Report.markdown(results)
        XCTAssertTrue(markdown.contains("This set mixes 2 OpenBLAS kernel families and 2 commits"), markdown)
        XCTAssertTrue(markdown.contains("OtherKernels kernels"), markdown)
        XCTAssertTrue(markdown.contains("commit 0123456789ab"), markdown)
        XCTAssertFalse(markdown.contains("could not reset"), markdown)

        // A peak that may include an earlier cell's is marked.
        results.cells[0].peakMemoryPerCell = false
        XCTAssertEqual(Report.rows(results).map(\.peakMemoryPerCell), [false, true])
        XCTAssertTrue(Report.markdown(results).contains("cells marked * could not reset it"))
        XCTAssertTrue(Report.table(results).contains("*"))
    }
}

/// The one divergence rule: a huge finite loss, a thrown `DivergedError` and non-finite evaluation logits
/// all give a "diverged" cell, never a "failed" or a "completed, 0%" one.
final class DivergenceRuleTests: XCTestCase {
    final class HugeLossLearner: MetaLearner {
        func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
            StepStats(loss: iteration >= 1 ? 3e7 : 1)
        }
        func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
            throw TestFailure(description: "a diverged learner must not be evaluated")
        }
        func checkpointState() -> [String: Tensor] { [:] }
        func restore(checkpointState: [String: Tensor]) throws {}
    }

    final class ThrowsDivergedLearner: MetaLearner {
        func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
            if iteration == 2 { throw DivergedError(iteration: 3, loss: .infinity) }
            return StepStats(loss: 1)
        }
        func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
            throw TestFailure(description: "unreachable")
        }
        func checkpointState() -> [String: Tensor] { [:] }
        func restore(checkpointState: [String: Tensor]) throws {}
    }

    struct NaNClassifier: EpisodeClassifier {
        func logits(queries: Tensor) throws -> Tensor {
            Tensor(shape: [queries.shape[0], 3], scalars: [Float](repeating: .nan, count: queries.shape[0] * 3))
        }
    }

    final class NaNLogitsLearner: MetaLearner {
        func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats { StepStats(loss: 1) }
        func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier { NaNClassifier() }
        func checkpointState() -> [String: Tensor] { [:] }
        func restore(checkpointState: [String: Tensor]) throws {}
    }

    func testEveryDivergenceIsReportedDiverged() throws {
        let registry = LearnerRegistry([
            LearnerDescriptor(name: "huge", summary: "", paper: "", hyperparameters: [], make: { _, _ in HugeLossLearner() }),
            LearnerDescriptor(name: "throws", summary: "", paper: "", hyperparameters: [],
                              make: { _, _ in ThrowsDivergedLearner() }),
            LearnerDescriptor(name: "nan", summary: "", paper: "", hyperparameters: [], make: { _, _ in NaNLogitsLearner() }),
        ])
        let yaml = """
        settings: [{ways: 3, shots: 1, queries: 2}]
        learners: [{name: huge}, {name: throws}, {name: nan}]
        training: {iterations: 4}
        evaluation: {episodes: 4}
        """
        let suite = try Suite.parse(yaml: yaml, file: "d.yaml", registry: registry)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                 options: RunOptions(threads: 1, outputDirectory: folder))
        let cells = Dictionary(uniqueKeysWithValues: try runner.run().results.cells.map { ($0.config.label, $0) })
        XCTAssertEqual(cells["huge"]?.status, .diverged)
        XCTAssertEqual(cells["huge"]?.divergedAtIteration, 2)
        XCTAssertTrue(cells["huge"]?.message?.contains("exceeds the divergence bound") ?? false, "\(cells["huge"]?.message ?? "")")
        XCTAssertEqual(cells["throws"]?.status, .diverged)
        XCTAssertEqual(cells["throws"]?.divergedAtIteration, 3)
        XCTAssertEqual(cells["nan"]?.status, .diverged)
        XCTAssertTrue(cells["nan"]?.message?.contains("logits are not finite") ?? false, "\(cells["nan"]?.message ?? "")")
        XCTAssertNil(cells["nan"]?.accuracy)
        for cell in cells.values { XCTAssertNotNil(cell.provenance) }
        // Diverged cells are results: reused, not retrained.
        let again = try SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                    options: RunOptions(threads: 1, outputDirectory: folder)).run()
        XCTAssertEqual(again.reusedCells, 3)
    }
}
