import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// A learner that serves any episode shape is trained once for every setting that shares its training
/// episodes, and that one model is evaluated on each (issue 11, point 3).
final class TrainOnceTests: XCTestCase {
    /// The nearest-mean test learner, declared shape-free or not.
    func makeRegistry(anyShape: Bool, log: LearnerLog) -> LearnerRegistry {
        LearnerRegistry([
            LearnerDescriptor(name: "nearest", summary: "", paper: "",
                              hyperparameters: [HyperParameterSpec("scale", .double(1), "Loss scale.")],
                              evaluatesAnyEpisodeShape: anyShape,
                              make: { hp, setting in
                                  log.made += 1
                                  log.settings.append(setting)
                                  return NearestMeanLearner(scale: try hp.positiveDouble("scale"), log: log)
                              }),
        ])
    }

    func makeSuite(settings: String, registry: LearnerRegistry) throws -> Suite {
        try Fixtures.suite("""
        name: once
        settings:
        \(settings)
        learners:
          - name: nearest
            training: {train_ways: 4, train_shots: 1, train_queries: 2}
        training: {iterations: 5, meta_batch: 1, validate_every: 5, validation_episodes: 3}
        evaluation: {episodes: 6, seed: 2}
        seeds: [0, 1]
        """, registry: registry)
    }

    static let twoSettings = """
      - {ways: 3, shots: 1, queries: 2}
      - {ways: 2, shots: 1, queries: 2}
    """

