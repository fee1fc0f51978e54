import Engine
import Foundation
import FewShotData
@testable import Learners
import Models
import XCTest

final class BaselineTests: XCTestCase {
    let small: [String: HyperValue] = ["width": .int(8), "batch_size": .int(16), "finetune_steps": .int(60)]

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
                                     ways: e.ways, seed: 1, recordLosses: true)
            XCTAssertEqual(r.losses.count, 61)
            XCTAssertLessThan(r.losses.last!, r.losses.first!, "\(name): support loss \(r.losses)")
            // On well-separated features of unit scale, the loss falls clearly.
            var rng = SeededGenerator(seed: 5)
            let labels = (0..<10).map { $0 / 2 }
            let synthetic = Tensor(shape: [10, 8], scalars: (0..<80).map { i in
                (i % 8 == labels[i / 8] ? 2 : 0) + 0.3 * rng.nextNormal()
            })
            let s = learner.fineTune(features: synthetic, labels: labels, ways: 5, seed: 2, recordLosses: true)
            XCTAssertLessThan(s.losses.last!, s.losses.first! * 0.85, "\(name): support loss \(s.losses)")
            // Mini-batch steps may raise the whole-set loss now and then; every fifth step it has fallen.
            let sampled = stride(from: 0, to: s.losses.count, by: 5).map { s.losses[$0] }
            XCTAssertEqual(zip(sampled, sampled.dropFirst()).filter { $1 > $0 }.count, 0, "\(name): \(s.losses)")
            let a = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
            let b = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
            XCTAssertEqual(a.scalars, b.scalars, name)
            // Queries are scored independently.
            XCTAssertFalse(learner.isTransductive)
            let some = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor.slice(axis: 0, 1..<3))
            assertClose(some, a.slice(axis: 0, 1..<3), tolerance: 1e-5)
        }
    }

    /// `finetune_batches: passes` cuts reshuffled passes into batches, the last of a pass smaller (the
    /// reference loop); `independent` draws each batch afresh.
    /// `finetune_steps: 0` (the default) runs the reference code's 100 epochs: 100·⌈n/batch⌉ steps.
    func testDefaultFineTuningIsAHundredPasses() throws {
        let learner = try XCTUnwrap(try makeLearner("baseline", ["width": .int(8)]) as? Baseline)
        XCTAssertEqual(learner.fineTuning.steps(forSupport: 5), 200)
        XCTAssertEqual(learner.fineTuning.steps(forSupport: 25), 700)
        XCTAssertEqual(learner.fineTuning.steps(forSupport: 100), 2500)
        let fixed = try XCTUnwrap(try makeLearner("baseline", ["width": .int(8), "finetune_steps": .int(30)]) as? Baseline)
        XCTAssertEqual(fixed.fineTuning.steps(forSupport: 100), 30)
    }

    func testFineTuneBatchesFollowTheReferenceLoop() {
        var rng = SeededGenerator(seed: 3)
        let passes = Baseline.fineTuneBatches(count: 5, batch: 4, steps: 5, sampling: .passes, using: &rng)
        XCTAssertEqual(passes.map(\.count), [4, 1, 4, 1, 4])
        XCTAssertEqual(passes[0...1].joined().sorted(), Array(0..<5))
        XCTAssertEqual(passes[2...3].joined().sorted(), Array(0..<5))
        let independent = Baseline.fineTuneBatches(count: 5, batch: 4, steps: 50, sampling: .independent, using: &rng)
        XCTAssertTrue(independent.allSatisfy { Set($0).count == 4 })
        XCTAssertEqual(Baseline.fineTuneBatches(count: 3, batch: 4, steps: 2, sampling: .independent, using: &rng).map(\.count), [3, 3])
    }

    /// The fine-tuning optimiser is torch.optim.SGD: by hand for a linear head on two steps, with and without
    /// dampening and Nesterov; reverting to the old fixed rule (dampening always 0.9) fails.
    func testFineTuningUsesPyTorchSGD() throws {
        let features = Tensor(shape: [2, 3], scalars: [1, 0, 2, 0, 1, -1])
        let labels = [0, 1]
        for (damp, nesterov) in [(Float(0), false), (0.9, false), (0, true)] {
            let learner = try XCTUnwrap(try makeLearner("baseline", small.merging([
                "finetune_dampening": .double(Double(damp)), "finetune_nesterov": .bool(nesterov),
                "finetune_momentum": .double(0.5), "finetune_weight_decay": .double(0.1), "finetune_lr": .double(0.2),
            ]) { $1 }) as? Baseline)
            let w0: [Float] = [0.1, -0.2, 0.3, 0.0, 0.2, -0.1], b0: [Float] = [0.05, -0.05]
            let head = Parameters([("head.weight", Tensor(shape: [2, 3], scalars: w0, requiresGrad: true)),
                                   ("head.bias", Tensor(shape: [2], scalars: b0, requiresGrad: true))])
            let tuned = learner.fineTune(features: features, labels: labels, head: head, batches: [[0, 1], [1]]).head
            // By hand: softmax cross-entropy gradients of the linear head, then the SGD rule.
            func grads(_ w: [Float], _ b: [Float], _ rows: [Int]) -> ([Float], [Float]) {
                var gw = [Float](repeating: 0, count: 6), gb: [Float] = [0, 0]
                for r in rows {
                    let x: [Float] = Array(features.scalars[(3 * r)..<(3 * r + 3)])
                    var z: [Float] = [0, 0]
                    for k in 0..<2 {
                        var dot: Float = b[k]
                        for j in 0..<3 { dot += w[3 * k + j] * x[j] }
                        z[k] = dot
                    }
                    let m: Float = max(z[0], z[1])
                    let e: [Float] = [Foundation.exp(z[0] - m), Foundation.exp(z[1] - m)]
                    let p: [Float] = [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
                    for k in 0..<2 {
                        let target: Float = labels[r] == k ? 1 : 0
                        let d: Float = (p[k] - target) / Float(rows.count)
                        gb[k] += d
                        for j in 0..<3 { gw[3 * k + j] += d * x[j] }
                    }
                }
                return (gw, gb)
            }
            var w = w0, b = b0, bw = [Float](repeating: 0, count: 6), bb: [Float] = [0, 0]
            for (t, rows) in [[0, 1], [1]].enumerated() {
                let (gw, gb) = grads(w, b, rows)
                func step(_ v: inout [Float], _ g: [Float], _ buf: inout [Float]) {
                    for i in v.indices {
                        let gi = g[i] + 0.1 * v[i]
                        buf[i] = t == 0 ? gi : 0.5 * buf[i] + (1 - damp) * gi
                        v[i] -= 0.2 * (nesterov ? gi + 0.5 * buf[i] : buf[i])
                    }
                }
                step(&w, gw, &bw)
                step(&b, gb, &bb)
            }
            assertClose(tuned.require("head.weight").scalars, w, relative: 1e-5, absolute: 1e-6, "dampening \(damp) nesterov \(nesterov)")
            assertClose(tuned.require("head.bias").scalars, b, relative: 1e-5, absolute: 1e-6, "dampening \(damp) nesterov \(nesterov)")
        }
        assertHyperParameterError("baseline", ["finetune_nesterov": .bool(true)], names: "finetune_nesterov")
    }

    /// `batch_norm: transductive` normalises the support set and the queries each with its own batch
    /// statistics: a query's logits then depend on the other queries, and the report says so.
    func testTransductiveBatchNormUsesEachBatchsStatistics() throws {
        for name in ["baseline", "baseline++"] {
            let learner = try XCTUnwrap(try makeLearner(name, small.merging(["batch_norm": .string("transductive")]) { $1 }) as? Baseline)
            XCTAssertTrue(learner.isTransductive)
            let e = try evaluationEpisodes(ways: 5, shots: 2, queries: 3).episode(4)
            let byHand = withoutGradients {
                learner.model.forward(e.query.tensor, parameters: learner.model.parameters, normalization: .batch).output
            }
            XCTAssertEqual(learner.features(e.query.tensor).scalars, byHand.scalars)
            let classifier = try learner.adapt(support: e.support, ways: e.ways)
            let all = try classifier.logits(queries: e.query.tensor)
            let some = try classifier.logits(queries: e.query.tensor.slice(axis: 0, 0..<4))
            XCTAssertNotEqual(Array(all.scalars.prefix(20)), some.scalars, "\(name): queries must share batch statistics")
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
        assertHyperParameterError("baseline", ["finetune_steps": .int(-1)], names: "finetune_steps")
        assertHyperParameterError("baseline", ["finetune_batch": .int(0)], names: "finetune_batch")
        assertHyperParameterError("baseline", ["finetune_lr": .double(0)], names: "finetune_lr")
        assertHyperParameterError("baseline", ["batch_size": .int(0)], names: "batch_size")
        assertHyperParameterError("baseline", ["scale": .double(2)], names: "scale")
        assertHyperParameterError("baseline++", ["scale": .double(-1)], names: "scale")
        assertHyperParameterError("baseline++", ["class_norm": .int(1)], names: "class_norm")
        assertHyperParameterError("baseline", ["finetune_dampening": .double(1.5)], names: "finetune_dampening")
        assertHyperParameterError("baseline", ["finetune_batches": .string("epochs")], names: "finetune_batches")
        assertHyperParameterError("baseline", ["batch_norm": .string("support")], names: "batch_norm")
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
