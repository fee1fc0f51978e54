import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

final class SuiteParsingTests: XCTestCase {
    let registry = Fixtures.registry()

    func testValidSuiteWithDefaults() throws {
        let suite = try Fixtures.suite(registry: registry)
        XCTAssertEqual(suite.name, "tiny")
        XCTAssertTrue(suite.exact)
        XCTAssertEqual(suite.dataset, DatasetSpec())
        XCTAssertEqual(suite.normalization, .none)
        XCTAssertEqual(suite.settings, [SettingSpec(ways: 3, shots: 1, queries: 2, trainWays: 3, trainShots: 1, trainQueries: 2)])
        XCTAssertEqual(suite.learners.map(\.label), ["nearest", "nearest-b"])
        XCTAssertEqual(suite.learners[0].hyperparameters, ["scale": .int(2)])
        XCTAssertEqual(suite.learners[0].line, 6)
        XCTAssertEqual(suite.training, TrainingBudget(iterations: 6, metaBatch: 2, validateEvery: 3, validationEpisodes: 4))
        XCTAssertEqual(suite.evaluation, EvaluationSpec(episodes: 12, seed: 7))
        XCTAssertEqual(suite.seeds, [0, 1])
        XCTAssertEqual(suite.publishedAccuracy(label: "nearest", setting: suite.settings[0]), 50)
        XCTAssertNil(suite.publishedAccuracy(label: "nearest-b", setting: suite.settings[0]))
    }

    func testFullSuite() throws {
        let yaml = """
        description: everything spelled out
        dataset:
          path: some/folder
          image_size: 28
          rotations: true
          labels_prefix: vinyals_
          splits: {train: background, val: none, test: evaluation}
        normalization: {mean: [0.5], std: [0.25]}
        settings:
          - {ways: 5, shots: 1}
          - {ways: 5, shots: 5, queries: 10, train_ways: 20, train_shots: 1, train_queries: 5}
        learners:
          - name: nearest
            hyperparameters:
              scale: 1e-3
              meta_batch: 4
              first_order: true
              mode: "3"
        training: {iterations: 10}
        """
        let suite = try Suite.parse(yaml: yaml, file: "suites/full.yaml", registry: registry)
        XCTAssertEqual(suite.name, "full")
        XCTAssertEqual(suite.summary, "everything spelled out")
        XCTAssertFalse(suite.exact)
        XCTAssertEqual(suite.dataset.path, "some/folder")
        XCTAssertEqual(suite.dataset.options, LoadOptions(imageSize: 28, rotations: true, labelsPrefix: "vinyals_"))
        XCTAssertEqual(suite.dataset.trainSplit, "background")
        XCTAssertNil(suite.dataset.valSplit)
        XCTAssertEqual(suite.dataset.testSplit, "evaluation")
        XCTAssertEqual(suite.normalization, .meanStd(mean: [0.5], std: [0.25]))
        XCTAssertEqual(suite.settings[0], SettingSpec(ways: 5, shots: 1, queries: 15, trainWays: 5, trainShots: 1, trainQueries: 15))
        XCTAssertEqual(suite.settings[1].id, "5w5s10q-train20w1s5q")
        XCTAssertEqual(suite.learners[0].hyperparameters,
                       ["scale": .double(0.001), "meta_batch": .int(4), "first_order": .bool(true), "mode": .string("3")])
        XCTAssertEqual(suite.seeds, [0])
        XCTAssertEqual(suite.evaluation, EvaluationSpec(episodes: 600, seed: 0))
    }

