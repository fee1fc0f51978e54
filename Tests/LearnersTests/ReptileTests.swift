import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

final class ReptileTests: XCTestCase {
    static let tinyShape = ImageShape(channels: 1, height: 8, width: 8)

    func tinyReptile(_ given: [String: HyperValue] = [:], metaBatch: Int = 1, iterations: Int = 10) throws -> Reptile {
        let setting = LearnerSetting(imageShape: Self.tinyShape, ways: 3, shots: 2, queriesPerClass: 2, trainWays: 3,
                                     trainClassCount: 3, seed: 4, metaBatch: metaBatch, iterations: iterations)
        // Whole-support inner steps on the support set only, so φ can be computed by hand.
        var all: [String: HyperValue] = ["width": .int(4), "downsampling": .string("strided"), "inner_batch": .int(0),
                                         "eval_inner_batch": .int(0), "train_on_queries": .bool(false)]
        all.merge(given) { $1 }
        return try XCTUnwrap(try LearnerRegistry.builtIn.descriptor(named: "reptile").instantiate(all, setting: setting) as? Reptile)
    }

    /// φ computed here, independently of `Reptile.adapt`: `steps` optimiser steps on the whole support set.
    func handAdapted<Rule: UpdateRule>(_ reptile: Reptile, _ theta: Parameters, _ episode: Episode, rule: Rule,
                                       learningRate: Float, steps: Int) -> Parameters {
        let optimizer = ParameterOptimizer(rule, learningRate: learningRate)
        var phi = theta.asLeaves()
        for _ in 0..<steps {
            let logits = reptile.model.forward(episode.support.tensor, parameters: phi, normalization: .batch).output
            phi = optimizer.update(phi, gradients: gradients(of: Tensor.crossEntropy(logits: logits, labels: episode.support.labels),
                                                             wrt: phi.tensors))
        }
        return phi
    }

