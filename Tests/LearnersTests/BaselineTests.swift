import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

final class BaselineTests: XCTestCase {
    let small: [String: HyperValue] = ["width": .int(8), "batch_size": .int(16), "finetune_steps": .int(20)]

    func cosineLogitsByHand(_ x: Tensor, _ w: Tensor, scale: Float, gain: [Float]?) -> Tensor {
        let d = x.shape[1], n = x.shape[0], k = w.shape[0]
        func row(_ t: Tensor, _ i: Int) -> [Float] { Array(t.scalars[(i * d)..<((i + 1) * d)]) }
        func norm(_ v: [Float]) -> Float { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        var out: [Float] = []
        for i in 0..<n {
            for j in 0..<k {
                let a = row(x, i), b = row(w, j)
                out.append(scale * (gain?[j] ?? 1) * zip(a, b).map(*).reduce(0, +) / (norm(a) * norm(b)))
            }
        }
        return Tensor(shape: [n, k], scalars: out)
    }

    func testBaselinePlusPlusLogitsAreScaledCosines() throws {
        let e = try evaluationEpisodes(ways: 5, shots: 2, queries: 2).episode(2)
        for classNorm in [false, true] {
            let learner = try XCTUnwrap(try makeLearner("baseline++", small.merging(["class_norm": .bool(classNorm)]) { $1 }) as? Baseline)
            // The reference rule: scale 2 up to 200 classes, 10 above.
            XCTAssertEqual(learner.cosineScale(classes: 5), 2)
            XCTAssertEqual(learner.cosineScale(classes: 200), 2)
            XCTAssertEqual(learner.cosineScale(classes: 201), 10)
            let classifier = try learner.adapt(support: e.support, ways: e.ways)
            let features = learner.features(e.query.tensor)
            let tuned = learner.fineTune(features: learner.features(e.support.tensor), labels: e.support.labels,
                                         ways: e.ways, seed: MetricSupport.contentSeed(e.support, seed: 3)).head
            XCTAssertEqual(tuned["head.gain"] != nil, classNorm)
            XCTAssertNil(tuned["head.bias"])
            let expected = cosineLogitsByHand(features, tuned.require("head.weight"), scale: 2,
                                              gain: tuned["head.gain"]?.scalars)
            assertClose(try classifier.logits(queries: e.query.tensor), expected, tolerance: 1e-4)
            // The pre-training head over the 200 training classes.
            let x = Tensor(shape: [3, learner.model.featureCount], scalars: (0..<(3 * learner.model.featureCount)).map { Float($0 % 5) - 2 })
            assertClose(learner.headLogits(x, learner.head),
                        cosineLogitsByHand(x, learner.head.require("head.weight"), scale: 2, gain: learner.head["head.gain"]?.scalars))
        }
        let scaled = try XCTUnwrap(try makeLearner("baseline++", small.merging(["scale": .double(10)]) { $1 }) as? Baseline)
        XCTAssertEqual(scaled.cosineScale(classes: 5), 10)
    }

    func testFineTuningLowersTheSupportLossAndIsReproducible() throws {
        for name in ["baseline", "baseline++"] {
            let learner = try XCTUnwrap(try makeLearner(name, small) as? Baseline)
            let source = try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 1)
            for i in 0..<3 { _ = try learner.trainStep(iteration: i, source: source) }
            let e = try evaluationEpisodes(ways: 5, shots: 2, queries: 3).episode(4)
            let r = learner.fineTune(features: learner.features(e.support.tensor), labels: e.support.labels,
                                     ways: e.ways, seed: 1)
            XCTAssertEqual(r.losses.count, 21)
            XCTAssertLessThan(r.losses.last!, r.losses.first!, "\(name): support loss \(r.losses)")
            // On well-separated features of unit scale, the loss falls clearly.
            var rng = SeededGenerator(seed: 5)
            let labels = (0..<10).map { $0 / 2 }
            let synthetic = Tensor(shape: [10, 8], scalars: (0..<80).map { i in
                (i % 8 == labels[i / 8] ? 2 : 0) + 0.3 * rng.nextNormal()
            })
            let s = learner.fineTune(features: synthetic, labels: labels, ways: 5, seed: 2)
            XCTAssertLessThan(s.losses.last!, s.losses.first! * 0.85, "\(name): support loss \(s.losses)")
            XCTAssertEqual(zip(s.losses, s.losses.dropFirst()).filter { $1 > $0 }.count, 0, "\(name): \(s.losses)")
            let a = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
            let b = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
            XCTAssertEqual(a.scalars, b.scalars, name)
            // Queries are scored independently.
            XCTAssertFalse(learner.isTransductive)
            let some = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor.slice(axis: 0, 1..<3))
            assertClose(some, a.slice(axis: 0, 1..<3), tolerance: 1e-5)
        }
    }

    func testPreTrainingUsesTheWholeTrainingSplit() throws {
        let learner = try XCTUnwrap(try makeLearner("baseline", small) as? Baseline)
        XCTAssertEqual(learner.head.require("head.weight").shape, [200, 8])
        let stats = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 1))
        XCTAssertTrue(stats.loss.isFinite)
        XCTAssertNotNil(stats.accuracy)
    }

    func testBadHyperparametersNameTheKey() {
        assertHyperParameterError("baseline", ["lr": .double(-0.001)], names: "lr")
        assertHyperParameterError("baseline", ["finetune_steps": .int(0)], names: "finetune_steps")
        assertHyperParameterError("baseline", ["finetune_batch": .int(0)], names: "finetune_batch")
        assertHyperParameterError("baseline", ["finetune_lr": .double(0)], names: "finetune_lr")
        assertHyperParameterError("baseline", ["batch_size": .int(0)], names: "batch_size")
        assertHyperParameterError("baseline", ["scale": .double(2)], names: "scale")
        assertHyperParameterError("baseline++", ["scale": .double(-1)], names: "scale")
        assertHyperParameterError("baseline++", ["class_norm": .int(1)], names: "class_norm")
    }

    func testCheckpointRoundTrip() throws {
        for name in ["baseline", "baseline++"] {
            let learner = try makeLearner(name, small)
            _ = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 1))
            XCTAssertNotNil(learner.checkpointState()["model/head.weight"])
            try assertCheckpointRoundTrip(name, small, trained: learner)
        }
    }

    func testBaselineLearnsOnTheEmbeddedDataset() throws {
        let learner = try makeLearner("baseline", ["width": .int(16)])
        try assertLearns("baseline", learner, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 1),
                         iterations: 60)
    }

    func testBaselinePlusPlusLearnsOnTheEmbeddedDataset() throws {
        let learner = try makeLearner("baseline++", ["width": .int(16)])
        try assertLearns("baseline++", learner, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 1),
                         iterations: 60)
    }
}
