import FewShotData
import Foundation
import Learners
import Engine
import Models
@testable import Runner
import XCTest

/// Shards writing one folder, the store's locks and sweeps, the merge, and cells resumed from checkpoints.
final class ShardRunTests: XCTestCase {
    let registry = Fixtures.registry()

    /// What must be equal between two runs of the same cell (times, memory and provenance may differ).
    static func numbers(_ cell: CellResult) -> String {
        "\(cell.key) \(cell.status) \(cell.fingerprint) \(cell.accuracy.map { "\($0.bitPattern)" } ?? "-") "
            + "\(cell.ci95.map { "\($0.bitPattern)" } ?? "-") \(cell.episodeCorrect) \(cell.message ?? "") "
            + cell.learningCurve.map { "\($0.iteration):\($0.loss.bitPattern):\($0.validationAccuracy?.bitPattern ?? 0)" }
            .joined(separator: ",")
    }

    func run(_ suite: Suite, output: String, shard: Shard? = nil, registry: LearnerRegistry? = nil,
             dataset: FewShotDataset = Fixtures.dataset()) throws -> RunSummary {
        var options = RunOptions(threads: 1, outputDirectory: output)
        options.shard = shard
        return try SuiteRunner(suite: suite, registry: registry ?? self.registry, dataset: dataset, options: options).run()
    }