    func testSettingsSharingATrainingShapeTrainOnce() throws {
        let log = LearnerLog()
        let registry = makeRegistry(anyShape: true, log: log)
        let suite = try makeSuite(settings: Self.twoSettings, registry: registry)
        let plan = SuitePlan(suite: suite, registry: registry)
        XCTAssertEqual(plan.groups, [[0, 2], [1, 3]], "(seed 0: 3-way and 2-way), (seed 1: 3-way and 2-way)")
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let summary = try Fixtures.run(suite, registry: registry, output: folder)
        XCTAssertEqual(summary.trainedCells, 4)
        XCTAssertEqual(log.made, 2, "one learner per seed")
        XCTAssertEqual(log.steps, 2 * 5, "one training per seed")
        let cells = summary.results.cells
        XCTAssertEqual(cells.map(\.trainedWith), [nil, nil, "3w1s2q-train4w1s2q", "3w1s2q-train4w1s2q"])
        XCTAssertEqual(cells[2].learningCurve, cells[0].learningCurve, "the 2-way cell shows its training's curve")
        XCTAssertTrue(cells.allSatisfy { $0.status == .completed && $0.episodeCorrect.count == 6 })

        // A learner whose model depends on the episode shape trains per setting.
        let perSetting = LearnerLog()
        let separate = makeRegistry(anyShape: false, log: perSetting)
        XCTAssertEqual(SuitePlan(suite: try makeSuite(settings: Self.twoSettings, registry: separate), registry: separate).groups,
                       [[0], [1], [2], [3]])
        let other = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: other) }
        _ = try Fixtures.run(try makeSuite(settings: Self.twoSettings, registry: separate), registry: separate, output: other)
        XCTAssertEqual(perSetting.made, 4)
    }

    func testAddingASettingEvaluatesTheStoredModelWithoutTraining() throws {
        let log = LearnerLog()
        let registry = makeRegistry(anyShape: true, log: log)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try Fixtures.run(try makeSuite(settings: "  - {ways: 3, shots: 1, queries: 2}", registry: registry),
                             registry: registry, output: folder)
        XCTAssertEqual(log.steps, 10)
        let again = try Fixtures.run(try makeSuite(settings: Self.twoSettings, registry: registry), registry: registry, output: folder)
        XCTAssertEqual(log.steps, 10, "no training step: the stored models are evaluated")
        XCTAssertEqual(again.reusedCells, 2)
        XCTAssertEqual(again.trainedCells, 2)
        XCTAssertEqual(again.results.cells.count, 4)

        // Without the models (a fresh clone ships cells, not models), the group trains again, to the same numbers.
        try FileManager.default.removeItem(atPath: folder + "/models")
        for cell in again.results.cells where cell.trainedWith != nil {
            try FileManager.default.removeItem(atPath: CellStore(readingFolder: folder).path(of: cell.key))
        }
        let retrained = try Fixtures.run(try makeSuite(settings: Self.twoSettings, registry: registry), registry: registry, output: folder)
        XCTAssertEqual(log.steps, 20)
        XCTAssertEqual(retrained.results.cells.map(ShardRunTests.numbers), again.results.cells.map(ShardRunTests.numbers))
    }

    /// The shared model evaluates each setting to the numbers a training for that setting alone gives (real
    /// learners: the model depends only on the training episodes).
    func testSharedTrainingGivesTheNumbersOfASeparateTraining() throws {
        let yaml = """
        name: shared
        dataset: {path: embedded}
        settings:
        SETTINGS
        learners:
          - {name: protonet, hyperparameters: {width: 4}, training: {train_ways: 5, train_shots: 1, train_queries: 3}}
          - {name: baseline, hyperparameters: {width: 4, batch_size: 8, finetune_steps: 3}, training: {train_ways: 5, train_shots: 1, train_queries: 3}}
        training: {iterations: 4, meta_batch: 1, validate_every: 2, validation_episodes: 2}
        evaluation: {episodes: 3, seed: 4}
        """
        let dataset = try EmbeddedDataset.load()
        func run(_ settings: String) throws -> [CellResult] {
            let suite = try Suite.parse(yaml: yaml.replacingOccurrences(of: "SETTINGS", with: settings), file: "s.yaml",
                                        registry: .builtIn)
            let folder = Fixtures.temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            return try SuiteRunner(suite: suite, registry: .builtIn, dataset: dataset,
                                   options: RunOptions(threads: 1, outputDirectory: folder)).run().results.cells
        }
        let both = try run("  - {ways: 5, shots: 1, queries: 2}\n  - {ways: 3, shots: 2, queries: 2}")
        let alone = try run("  - {ways: 3, shots: 2, queries: 2}")
        XCTAssertEqual(both.count, 4)
        for cell in alone {
            let shared = try XCTUnwrap(both.first { $0.key == cell.key })
            XCTAssertEqual(shared.trainedWith, "5w1s2q-train5w1s3q")
            XCTAssertEqual(shared.episodeCorrect, cell.episodeCorrect, "\(cell.key)")
            XCTAssertEqual(shared.accuracy, cell.accuracy)
            XCTAssertEqual(shared.learningCurve.map(\.loss), cell.learningCurve.map(\.loss), "the same training steps")
        }
    }

    func testShardsNeverSplitATrainingGroup() throws {
        let log = LearnerLog()
        let registry = makeRegistry(anyShape: true, log: log)
        let plan = SuitePlan(suite: try makeSuite(settings: Self.twoSettings + "\n  - {ways: 4, shots: 1, queries: 2}",
                                              registry: registry), registry: registry)
        XCTAssertEqual(plan.groups.count, 2)
        for count in 1...4 {
            var seen: [Int] = []
            for index in 0..<count {
                let cells = plan.cells(of: try Shard(index: index, count: count))
                XCTAssertEqual(Set(cells.map(\.group)).count, plan.groups(of: try Shard(index: index, count: count)).count)
                for group in Set(cells.map(\.group)) {
                    XCTAssertEqual(cells.filter { $0.group == group }.map(\.index), plan.groups[group], "group \(group) whole")
                }
                seen += cells.map(\.index)
            }
            XCTAssertEqual(seen.sorted(), Array(plan.cells.indices))
        }
        // One training, three evaluations: the group's cost.
        let group = plan.groups[0].map { plan.cells[$0] }
        XCTAssertEqual(plan.groupCosts[0], group[0].trainingCost + group.reduce(0) { $0 + $1.evaluationCost }, accuracy: 1e-9)
    }

    /// `bench evaluate`: the stored models on new settings and more episodes, never a training step.
    func testEvaluateOnlyUsesStoredModels() throws {
        let log = LearnerLog()
        let registry = makeRegistry(anyShape: true, log: log)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func evaluate(_ suite: Suite, episodes: Int? = nil) throws -> RunSummary {
            var options = RunOptions(threads: 1, outputDirectory: folder, episodes: episodes)
            options.evaluateOnly = true
            return try SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(), options: options).run()
        }
        let one = try makeSuite(settings: "  - {ways: 3, shots: 1, queries: 2}", registry: registry)
        XCTAssertThrowsError(try evaluate(one)) { error in
            XCTAssertTrue("\(error)".contains("no trained model in") && "\(error)".contains("nearest 3w1s2q-train4w1s2q seed 0")
                          && "\(error)".contains("train them with bench run"), "\(error)")
        }
        XCTAssertEqual(log.made, 0)
        _ = try Fixtures.run(one, registry: registry, output: folder)
        let steps = log.steps
        let both = try evaluate(try makeSuite(settings: Self.twoSettings, registry: registry))
        XCTAssertEqual(both.trainedCells, 2)
        XCTAssertEqual(both.reusedCells, 2)
        let more = try evaluate(one, episodes: 9)
        XCTAssertEqual(more.trainedCells, 2, "more episodes: new cells, evaluated")
        XCTAssertTrue(more.results.cells.allSatisfy { $0.episodeCorrect.count == 9 })
        XCTAssertEqual(log.steps, steps, "no training step")
        // A model of another training (other hyperparameters) is not used.
        let other = try Fixtures.suite("""
        name: once
        settings:
          - {ways: 3, shots: 1, queries: 2}
        learners:
          - name: nearest
            hyperparameters: {scale: 3}
            training: {train_ways: 4, train_shots: 1, train_queries: 2}
        training: {iterations: 5, meta_batch: 1, validate_every: 5, validation_episodes: 3}
        evaluation: {episodes: 6, seed: 2}
        seeds: [0, 1]
        """, registry: registry)
        XCTAssertThrowsError(try evaluate(other))
    }

    /// The baselines pre-train on classification batches, never on episodes: one training serves every setting,
    /// whatever its training shape, to the numbers of a training for that setting alone.
    func testBaselinesTrainOnceForEverySetting() throws {
        let yaml = """
        name: baselines
        dataset: {path: embedded}
        settings:
        SETTINGS
        learners:
          - {name: baseline++, hyperparameters: {width: 4, batch_size: 8, finetune_steps: 3}}
          - {name: protonet, hyperparameters: {width: 4}}
        training: {iterations: 3, meta_batch: 1, validate_every: 0}
        evaluation: {episodes: 3, seed: 4}
        """
        let dataset = try EmbeddedDataset.load()
        func suite(_ settings: String) throws -> Suite {
            try Suite.parse(yaml: yaml.replacingOccurrences(of: "SETTINGS", with: settings), file: "b.yaml", registry: .builtIn)
        }
        let both = try suite("  - {ways: 5, shots: 1, queries: 2}\n  - {ways: 3, shots: 2, queries: 3}")
        // baseline++ 5w1s and 3w2s share one training; protonet's training episodes differ, so it trains twice.
        XCTAssertEqual(SuitePlan(suite: both).groups, [[0, 2], [1], [3]])
        func run(_ suite: Suite) throws -> [CellResult] {
            let folder = Fixtures.temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            return try SuiteRunner(suite: suite, registry: .builtIn, dataset: dataset,
                                   options: RunOptions(threads: 1, outputDirectory: folder)).run().results.cells
        }
        let shared = try run(both)
        let alone = try run(try suite("  - {ways: 3, shots: 2, queries: 3}"))
        let sharedCell = try XCTUnwrap(shared.first { $0.key.label == "baseline++" && $0.key.setting == "3w2s3q" })
        let aloneCell = try XCTUnwrap(alone.first { $0.key.label == "baseline++" })
        XCTAssertEqual(sharedCell.trainedWith, "5w1s2q")
        XCTAssertEqual(sharedCell.episodeCorrect, aloneCell.episodeCorrect)
        XCTAssertEqual(sharedCell.learningCurve, aloneCell.learningCurve)
    }
}
