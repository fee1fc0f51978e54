import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

/// The embedded dataset, generated once for all tests.
let embeddedDataset = EmbeddedDataset.generate()

/// A training source over the embedded dataset's training split.
struct EmbeddedTrainingSource: TrainingSource {
    let episodes: EpisodeSampler
    let batches: ClassificationSampler

    init(ways: Int, shots: Int, queries: Int, seed: UInt64 = 7) throws {
        let split = try embeddedDataset.split(named: "train")
        episodes = try EpisodeSampler(split: split, imageShape: embeddedDataset.imageShape,
                                      settings: EpisodeSettings(ways: ways, shots: shots, queriesPerClass: queries),
                                      seed: seed)
        batches = try ClassificationSampler(split: split, imageShape: embeddedDataset.imageShape, seed: seed)
    }

    func episodes(iteration: Int, count: Int) throws -> [Episode] { episodes.metaBatch(iteration, size: count) }
    func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages { batches.batch(iteration, size: size) }
    var classCount: Int { batches.split.classes.count }
}

/// Episodes of the embedded dataset's test split.
func evaluationEpisodes(ways: Int = 5, shots: Int = 1, queries: Int = 5, seed: UInt64 = 11) throws -> EpisodeSampler {
    try EpisodeSampler(split: try embeddedDataset.split(named: "test"), imageShape: embeddedDataset.imageShape,
                       settings: EpisodeSettings(ways: ways, shots: shots, queriesPerClass: queries), seed: seed)
}

/// A setting on the embedded dataset.
func embeddedSetting(ways: Int = 5, shots: Int = 1, queries: Int = 5, trainWays: Int = 5, metaBatch: Int = 1,
                     seed: UInt64 = 3) -> LearnerSetting {
    LearnerSetting(imageShape: embeddedDataset.imageShape, ways: ways, shots: shots, queriesPerClass: queries,
                   trainWays: trainWays, trainClassCount: EmbeddedDataset.classesPerSplit[0], seed: seed,
                   metaBatch: metaBatch, iterations: 100)
}

/// The registered learner `name` with hyperparameters `given`.
func makeLearner(_ name: String, _ given: [String: HyperValue] = [:], setting: LearnerSetting = embeddedSetting()) throws -> MetaLearner {
    try LearnerRegistry.builtIn.descriptor(named: name).instantiate(given, setting: setting)
}

/// Mean accuracy of `learner` over the first `episodes` 5-way test episodes.
func evaluate(_ learner: MetaLearner, episodes: Int = 50, shots: Int = 1) throws -> Float {
    let sampler = try evaluationEpisodes(shots: shots)
    var total: Float = 0
    for i in 0..<episodes {
        let e = sampler.episode(i)
        let logits = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
        total += accuracy(logits: logits, labels: e.query.labels)
    }
    return total / Float(episodes)
}

/// The learning check: mean 5-way 1-shot test accuracy of `learner` before and after `iterations`
/// training steps. Asserts that training beats chance (0.2) clearly, above 0.35, and improves on the
/// untrained learner (whose random features already beat chance on these glyphs) by `margin`.
func assertLearns(_ name: String, _ learner: MetaLearner, source: TrainingSource, iterations: Int, margin: Float = 0.1,
                  file: StaticString = #filePath, line: UInt = #line) throws {
    let start = Date()
    let before = try evaluate(learner)
    var losses: [Float] = []
    for i in 0..<iterations { losses.append(try learner.trainStep(iteration: i, source: source).loss) }
    let after = try evaluate(learner)
    print("\(name): 5-way 1-shot test accuracy \(before) untrained, \(after) after \(iterations) iterations "
          + "(loss \(losses.first ?? .nan) → \(losses.last ?? .nan)), \(Date().timeIntervalSince(start)) s")
    XCTAssertGreaterThan(after, 0.35, file: file, line: line)
    XCTAssertGreaterThan(after, before + margin, file: file, line: line)
}

/// Asserts that building `name` with `given` fails with a hyperparameter error naming `key`.
func assertHyperParameterError(_ name: String, _ given: [String: HyperValue], names key: String,
                               file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try makeLearner(name, given), file: file, line: line) { error in
        guard let e = error as? HyperParameterError else {
            return XCTFail("expected a HyperParameterError, got \(error)", file: file, line: line)
        }
        XCTAssertTrue(e.description.contains("'\(key)'"), "error does not name '\(key)': \(e)", file: file, line: line)
    }
}

/// Asserts two tensors have the same shape and values within `tolerance` (absolute plus relative).
func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, file: file, line: line)
    guard a.shape == b.shape else { return }
    for (x, y) in zip(a.scalars, b.scalars) where abs(x - y) > tolerance * (1 + abs(y)) {
        return XCTFail("\(x) differs from \(y) (tolerance \(tolerance))", file: file, line: line)
    }
}

/// Checkpoint round trip: a fresh learner restored from `learner`'s state scores an episode identically.
func assertCheckpointRoundTrip(_ name: String, _ given: [String: HyperValue], trained learner: MetaLearner,
                               file: StaticString = #filePath, line: UInt = #line) throws {
    let fresh = try makeLearner(name, given)
    try fresh.restore(checkpointState: learner.checkpointState())
    let e = try evaluationEpisodes().episode(0)
    let a = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
    let b = try fresh.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
    XCTAssertEqual(a.scalars, b.scalars, file: file, line: line)
    XCTAssertEqual(Set(learner.checkpointState().keys), Set(fresh.checkpointState().keys), file: file, line: line)

    var missing = learner.checkpointState()
    missing["bn/block2/mean"] = nil
    XCTAssertThrowsError(try fresh.restore(checkpointState: missing), file: file, line: line) { error in
        XCTAssertTrue("\(error)".contains("bn/block2/mean"), "\(error)", file: file, line: line)
    }
    var misshapen = learner.checkpointState()
    misshapen["model/block1.conv.weight"] = Tensor.zeros([1])
    XCTAssertThrowsError(try fresh.restore(checkpointState: misshapen), file: file, line: line) { error in
        XCTAssertTrue("\(error)".contains("model/block1.conv.weight"), "\(error)", file: file, line: line)
    }
}
