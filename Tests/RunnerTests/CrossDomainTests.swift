import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// `evaluation: {dataset: ...}`: meta-train on one dataset, evaluate on another's test split (issue 11, point 6).
final class CrossDomainTests: XCTestCase {
    let registry = Fixtures.registry()

    /// Another in-memory dataset of the same image shape, with its own test split.
    static func otherDataset() -> FewShotDataset {
        FewShotDataset(name: "other", layout: "in-memory", imageShape: ImageShape(channels: 1, height: 4, width: 4),
                       splits: [Fixtures.split("train", classes: 7, seed: 11), Fixtures.split("novel", classes: 6, seed: 12)])
    }

    func suite(evaluationDataset: String?) throws -> Suite {
        try Fixtures.suite("""
        name: cross
        settings:
          - {ways: 3, shots: 1, queries: 2}
        learners:
          - name: nearest
        training: {iterations: 3, meta_batch: 1, validate_every: 0}
        evaluation:
          episodes: 8
          seed: 5
        \(evaluationDataset.map { "  dataset: \($0)" } ?? "")
        """, registry: registry)
    }

    func run(_ suite: Suite, training: FewShotDataset, evaluation: FewShotDataset?) throws -> RunSummary {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: training,
                                 options: RunOptions(threads: 1, outputDirectory: folder))
        runner.evaluationDataset = evaluation
        return try runner.run()
    }

    func testEvaluatesOnTheOtherDatasetsTestSplit() throws {
        let cross = try suite(evaluationDataset: "{path: other.h5, splits: {test: novel}}")
        XCTAssertEqual(cross.evaluation.dataset?.testSplit, "novel")
        let crossCells = try run(cross, training: Fixtures.dataset(), evaluation: Self.otherDataset()).results
        // The nearest-mean learner's scores do not depend on training: the cross-domain cell must score exactly
        // as a suite trained and evaluated on the other dataset's 'novel' split.
        let inDomain = try Suite.parse(yaml: """
        name: cross
        dataset: {path: other.h5, splits: {test: novel, val: none}}
        settings:
          - {ways: 3, shots: 1, queries: 2}
        learners:
          - name: nearest
        training: {iterations: 3, meta_batch: 1, validate_every: 0}
        evaluation: {episodes: 8, seed: 5}
        """, file: "in.yaml", registry: registry)
        let inDomainCells = try run(inDomain, training: Self.otherDataset(), evaluation: nil).results
        XCTAssertEqual(crossCells.cells[0].episodeCorrect, inDomainCells.cells[0].episodeCorrect)
        let ownDomain = try run(try suite(evaluationDataset: nil), training: Fixtures.dataset(), evaluation: nil).results
        XCTAssertNotEqual(crossCells.cells[0].episodeCorrect, ownDomain.cells[0].episodeCorrect)

        // The cell records the evaluation dataset (so it is part of the fingerprint); the report says so.
        let config = crossCells.cells[0].config
        XCTAssertEqual(config.evaluationDataset?.name, "other")
        XCTAssertEqual(config.evaluationDataset?.testSplit, "novel")
        XCTAssertNotEqual(crossCells.cells[0].fingerprint, ownDomain.cells[0].fingerprint)
        XCTAssertNil(ownDomain.cells[0].config.evaluationDataset, "in-domain cells keep their fingerprints")
        XCTAssertTrue(crossCells.notes.contains { $0.hasPrefix("cross-domain: trained on tiny") && $0.contains("'novel' split of other") },
                      "\(crossCells.notes)")
        XCTAssertTrue(Report.markdown(crossCells).contains("cross-domain: trained on tiny"))
    }

    func testMismatchedImagesAndMissingSplitAreClearErrors() throws {
        let cross = try suite(evaluationDataset: "{path: other.h5, splits: {test: novel}}")
        let bigger = FewShotDataset(name: "big", layout: "in-memory", imageShape: ImageShape(channels: 1, height: 8, width: 8),
                                    splits: [Split(name: "novel", classes: [])])
        XCTAssertThrowsError(try run(cross, training: Fixtures.dataset(), evaluation: bigger)) { error in
            XCTAssertTrue("\(error)".contains("evaluation.dataset: its images are 1×8×8, but the training dataset's are 1×4×4"), "\(error)")
        }
        let wrongSplit = try suite(evaluationDataset: "{path: other.h5}")
        XCTAssertThrowsError(try run(wrongSplit, training: Fixtures.dataset(), evaluation: Self.otherDataset())) { error in
            XCTAssertTrue("\(error)".contains("evaluation.dataset:") && "\(error)".contains("test"), "\(error)")
        }
        XCTAssertThrowsError(try suite(evaluationDataset: "{path: other.h5, shuffle: true}")) { error in
            XCTAssertTrue("\(error)".contains("evaluation.dataset"), "\(error)")
        }
        XCTAssertThrowsError(try suite(evaluationDataset: "{path: ''}")) { error in
            XCTAssertTrue("\(error)".contains("evaluation.dataset.path"), "\(error)")
        }
    }

    /// The shipped example: trains on the embedded glyphs, evaluates on real Omniglot (small budgets here).
    func testShippedCrossDomainSuiteRuns() throws {
        let file = try ShardPlanTests.suitesFolder() + "/cross-domain.yaml"
        let suite = try Suite.load(file, registry: .builtIn)
        XCTAssertEqual(suite.dataset.path, "embedded")
        XCTAssertEqual(suite.evaluation.dataset?.path, "datasets/omniglot-small")
        let root = (try ShardPlanTests.suitesFolder() as NSString).deletingLastPathComponent
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(root))
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let summary = try SuiteRunner(suite: suite, registry: .builtIn,
                                      options: RunOptions(only: ["protonet"], threads: 1, outputDirectory: folder, episodes: 5)).run()
        XCTAssertEqual(summary.trainedCells, 1)
        let cell = try XCTUnwrap(summary.results.cells.first)
        XCTAssertEqual(cell.status, .completed, cell.message ?? "")
        XCTAssertEqual(cell.config.evaluationDataset?.layout, summary.results.cells.first?.config.evaluationDataset?.layout)
        XCTAssertNotEqual(cell.config.evaluationDataset?.name, cell.config.dataset.name)
        XCTAssertTrue(summary.results.notes.contains { $0.hasPrefix("cross-domain:") })
    }
}