    /// Each mistake is reported with the file, the line and what was expected.
    func testErrorsNameFileAndLine() {
        let base = """
        name: broken
        settings:
          - {ways: 5, shots: 1}
        learners:
          - name: nearest
        training:
          iterations: 10
        """
        let cases: [(String, String, [String])] = [
            (base + "\nsedds: [1]", "t.yaml:8:", ["unknown key 'sedds'", "allowed:", "seeds"]),
            (base.replacingOccurrences(of: "ways: 5", with: "ways: five"), "t.yaml:3:", ["ways", "expected an integer", "'five'"]),
            (base.replacingOccurrences(of: "ways: 5", with: "ways: 1"), "t.yaml:3:", ["at least 2"]),
            (base.replacingOccurrences(of: "  iterations: 10", with: "  meta_batch: 2"), "t.yaml:7:", ["missing required key 'iterations'"]),
            (base.replacingOccurrences(of: "learners:\n  - name: nearest\n", with: ""), "t.yaml:1:", ["missing required key 'learners'"]),
            (base.replacingOccurrences(of: "name: nearest", with: "name: mamll"), "t.yaml:5:",
             ["unknown learner 'mamll'", "known learners: nearest, diverging, throwing"]),
            (base.replacingOccurrences(of: "  - name: nearest", with: "  - name: nearest\n    hyperparameters: {lr: 0.1}"),
             "t.yaml:5:", ["no hyperparameter 'lr'", "scale"]),
            (base.replacingOccurrences(of: "  - name: nearest", with: "  - name: nearest\n    hyperparameters: {scale: fast}"),
             "t.yaml:5:", ["'scale' must be a double", "fast"]),
            (base.replacingOccurrences(of: "  - name: nearest", with: "  - name: nearest\n    training: {train_way: 20}"),
             "t.yaml:6:", ["unknown key 'train_way'", "train_ways"]),
            (base.replacingOccurrences(of: "  - name: nearest", with: "  - name: nearest\n    training: {meta_batch: 0}"),
             "t.yaml:6:", ["training.meta_batch", "at least 1"]),
            (base.replacingOccurrences(of: "  - name: nearest", with: "  - name: nearest\n    training: 5"),
             "t.yaml:6:", ["learner training", "expected a mapping"]),
            (base + "\nexact: yes please", "t.yaml:8:", ["exact", "expected true or false"]),
            (base + "\nsettings: []", "t.yaml:8:", ["appears twice"]),
            (base + "\npublished:\n  protonet: {5w1s: 99}", "t.yaml:9:", ["'protonet' is not a learner label", "nearest"]),
            (base + "\npublished:\n  nearest: {five: 99}", "t.yaml:9:", ["like 5w1s"]),
            (base + "\ntraining: [", "t.yaml:", ["invalid YAML"]),
            (base + "\ndataset: {path: x, size: 3}", "t.yaml:8:", ["dataset: unknown key 'size'", "image_size"]),
            (base + "\nnormalization: {mean: [0.5], std: [0]}", "t.yaml:8:", ["normalization.std", "from 1e-06", "got '0'"]),
            (base + "\nseeds: [-1]", "t.yaml:8:", ["seeds", "at least 0"]),
            ("", "t.yaml", ["empty"]),
            ("- a list", "t.yaml:1:", ["expected a mapping"]),
        ]
        for (yaml, prefix, fragments) in cases where !fragments.isEmpty {
            XCTAssertThrowsError(try Suite.parse(yaml: yaml, file: "t.yaml", registry: registry), yaml) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix(prefix), "\(message) should start with \(prefix)")
                for fragment in fragments {
                    XCTAssertTrue(message.contains(fragment), "\(message) should mention \(fragment)")
                }
                XCTAssertTrue(error is SuiteError)
            }
        }
    }

    func testDuplicateLabels() {
        let yaml = """
        settings: [{ways: 5, shots: 1}]
        learners:
          - name: nearest
          - name: nearest
        training: {iterations: 1}
        """
        XCTAssertThrowsError(try Suite.parse(yaml: yaml, file: "d.yaml", registry: registry)) { error in
            XCTAssertEqual("\(error)", "d.yaml:4: learner label 'nearest' appears twice (give one of them a different `label:`)")
        }
    }

    func testLocate() throws {
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/suites", withIntermediateDirectories: true)
        try Fixtures.suiteYAML.write(toFile: folder + "/suites/tiny.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try Suite.locate("tiny", in: folder), folder + "/suites/tiny.yaml")
        XCTAssertEqual(try Suite.locate(folder + "/suites/tiny.yaml", in: "/nonexistent"), folder + "/suites/tiny.yaml")
        XCTAssertThrowsError(try Suite.locate("smok", in: folder)) { error in
            XCTAssertTrue("\(error)".contains("no such suite"), "\(error)")
            XCTAssertTrue("\(error)".contains("tiny"), "\(error)")
        }
        XCTAssertThrowsError(try Suite.load(folder + "/missing.yaml", registry: registry)) { error in
            XCTAssertTrue("\(error)".hasPrefix(folder + "/missing.yaml: cannot read"), "\(error)")
        }
    }

    /// The shipped suites parse against the built-in learners (hyperparameter names and types included).
    func testShippedSuitesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let names = ["maml", "fomaml", "reptile", "protonet", "matchingnet", "baseline", "baseline++"]
        let standIns = LearnerRegistry.builtIn
        for file in ["smoke", "omniglot-small", "omniglot", "miniimagenet"] {
            let suite = try Suite.load(root + "/suites/\(file).yaml", registry: standIns)
            XCTAssertEqual(suite.name, file)
            XCTAssertEqual(suite.learners.map(\.name), names)
        }
        let smoke = try Suite.load(root + "/suites/smoke.yaml", registry: standIns)
        XCTAssertTrue(smoke.exact)
        XCTAssertTrue(smoke.dataset.isEmbedded)
        let omniglot = try Suite.load(root + "/suites/omniglot.yaml", registry: standIns)
        XCTAssertEqual(omniglot.publishedAccuracy(label: "maml", setting: SettingSpec(ways: 20, shots: 1)), 95.8)
        let mini = try Suite.load(root + "/suites/miniimagenet.yaml", registry: standIns)
        XCTAssertEqual(mini.publishedAccuracy(label: "baseline++", setting: SettingSpec(ways: 5, shots: 5)), 66.43)
    }

    func testConfidenceInterval() {
        let values = [1.0, 0.0, 1.0, 0.0]
        XCTAssertEqual(Statistics.mean(values), 0.5)
        XCTAssertEqual(Statistics.sampleStandardDeviation(values), (1.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Statistics.ci95(values), 1.96 * (1.0 / 3).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(Statistics.ci95([0.8, 0.6, 0.7]), 1.96 * 0.1 / 3.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Statistics.ci95([0.5]), 0)
        XCTAssertEqual(Statistics.ci95([]), 0)
    }

    func testArgmaxCountsFirstMaximumOnTies() {
        let logits: [Float] = [0, 2, 1, /**/ 3, 3, 0, /**/ .nan, 1, 0]
        XCTAssertEqual(EpisodeEvaluator.correctCount(logits: logits, labels: [1, 0, 1], ways: 3), 3)
        XCTAssertEqual(EpisodeEvaluator.correctCount(logits: logits, labels: [2, 1, 0], ways: 3), 0)
    }
}