    func testOuterUpdateIsStepSizeTimesAdaptedMinusInitial() throws {
        for (optimizer, rule) in [("adam", Adam(beta1: 0) as any UpdateRule), ("sgd", SGD())] {
            let reptile = try tinyReptile(["inner_optimizer": .string(optimizer), "inner_steps": .int(3),
                                           "inner_lr": .double(0.01), "outer_lr": .double(0.5)], iterations: 4)
            let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 6)
            let theta = reptile.model.parameters
            func adapted<R: UpdateRule>(_ rule: R) -> Parameters {
                handAdapted(reptile, theta, episode, rule: rule, learningRate: 0.01, steps: 3)
            }
            let phi = adapted(rule)
            _ = try reptile.trainStep(iteration: 1, source: FixedSource(episodes: [episode]))
            let epsilon: Float = 0.5 * (1 - 1.0 / 4)
            for (j, name) in theta.names.enumerated() {
                let expected = zip(theta.tensors[j].scalars, phi.tensors[j].scalars).map { t, f in t + epsilon * (f - t) }
                XCTAssertEqual(reptile.model.parameters.tensors[j].scalars, expected, "\(optimizer): \(name)")
            }
            XCTAssertNotEqual(reptile.model.parameters.tensors[0].scalars, theta.tensors[0].scalars)
        }
    }

    func testMetaBatchAveragesTheTasksInOrder() throws {
        let reptile = try tinyReptile(["inner_steps": .int(2)], metaBatch: 3, iterations: 1)
        let episodes = (0..<3).map { randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: UInt64(30 + $0)) }
        let theta = reptile.model.parameters
        let phis = episodes.map { handAdapted(reptile, theta, $0, rule: Adam(beta1: 0), learningRate: 0.001, steps: 2) }
        _ = try reptile.trainStep(iteration: 0, source: FixedSource(episodes: episodes))
        for (j, name) in theta.names.enumerated() {
            let t = theta.tensors[j].scalars
            var sum = [Float](repeating: 0, count: t.count)
            for phi in phis { for k in 0..<t.count { sum[k] += phi.tensors[j].scalars[k] - t[k] } }
            let expected = (0..<t.count).map { t[$0] + (1.0 / 3) * sum[$0] }
            XCTAssertEqual(reptile.model.parameters.tensors[j].scalars, expected, name)
        }
    }

    func testStepSizeAnnealsLinearlyToZero() throws {
        let reptile = try tinyReptile(["outer_lr": .double(2)], iterations: 8)
        XCTAssertEqual((0...9).map { reptile.outerStepSize(iteration: $0) },
                       [2, 1.75, 1.5, 1.25, 1, 0.75, 0.5, 0.25, 0, 0])
        // At ε = 0 the step leaves θ unchanged.
        let theta = reptile.model.parameters.tensors.map(\.scalars)
        let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 1)
        _ = try reptile.trainStep(iteration: 8, source: FixedSource(episodes: [episode]))
        XCTAssertEqual(reptile.model.parameters.tensors.map(\.scalars), theta)
    }

    func testInnerMinibatchesCycleThroughReshuffledPasses() {
        var rng = SeededGenerator(seed: 1)
        let batches = Reptile.innerBatches(count: 5, batch: 2, steps: 5, using: &rng)
        XCTAssertEqual(batches.count, 5)
        XCTAssertTrue(batches.allSatisfy { $0.count == 2 })
        // The first two passes (10 indices) hold every image twice.
        XCTAssertEqual(batches.flatMap { $0 }.sorted(), (0..<5).flatMap { [$0, $0] })
        var whole = SeededGenerator(seed: 1)
        XCTAssertEqual(Reptile.innerBatches(count: 5, batch: 0, steps: 2, using: &whole), [Array(0..<5), Array(0..<5)])
        XCTAssertEqual(Reptile.innerBatches(count: 5, batch: 5, steps: 1, using: &whole), [Array(0..<5)])
    }

    /// `inner_batches: independent`: every step draws `batch` distinct images of its own, so over many
    /// steps each image appears about equally often but batches do not tile passes.
    func testIndependentInnerBatchesAreDistinctDrawsPerStep() throws {
        var rng = SeededGenerator(seed: 4)
        let batches = Reptile.innerBatches(count: 5, batch: 2, steps: 2000, sampling: .independent, using: &rng)
        XCTAssertEqual(batches.count, 2000)
        XCTAssertTrue(batches.allSatisfy { $0.count == 2 && $0[0] != $0[1] && $0.allSatisfy { (0..<5).contains($0) } })
        let counts = (0..<5).map { i in batches.joined().filter { $0 == i }.count }
        XCTAssertTrue(counts.allSatisfy { abs($0 - 800) < 120 }, "\(counts)")
        // Passes would hold each image exactly twice in the first five batches; independent draws need not.
        let firstPasses = (0..<200).map { k in batches[(5 * k)..<(5 * k + 5)].joined().sorted() }
        XCTAssertTrue(firstPasses.contains { $0 != (0..<5).flatMap { [$0, $0] } })
        let reptile = try tinyReptile(["inner_batch": .int(2), "inner_batches": .string("independent")])
        XCTAssertEqual(reptile.innerSampling, .independent)
    }

    func testMinibatchTrainingAndNonTransductiveEvaluationRun() throws {
        let reptile = try tinyReptile(["inner_batch": .int(4), "batch_norm": .string("support"), "eval_inner_steps": .int(3),
                                       "train_on_queries": .bool(true)])
        XCTAssertTrue(reptile.trainOnQueries)
        XCTAssertFalse(reptile.isTransductive)
        let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 2)
        let stats = try reptile.trainStep(iteration: 0, source: FixedSource(episodes: [episode]))
        XCTAssertTrue(stats.loss.isFinite)
        XCTAssertNotNil(stats.accuracy)
        // Non-transductive: a query's logits do not depend on the other queries.
        let classifier = try reptile.adapt(support: episode.support, ways: 3)
        let all = try classifier.logits(queries: episode.query.tensor)
        let first = try classifier.logits(queries: episode.query.tensor.slice(axis: 0, 0..<1))
        assertClose(first.scalars, Array(all.scalars.prefix(3)), relative: 1e-5, absolute: 1e-6)
    }

    /// 60 iterations of 5 training tasks of 10 images per class (1 shot + 9 queries, the paper's train shots),
    /// then 50 test episodes (5-way 1-shot, width 16, default hyperparameters but 20 evaluation steps). The
    /// untrained initialisation adapted on the support set already scores about 0.5 on the same episodes
    /// (chance 0.2), so Reptile must beat its own untrained score clearly.
    func testReptileLearnsEmbeddedGlyphs() throws {
        let train = SamplerSource(sampler: try Embedded.sampler("train", queries: 9, seed: 3))
        let test = try Embedded.sampler("test", queries: 3)
        let learner = try LearnerRegistry.builtIn.descriptor(named: "reptile").instantiate(
            ["width": .int(16), "eval_inner_steps": .int(20)],
            setting: Embedded.setting(queries: 9, metaBatch: 5, iterations: 60))
        let untrained = try meanAccuracy(learner, test, episodes: 50)
        for iteration in 0..<60 {
            XCTAssertTrue(try learner.trainStep(iteration: iteration, source: train).loss.isFinite)
        }
        let accuracy = try meanAccuracy(learner, test, episodes: 50)
        print("reptile: 5-way 1-shot test accuracy \(untrained) untrained, \(accuracy) after 60 iterations")
        XCTAssertGreaterThan(accuracy, untrained + 0.1, "\(accuracy) after training, \(untrained) before (chance 0.2)")
    }

    func testBadHyperparametersNameTheKey() throws {
        let reptile = try LearnerRegistry.builtIn.descriptor(named: "reptile")
        let setting = Embedded.setting()
        for (given, key) in [(["inner_lr": HyperValue.double(-0.1)], "inner_lr"),
                             (["inner_steps": .int(0)], "inner_steps"),
                             (["inner_batch": .int(-1)], "inner_batch"),
                             (["eval_inner_steps": .int(0)], "eval_inner_steps"),
                             (["outer_lr": .double(0)], "outer_lr"),
                             (["inner_optimizer": .string("rmsprop")], "inner_optimizer"),
                             (["outer_step": .double(1)], "outer_step"),
                             (["batch_norm": .string("running")], "batch_norm"),
                             (["inner_batches": .string("random")], "inner_batches"),
                             (["transductive": .bool(true)], "transductive")] {
            let error = thrownError(try reptile.instantiate(given, setting: setting))
            XCTAssertTrue(error is HyperParameterError, "\(given): \(String(describing: error))")
            let text = "\(error.map { "\($0)" } ?? "")"
            XCTAssertTrue(text.contains("'\(key)'") && text.contains("'reptile'"), text)
        }
        XCTAssertTrue("\(thrownError(try reptile.instantiate(["inner_optimizer": .string("rmsprop")], setting: setting))!)"
            .contains("adam, sgd"))
    }

    func testCheckpointRoundTripGivesIdenticalLogits() throws {
        let folder = try makeTemporaryFolder(self)
        let trained = try tinyReptile(["eval_inner_steps": .int(3)])
        let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 9)
        _ = try trained.trainStep(iteration: 0, source: FixedSource(episodes: [episode]))
        try Checkpoint.save(trained.checkpointState(), to: folder + "/reptile.h5")
        let fresh = try tinyReptile(["eval_inner_steps": .int(3)])
        XCTAssertNotEqual(fresh.model.parameters.tensors[0].scalars, trained.model.parameters.tensors[0].scalars)
        try fresh.restore(checkpointState: try Checkpoint.load(folder + "/reptile.h5"))
        let a = try trained.adapt(support: episode.support, ways: 3).logits(queries: episode.query.tensor)
        let b = try fresh.adapt(support: episode.support, ways: 3).logits(queries: episode.query.tensor)
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertNotNil(thrownError(try fresh.adapt(support: episode.support, ways: 4)))
    }
}
