import Engine
import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// Records the support sets and queries the runner evaluates it on, in order.
final class RecordingLearner: MetaLearner {
    var supports: [LabelledImages] = []
    var queries: [[Float]] = []

    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats { StepStats(loss: 1) }

    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        supports.append(support)
        return Recorder(learner: self, ways: ways)
    }

    struct Recorder: EpisodeClassifier {
        let learner: RecordingLearner
        let ways: Int
        func logits(queries: Tensor) throws -> Tensor {
            learner.queries.append(queries.scalars)
            return Tensor.zeros([queries.shape[0], ways])
        }
    }

    func checkpointState() -> [String: Tensor] { [:] }
    func restore(checkpointState: [String: Tensor]) throws {}
}

final class EvaluationEpisodesTests: XCTestCase {
    /// `EvaluationEpisodes` (what `bench episodes export` writes) gives exactly the episodes the runner
    /// evaluates each cell on, in order, for every setting, whatever the learner's own training shape.
    func testTheRunnerEvaluatesTheExportedEpisodes() throws {
        final class Made { var learners: [RecordingLearner] = [] }
        let made = Made()
        let registry = LearnerRegistry([
            LearnerDescriptor(name: "recording", summary: "Records its evaluation episodes.", paper: "none",
                              hyperparameters: [], make: { _, _ in
                                  let learner = RecordingLearner()
                                  made.learners.append(learner)
                                  return learner
                              }),
        ])
        let suite = try Fixtures.suite("""
        name: tiny
        settings:
          - {ways: 3, shots: 1, queries: 2}
          - {ways: 2, shots: 2, queries: 3, train_ways: 4}
        learners:
          - name: recording
        training:
          iterations: 2
        evaluation:
          episodes: 5
          seed: 9
        seeds: [0, 1]
        """, registry: registry)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let dataset = Fixtures.dataset()
        _ = try SuiteRunner(suite: suite, registry: registry, dataset: dataset,
                            options: RunOptions(threads: 1, outputDirectory: folder)).run()
        let recorders = made.learners

        XCTAssertEqual(recorders.count, 4, "two settings × two seeds")
        for (index, recorder) in recorders.enumerated() {
            let setting = suite.settings[index / 2]
            let named = try suite.evaluationSetting(named: setting.shortName)
            XCTAssertEqual(named, setting)
            let expected = try EvaluationEpisodes.episodes(suite: suite, dataset: dataset, setting: named, count: 5)
            // (Compared as a whole, so that a failure names the cell rather than printing every pixel.)
            XCTAssertTrue(recorder.supports == expected.map(\.support),
                          "setting \(setting.id), cell \(index): the support sets differ from the exported episodes'")
            XCTAssertTrue(recorder.queries == expected.map(\.query.pixels),
                          "setting \(setting.id), cell \(index): the queries differ from the exported episodes'")
        }
        // Another evaluation seed gives other episodes (the comparison above can fail).
        var reseeded = suite
        reseeded.evaluation.seed = 10
        let other = try EvaluationEpisodes.episodes(suite: reseeded, dataset: dataset, setting: suite.settings[0], count: 5)
        XCTAssertFalse(recorders[0].supports == other.map(\.support))
    }

    func testSettingNames() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite("""
        settings:
          - {ways: 5, shots: 1}
          - {ways: 5, shots: 1, queries: 5}
          - {ways: 20, shots: 1, queries: 5}
          - {ways: 20, shots: 1, queries: 5, train_ways: 30}
        learners:
          - name: nearest
        training:
          iterations: 1
        """, registry: registry)
        XCTAssertEqual(suite.evaluationSettingNames, ["5w1s15q", "5w1s5q", "20w1s"])
        XCTAssertEqual(try suite.evaluationSetting(named: "5w1s15q").queries, 15)
        XCTAssertEqual(try suite.evaluationSetting(named: "5w1s5q").queries, 5)
        XCTAssertEqual(try suite.evaluationSetting(named: "20w1s").ways, 20)
        XCTAssertEqual(try suite.evaluationSetting(named: "20w1s5q").ways, 20)
        func message(_ name: String) -> String {
            do {
                _ = try suite.evaluationSetting(named: name)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(message("5w1s"), "tiny.yaml: setting 5w1s of suite tiny is ambiguous: it has settings with different queries; name one of 5w1s5q, 5w1s15q")
        XCTAssertEqual(message("5w5s"), "tiny.yaml: suite tiny has no setting 5w5s; its settings: 5w1s15q, 5w1s5q, 20w1s")
        for bad in ["", "5w", "w1s", "5w1", "5s1w", "5w1s2", "5w1s5q1", "5W1S", "5w 1s", "99999999999999999999w1s", "５w1s"] {
            XCTAssertTrue(message(bad).contains("is not a setting name"), "\(bad): \(message(bad))")
        }
    }

    func testExportBounds() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        let dataset = Fixtures.dataset()
        for count in [0, -1, EvaluationEpisodes.maxCount + 1] {
            XCTAssertThrowsError(try EvaluationEpisodes.episodes(suite: suite, dataset: dataset, setting: suite.settings[0],
                                                                 count: count)) { error in
                XCTAssertEqual("\(error)", "the episode count must be in 1…100000, got \(count)")
            }
        }
        // A split with fewer classes than ways: the error names the setting and the suite file.
        let wide = SettingSpec(ways: 7, shots: 1, queries: 2)
        XCTAssertThrowsError(try EvaluationEpisodes.episodes(suite: suite, dataset: dataset, setting: wide, count: 1)) { error in
            XCTAssertTrue("\(error)".hasPrefix("tiny.yaml: dataset: setting 7w1s2q: "), "\(error)")
        }
    }
}