    func testShardsMergeToTheSingleRunCellByCell() throws {
        let suite = try Fixtures.suite(registry: registry)
        let single = Fixtures.temporaryFolder(), sharded = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: single); try? FileManager.default.removeItem(atPath: sharded) }
        let whole = try run(suite, output: single).results

        let first = try run(suite, output: sharded, shard: try Shard(index: 0, count: 3))
        XCTAssertFalse(first.missingCells.isEmpty, "the other shards' cells are missing until they run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: sharded + "/results.json"), "a shard writes no reports")
        // A partial merge lists what is missing, in the reports too.
        let partial = try CellStore(readingFolder: sharded).merge()
        XCTAssertEqual(partial.missing, first.missingCells)
        XCTAssertEqual(partial.results.missingCells, first.missingCells.map(\.description))
        XCTAssertTrue(Report.markdown(partial.results).contains("## Missing cells"))

        for index in 1..<3 { _ = try run(suite, output: sharded, shard: try Shard(index: index, count: 3)) }
        let merged = try CellStore(readingFolder: sharded).merge()
        XCTAssertEqual(merged.missing, [])
        XCTAssertNil(merged.results.missingCells)
        XCTAssertEqual(merged.results.cells.map(Self.numbers), whole.cells.map(Self.numbers))
        XCTAssertEqual(merged.results.published, whole.published)
        XCTAssertEqual(merged.results.notes, whole.notes)
        XCTAssertEqual(merged.results.dataset, whole.dataset)
        // Every shard and the single run wrote the same plan.
        XCTAssertEqual(FileManager.default.contents(atPath: single + "/plan.json"),
                       FileManager.default.contents(atPath: sharded + "/plan.json"))
    }

    func testPublishedNumbersAreFactsOfTheSuiteNotOfCells() throws {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try run(try Fixtures.suite(registry: registry), output: folder)
        let edited = try Fixtures.suite(Fixtures.suiteYAML.replacingOccurrences(of: "{3w1s: 50.0}", with: "{3w1s: 61.5}"),
                                        registry: registry)
        let rerun = try run(edited, output: folder)
        XCTAssertEqual(rerun.trainedCells, 0, "published numbers are not part of a cell's configuration")
        XCTAssertEqual(rerun.results.publishedAccuracy(label: "nearest", setting: "3w1s"), 61.5)
        XCTAssertTrue(try String(contentsOfFile: folder + "/REPORT.md", encoding: .utf8).contains("61.5"))
    }

    func testTwoWritersOfOneFolder() throws {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Whole-suite runs exclude each other and shards; shards share the folder.
        let whole = try CellStore(folder: folder, shared: false)
        XCTAssertThrowsError(try CellStore(folder: folder, shared: false)) { XCTAssertTrue("\($0)".contains("another bench process"), "\($0)") }
        XCTAssertThrowsError(try CellStore(folder: folder, shared: true)) { XCTAssertTrue("\($0)".contains("another bench process"), "\($0)") }
        whole.release()
        let shardA = try CellStore(folder: folder, shared: true)
        let shardB = try CellStore(folder: folder, shared: true)
        XCTAssertThrowsError(try CellStore(folder: folder, shared: false))
        // Two shards never train one cell at once.
        let key = CellKey(label: "maml", setting: "5w1s", seed: 0)
        let claim = try shardA.claim(key)
        XCTAssertThrowsError(try shardB.claim(key)) { error in
            XCTAssertTrue("\(error)".contains("maml 5w1s seed 0") && "\(error)".contains("same index"), "\(error)")
        }
        claim.release()
        XCTAssertNoThrow(try shardB.claim(key).release())
        shardA.release()
        XCTAssertThrowsError(try CellStore(folder: folder, shared: false), "shard B still holds the folder")
        shardB.release()
        XCTAssertNoThrow(try CellStore(folder: folder, shared: false).release())
    }

    func testStaleLockAndHalfWrittenFiles() throws {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let suite = try Fixtures.suite(registry: registry)
        // A lock file left by a killed process (its pid in it, but no flock held) does not block a run.
        try "pid=999999\nhost=gone\nsince=2026-01-01T00:00:00Z\n".write(toFile: folder + "/" + OutputLock.fileName,
                                                                      atomically: false, encoding: .utf8)
        _ = try run(suite, output: folder)
        // A half-written temporary of a dead writer and a truncated cell file.
        let cells = folder + "/cells"
        let cellFile = try FileManager.default.contentsOfDirectory(atPath: cells).first { $0.hasSuffix(".json") }!
        let temporary = cells + "/.\(cellFile).tmp-999999-1"
        try Data("{\"format\": 2, \"conf".utf8).write(to: URL(fileURLWithPath: temporary))
        let original = try Data(contentsOf: URL(fileURLWithPath: cells + "/" + cellFile))
        try original.prefix(original.count / 2).write(to: URL(fileURLWithPath: cells + "/" + cellFile))
        // A shard does not sweep (the writer could be alive on another host) …
        _ = try run(suite, output: folder, shard: try Shard(index: 0, count: 1))
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary))
        // … a whole-suite run does; the truncated cell was retrained by the shard, equal to the original.
        _ = try run(suite, output: folder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))
        let retrained = try JSONDecoder().decode(CellResult.self, from: Data(contentsOf: URL(fileURLWithPath: cells + "/" + cellFile)))
        let before = try JSONDecoder().decode(CellResult.self, from: original)
        XCTAssertEqual(Self.numbers(retrained), Self.numbers(before))
    }

    func testReportOfAFolderWithoutPlan() {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertThrowsError(try CellStore(readingFolder: folder).merge()) { XCTAssertTrue("\($0)".contains("plan.json"), "\($0)") }
        try? "{".write(toFile: folder + "/plan.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CellStore(readingFolder: folder).merge()) { XCTAssertTrue("\($0)".contains("not a MetaBench plan"), "\($0)") }
    }

    // MARK: - Resuming from checkpoints

    static let learnerSuite = """
    name: resume
    exact: true
    dataset: {path: embedded}
    settings:
      - {ways: 3, shots: 1, queries: 2}
    learners:
      - {name: maml, hyperparameters: {width: 4, inner_steps: 1, eval_inner_steps: 1}}
      - {name: fomaml, hyperparameters: {width: 4, inner_steps: 1, eval_inner_steps: 1}}
      - {name: reptile, hyperparameters: {width: 4, inner_steps: 2, eval_inner_steps: 2}}
      - {name: protonet, hyperparameters: {width: 4}}
      - {name: matchingnet, hyperparameters: {width: 4, fce: true}}
      - {name: baseline, hyperparameters: {width: 4, batch_size: 8, finetune_steps: 3}}
      - {name: baseline++, hyperparameters: {width: 4, batch_size: 8, finetune_steps: 3}}
    training: {iterations: 7, meta_batch: 2, validate_every: 3, validation_episodes: 2}
    evaluation: {episodes: 4, seed: 3}
    seeds: [5]
    """

    /// Every built-in learner, stopped (as by SIGTERM) before iterations 0, 3 (a validation point) and 5, and
    /// resumed from its checkpoint, gives the bits of the uninterrupted cell: weights, optimiser state,
    /// running statistics and the learning curve all come back.
    func testEveryLearnerResumesToTheBitsOfAnUninterruptedRun() throws {
        let suite = try Suite.parse(yaml: Self.learnerSuite, file: "resume.yaml", registry: .builtIn)
        let dataset = try EmbeddedDataset.load()
        let reference = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: reference) }
        let whole = try run(suite, output: reference, registry: .builtIn, dataset: dataset).results.cells
        XCTAssertEqual(whole.count, 7)
        XCTAssertTrue(whole.allSatisfy { $0.status == .completed }, whole.map { "\($0.key): \($0.message ?? "")" }.joined())

        for stop in [0, 3, 5] {
            let folder = Fixtures.temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for cell in SuitePlan(suite: suite).cells {
                let runner = SuiteRunner(suite: suite, registry: .builtIn, dataset: dataset,
                                         options: RunOptions(only: [cell.entry.label], threads: 1, outputDirectory: folder,
                                                             checkpointInterval: 86_400))
                runner.interruptBeforeIteration = stop
                XCTAssertThrowsError(try runner.run(), "\(cell.key)") { error in
                    guard case RunnerError.interrupted = error else { return XCTFail("\(error)") }
                }
                let store = CellStore(readingFolder: folder)
                XCTAssertTrue(FileManager.default.fileExists(atPath: store.checkpointPath(of: cell.key)), "\(cell.key)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: store.path(of: cell.key)))
            }
            let resumed = try run(suite, output: folder, registry: .builtIn, dataset: dataset)
            XCTAssertEqual(resumed.trainedCells, 7)
            XCTAssertEqual(resumed.results.cells.map(Self.numbers), whole.map(Self.numbers), "stopped before iteration \(stop)")
            XCTAssertEqual(resumed.results.cells.map(\.resumedAtIterations), Array(repeating: [stop], count: 7))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder + "/cells").filter { !$0.hasSuffix(".json") }
            XCTAssertEqual(leftovers, [], "checkpoints are removed once the cell is written")
        }
    }

    func testCheckpointOfAnotherConfigurationOrUnreadableIsNotUsed() throws {
        let suite = try Fixtures.suite(registry: registry)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let reference = try run(suite, output: Fixtures.temporaryFolder()).results.cells
        // A garbage checkpoint where the first cell's would be: a warning, then training from the start.
        let store = CellStore(readingFolder: folder)
        let key = SuitePlan(suite: suite).cells[0].key
        try FileManager.default.createDirectory(atPath: folder + "/cells", withIntermediateDirectories: true)
        try Data("not hdf5".utf8).write(to: URL(fileURLWithPath: store.checkpointPath(of: key)))
        var lines: [String] = []
        let progress = ProgressPrinter(interactive: false) { lines.append($0) }
        let summary = try SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                      options: RunOptions(threads: 1, outputDirectory: folder), progress: progress).run()
        XCTAssertEqual(summary.results.cells.map(Self.numbers), reference.map(Self.numbers))
        XCTAssertTrue(lines.joined().contains("training the cell from the start"), lines.joined())
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.checkpointPath(of: key)))
    }
}

