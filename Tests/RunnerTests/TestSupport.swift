import Engine
import FewShotData
import Foundation
import Learners
@testable import Runner

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// Counts what the test learners did, to tell trained cells from reused ones.
final class LearnerLog {
    var made = 0
    var steps = 0
    var settings: [LearnerSetting] = []
}

/// Nearest class mean on raw pixels; meta-training only draws episodes (to exercise the training source).
final class NearestMeanLearner: MetaLearner {
    let scale: Double
    let log: LearnerLog

    init(scale: Double, log: LearnerLog) {
        self.scale = scale
        self.log = log
    }

    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        log.steps += 1
        let episodes = try source.episodes(iteration: iteration, count: 1)
        let batch = try source.classificationBatch(iteration: iteration, size: 4)
        guard episodes.count == 1, batch.count == 4, batch.labels.allSatisfy({ $0 < source.classCount }) else {
            throw TestFailure(description: "bad training data")
        }
        return StepStats(loss: Float(scale) / Float(iteration + 1))
    }

    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        let d = support.shape.count
        var means = [Float](repeating: 0, count: ways * d)
        var counts = [Float](repeating: 0, count: ways)
        for (i, label) in support.labels.enumerated() {
            counts[label] += 1
            for j in 0..<d { means[label * d + j] += support.pixels[i * d + j] }
        }
        for c in 0..<ways where counts[c] > 0 {
            for j in 0..<d { means[c * d + j] /= counts[c] }
        }
        return NearestMeanClassifier(means: means, ways: ways, dimension: d)
    }

    func checkpointState() -> [String: Tensor] { [:] }
    func restore(checkpointState: [String: Tensor]) throws {}
}

struct NearestMeanClassifier: EpisodeClassifier {
    let means: [Float]
    let ways: Int
    let dimension: Int

    func logits(queries: Tensor) throws -> Tensor {
        let n = queries.shape[0]
        var out = [Float](repeating: 0, count: n * ways)
        for q in 0..<n {
            for c in 0..<ways {
                var s: Float = 0
                for j in 0..<dimension {
                    let diff = queries.scalars[q * dimension + j] - means[c * dimension + j]
                    s += diff * diff
                }
                out[q * ways + c] = -s
            }
        }
        return Tensor(shape: [n, ways], scalars: out)
    }
}

/// A learner whose loss turns NaN at the third iteration.
final class DivergingLearner: MetaLearner {
    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        StepStats(loss: iteration >= 2 ? .nan : 1)
    }
    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        throw TestFailure(description: "a diverged learner must not be evaluated")
    }
    func checkpointState() -> [String: Tensor] { [:] }
    func restore(checkpointState: [String: Tensor]) throws {}
}

/// A learner that throws during meta-training.
final class ThrowingLearner: MetaLearner {
    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        throw TestFailure(description: "boom at iteration \(iteration)")
    }
    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        throw TestFailure(description: "unreachable")
    }
    func checkpointState() -> [String: Tensor] { [:] }
    func restore(checkpointState: [String: Tensor]) throws {}
}

enum Fixtures {
    static func registry(log: LearnerLog = LearnerLog()) -> LearnerRegistry {
        LearnerRegistry([
            LearnerDescriptor(
                name: "nearest", summary: "Nearest class mean on raw pixels.", paper: "none (a test learner)",
                hyperparameters: [
                    HyperParameterSpec("scale", .double(1), "Loss scale."),
                    HyperParameterSpec("meta_batch", .int(1), "Episodes per iteration."),
                    HyperParameterSpec("first_order", .bool(false), "Unused."),
                    HyperParameterSpec("mode", .string("plain"), "Unused."),
                ],
                make: { hp, setting in
                    log.made += 1
                    log.settings.append(setting)
                    return NearestMeanLearner(scale: try hp.positiveDouble("scale"), log: log)
                }),
            LearnerDescriptor(name: "diverging", summary: "NaN loss.", paper: "", hyperparameters: [],
                              make: { _, _ in DivergingLearner() }),
            LearnerDescriptor(name: "throwing", summary: "Throws.", paper: "", hyperparameters: [],
                              make: { _, _ in ThrowingLearner() }),
        ])
    }

    /// Classes of 1×4×4 images around a class-specific brightness, with noise.
    static func split(_ name: String, classes: Int, images: Int = 10, seed: UInt64) -> Split {
        var rng = SeededGenerator(seed: seed)
        let shape = ImageShape(channels: 1, height: 4, width: 4)
        return Split(name: name, classes: (0..<classes).map { c in
            let centre = Double(20 + c * 200 / max(classes, 1))
            let pixels = (0..<(images * shape.count)).map { i -> UInt8 in
                let pattern = Double((i % shape.count) * (c + 1) % 7) * 4
                let noise = Double(rng.nextInt(below: 200))
                return UInt8(min(255, max(0, centre + pattern + noise)))
            }
            return ImageClass(name: "\(name)-\(c)", count: images, pixels: pixels)
        })
    }

    static func dataset(validation: Bool = true) -> FewShotDataset {
        var splits = [split("train", classes: 8, seed: 1)]
        if validation { splits.append(split("val", classes: 5, seed: 2)) }
        splits.append(split("test", classes: 6, seed: 3))
        return FewShotDataset(name: "tiny", layout: "in-memory", imageShape: ImageShape(channels: 1, height: 4, width: 4),
                              splits: splits)
    }

    static let suiteYAML = """
    name: tiny
    exact: true
    settings:
      - {ways: 3, shots: 1, queries: 2}
    learners:
      - name: nearest
        hyperparameters: {scale: 2}
      - name: nearest
        label: nearest-b
    training:
      iterations: 6
      meta_batch: 2
      validate_every: 3
      validation_episodes: 4
    evaluation:
      episodes: 12
      seed: 7
    seeds: [0, 1]
    published:
      nearest: {3w1s: 50.0}
    """

    static func suite(_ yaml: String = suiteYAML, registry: LearnerRegistry) throws -> Suite {
        try Suite.parse(yaml: yaml, file: "tiny.yaml", registry: registry)
    }

    static func temporaryFolder() -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("runner-tests-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func run(_ suite: Suite, registry: LearnerRegistry, output: String, validation: Bool = true,
                    only: [String] = [], episodes: Int? = nil, threads: Int = 1) throws -> RunSummary {
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: dataset(validation: validation),
                                 options: RunOptions(only: only, threads: threads, outputDirectory: output,
                                                     episodes: episodes))
        return try runner.run()
    }
}