/// `bench plan`'s estimates: timed when nothing is stored, the stored times (and nothing left to run) after a run.
final class EstimateTests: XCTestCase {
    func testEstimatesAreMeasuredThenStored() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let before = try ClusterEstimate.estimate(suite: suite, registry: registry, output: folder, threads: 1,
                                                  dataset: Fixtures.dataset())
        XCTAssertEqual(before.cells.count, 4)
        XCTAssertTrue(before.cells.allSatisfy { $0.source == .measured && $0.seconds >= 0 })
        XCTAssertEqual(before.remainingSeconds, before.totalSeconds)
        XCTAssertEqual(before.wallSeconds(shards: 1), before.totalSeconds, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(before.wallSeconds(shards: 2), before.totalSeconds + 1e-9)
        XCTAssertGreaterThanOrEqual(before.suggestedShards, 1)
        XCTAssertLessThanOrEqual(before.suggestedShards, 4)

        let summary = try SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                      options: RunOptions(threads: 1, outputDirectory: folder)).run()
        let after = try ClusterEstimate.estimate(suite: suite, registry: registry, output: folder, threads: 1,
                                                 dataset: Fixtures.dataset())
        XCTAssertTrue(after.cells.allSatisfy { $0.source == .stored })
        XCTAssertEqual(after.remainingSeconds, 0)
        XCTAssertEqual(after.suggestedShards, 1)
        // A stored cell's estimate is its training time plus its adaptation time over every episode it evaluates.
        let cell = summary.results.cells[0]
        let episodes = Double(cell.config.evaluation.episodes + 2 * cell.config.training.validationEpisodes)
        XCTAssertEqual(after.cells[0].seconds,
                       cell.trainingSeconds + (cell.adaptMillisecondsPerEpisode ?? 0) / 1000 * episodes, accuracy: 1e-12)
    }
}

/// A signal that arrives while a cell validates: the checkpoint holds the step already taken and the
/// validation still due, so the rerun validates at the same iteration and the curve is the uninterrupted one.
final class InterruptedValidationTests: XCTestCase {
    /// Raises SIGTERM in the first `adapt` of the whole test (a validation episode), never again.
    final class Trigger { var fired = false }

    final class SignallingLearner: MetaLearner {
        let inner: NearestMeanLearner
        let trigger: Trigger
        init(inner: NearestMeanLearner, trigger: Trigger) {
            self.inner = inner
            self.trigger = trigger
        }
        func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
            try inner.trainStep(iteration: iteration, source: source)
        }
        func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
            if !trigger.fired {
                trigger.fired = true
                raise(SIGTERM)
            }
            return try inner.adapt(support: support, ways: ways)
        }
        func checkpointState() -> [String: Tensor] { [:] }
        func restore(checkpointState: [String: Tensor]) throws {}
    }

    func testSignalDuringValidationResumesAtTheSameValidation() throws {
        let trigger = Trigger()
        let registry = LearnerRegistry([
            LearnerDescriptor(name: "nearest", summary: "", paper: "",
                              hyperparameters: [HyperParameterSpec("scale", .double(1), "Loss scale.")],
                              make: { hp, _ in
                                  SignallingLearner(inner: NearestMeanLearner(scale: try hp.positiveDouble("scale"), log: LearnerLog()),
                                                    trigger: trigger)
                              }),
        ])
        let suite = try Fixtures.suite("""
        name: tiny
        settings:
          - {ways: 3, shots: 1, queries: 2}
        learners:
          - name: nearest
        training: {iterations: 6, meta_batch: 1, validate_every: 3, validation_episodes: 4}
        evaluation: {episodes: 5, seed: 7}
        """, registry: registry)
        let reference = Fixtures.temporaryFolder(), folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: reference); try? FileManager.default.removeItem(atPath: folder) }

        Interruption.install()
        defer { Interruption.uninstall() }
        XCTAssertThrowsError(try Fixtures.run(suite, registry: registry, output: folder)) { error in
            guard case RunnerError.interrupted(SIGTERM) = error else { return XCTFail("\(error)") }
        }
        Interruption.uninstall()
        let key = SuitePlan(suite: suite).cells[0].key
        let checkpoint = CellStore(readingFolder: folder).checkpointPath(of: key)
        let metadata = try Checkpoint.metadata(checkpoint)
        let state = try JSONDecoder().decode(TrainingProgress.self,
                                             from: Data((metadata[TrainingProgress.metadataKey] ?? "").utf8))
        XCTAssertEqual(state.iterationsDone, 3, "stopped in the validation after the third step")
        XCTAssertTrue(state.pointPending)
        XCTAssertEqual(state.learningCurve.map(\.iteration), [1, 2])

        let resumed = try Fixtures.run(suite, registry: registry, output: folder).results.cells
        let whole = try Fixtures.run(suite, registry: registry, output: reference).results.cells
        XCTAssertEqual(resumed.map(ShardRunTests.numbers), whole.map(ShardRunTests.numbers))
        XCTAssertEqual(resumed.first?.learningCurve.compactMap(\.validationAccuracy).count, 2)
        XCTAssertEqual(resumed.first?.resumedAtIterations, [3])
    }
}
