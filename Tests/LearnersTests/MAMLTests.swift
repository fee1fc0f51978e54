import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

final class MAMLTests: XCTestCase {
    static let tinyShape = ImageShape(channels: 1, height: 8, width: 8)

    /// A tiny MAML: Conv4 of width 4 with stride-2 convolutions on 8×8 images, 3 ways.
    func tinyMAML(firstOrder: Bool, innerSteps: Int, transductive: Bool = true) throws -> MAML {
        let setting = LearnerSetting(imageShape: Self.tinyShape, ways: 3, shots: 2, queriesPerClass: 2, trainWays: 3,
                                     trainClassCount: 3, seed: 11)
        let name = firstOrder ? "fomaml" : "maml"
        let learner = try LearnerRegistry.builtIn.descriptor(named: name).instantiate(
            ["width": .int(4), "downsampling": .string("strided"), "inner_steps": .int(innerSteps),
             "inner_lr": .double(0.1), "batch_norm": .string(transductive ? "transductive" : "support")], setting: setting)
        return try XCTUnwrap(learner as? MAML)
    }

    /// L(θ) = CE(query; adapt(θ)), with the log-softmax and the mean taken in Double.
    func postAdaptationLoss(_ maml: MAML, _ theta: Parameters, _ episode: Episode) -> Double {
        let support = episode.support.tensor
        let fast = maml.adapt(theta.asLeaves(), support: support, labels: episode.support.labels, steps: maml.innerSteps,
                              learningRate: maml.innerLearningRate, createGraph: false)
        let logits = withoutGradients { maml.queryLogits(fast.detached(), support: support, query: episode.query.tensor) }
        let ways = logits.shape[1]
        var total = 0.0
        for (row, label) in episode.query.labels.enumerated() {
            let values = logits.scalars[(row * ways)..<((row + 1) * ways)].map(Double.init)
            let top = values.max()!
            let logSum = top + Foundation.log(values.map { Foundation.exp($0 - top) }.reduce(0, +))
            total += logSum - values[label]
        }
        return total / Double(episode.query.labels.count)
    }

    /// Checks the second-order meta-gradient against central differences at 12 random coordinates of every
    /// parameter.
    ///
    /// L is only piecewise smooth: the inner gradient contains ReLU masks, so θ′ (and L) jump wherever a
    /// support-set pre-activation changes sign. A coordinate is compared where the central differences
    /// D(h) and D(h/2) agree within 2e-3 + 1e-2·|D(h/2)| for h = 2e-3, else 1e-3, else 5e-4 (a jump inside
    /// [−h, h] moves them apart by about jump/h; on a smooth piece they differ by O(h²)); there the check is
    /// |analytic − D(h/2)| ≤ 3e-3 + 3e-2·|D(h/2)|. The engine is float32, so D carries about 1e-6/h ≲ 4e-3
    /// of rounding. At least three quarters of the coordinates, and some of every tensor, must be smooth enough to check.
    func checkMetaGradient(innerSteps: Int) throws {
        let maml = try tinyMAML(firstOrder: false, innerSteps: innerSteps)
        let episode = randomEpisode(ways: 3, shots: 1, queries: 2, shape: Self.tinyShape, seed: 5)
        let theta = maml.model.parameters.asLeaves()
        let analytic = maml.metaGradient(theta, episode: episode).gradients
        var rng = SeededGenerator(seed: 99)
        let steps: [Float] = [2e-3, 1e-3, 5e-4]
        var sampled = 0, checked = 0, largest = 0.0
        for (j, (name, tensor)) in theta.enumerated() {
            var checkedHere = 0
            for _ in 0..<12 {
                let k = rng.nextInt(below: tensor.count)
                func loss(_ delta: Float) -> Double {
                    var values = tensor.scalars
                    values[k] += delta
                    let perturbed = theta.map { n, t in n == name ? Tensor(shape: t.shape, scalars: values) : t }
                    return postAdaptationLoss(maml, perturbed, episode)
                }
                sampled += 1
                // The first step size at which the coordinate looks smooth, if any.
                var numeric: Double?
                for h in steps {
                    let coarse = (loss(h) - loss(-h)) / (2 * Double(h))
                    let fine = (loss(h / 2) - loss(-h / 2)) / Double(h)
                    if abs(coarse - fine) <= 2e-3 + 1e-2 * abs(fine) {
                        numeric = fine
                        break
                    }
                }
                guard let numeric else { continue }
                let a = Double(analytic[j].scalars[k])
                largest = max(largest, abs(numeric))
                XCTAssertLessThanOrEqual(abs(a - numeric), 3e-3 + 3e-2 * abs(numeric),
                                         "\(name)[\(k)] at \(innerSteps) inner steps: analytic \(a), numeric \(numeric)")
                checked += 1
                checkedHere += 1
            }
            XCTAssertGreaterThan(checkedHere, 0, "\(name): no coordinate smooth enough to check")
        }
        XCTAssertGreaterThanOrEqual(4 * checked, 3 * sampled, "only \(checked) of \(sampled) coordinates checked")
        XCTAssertGreaterThan(largest, 1e-2, "the check needs gradients that are not all tiny")
    }

    func testMetaGradientMatchesFiniteDifferencesOneInnerStep() throws {
        try checkMetaGradient(innerSteps: 1)
    }

    func testMetaGradientMatchesFiniteDifferencesTwoInnerSteps() throws {
        try checkMetaGradient(innerSteps: 2)
    }

    func testFirstOrderMetaGradientIsQueryGradientAtAdaptedWeights() throws {
        let fomaml = try tinyMAML(firstOrder: true, innerSteps: 2)
        let maml = try tinyMAML(firstOrder: false, innerSteps: 2)
        let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 8)
        let theta = fomaml.model.parameters.asLeaves()
        XCTAssertEqual(theta.tensors.map(\.scalars), maml.model.parameters.tensors.map(\.scalars), "same seed, same θ")

        // θ′ by hand: two plain gradient steps on the support set, then the query gradient at θ′.
        let support = episode.support.tensor
        var fast = theta
        for _ in 0..<2 {
            let loss = Tensor.crossEntropy(logits: fomaml.model.forward(support, parameters: fast, normalization: .batch).output,
                                           labels: episode.support.labels)
            let g = gradients(of: loss, wrt: fast.tensors)
            fast = fast.replacing(zip(fast.tensors, g).map { p, g in
                Tensor(shape: p.shape, scalars: zip(p.scalars, g.scalars).map { $0 - 0.1 * $1 }, requiresGrad: true)
            })
        }
        let queryLoss = Tensor.crossEntropy(
            logits: fomaml.model.forward(episode.query.tensor, parameters: fast, normalization: .batch).output,
            labels: episode.query.labels)
        let expected = gradients(of: queryLoss, wrt: fast.tensors)

        let firstOrder = fomaml.metaGradient(theta, episode: episode)
        XCTAssertEqual(firstOrder.loss, queryLoss.item, accuracy: 1e-6)
        for (j, name) in theta.names.enumerated() {
            assertClose(firstOrder.gradients[j].scalars, expected[j].scalars, relative: 1e-4, absolute: 1e-6, name)
        }

        let secondOrder = maml.metaGradient(theta, episode: episode)
        XCTAssertEqual(secondOrder.loss, firstOrder.loss, accuracy: 1e-6, "same forward pass")
        let difference = zip(secondOrder.gradients, firstOrder.gradients)
            .map { a, b in zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! }.max()!
        XCTAssertGreaterThan(difference, 1e-3, "the second-order terms must change the meta-gradient")
    }

    /// 80 iterations of 4 episodes, then 50 test episodes (5-way 1-shot, width 16, α = 0.1). Chance is
    /// 0.2, but the untrained initialisation adapted on the support set already scores about 0.5 on the
    /// same episodes, so each learner must beat its own untrained score clearly, not just chance (about 0.78 → 0.90 for
    /// MAML and → 0.84 for first-order MAML).
    func testMAMLAndFirstOrderMAMLLearnEmbeddedGlyphs() throws {
        let train = SamplerSource(sampler: try Embedded.sampler("train", queries: 3, seed: 3))
        let test = try Embedded.sampler("test", queries: 3)
        for name in ["maml", "fomaml"] {
            let learner = try LearnerRegistry.builtIn.descriptor(named: name).instantiate(
                ["width": .int(16), "inner_lr": .double(0.1), "eval_inner_lr": .double(0.1)],
                setting: Embedded.setting(queries: 3, metaBatch: 4, iterations: 80))
            let untrained = try meanAccuracy(learner, test, episodes: 50)
            for iteration in 0..<80 {
                let stats = try learner.trainStep(iteration: iteration, source: train)
                XCTAssertTrue(stats.loss.isFinite)
            }
            let accuracy = try meanAccuracy(learner, test, episodes: 50)
            print("\(name): 5-way 1-shot test accuracy \(untrained) untrained, \(accuracy) after 80 iterations")
            // 50 episodes of 15 queries: the 95% interval of each mean is about ±0.03, so a gain of 0.05 (first
            // order, which learns more slowly) or 0.1 (second order) is well outside the noise.
            let margin = name == "maml" ? 0.1 : 0.05
            XCTAssertGreaterThan(accuracy, untrained + margin, "\(name): \(accuracy) after training, \(untrained) before (chance 0.2)")
        }
    }

    func testBadHyperparametersNameTheKey() throws {
        let maml = try LearnerRegistry.builtIn.descriptor(named: "maml")
        let setting = Embedded.setting()
        for (given, key) in [(["inner_lr": HyperValue.double(-0.1)], "inner_lr"),
                             (["inner_steps": .int(0)], "inner_steps"),
                             (["eval_inner_steps": .int(0)], "eval_inner_steps"),
                             (["meta_lr": .double(0)], "meta_lr"),
                             (["downsampling": .string("avgpool")], "downsampling"),
                             (["inner_step": .int(1)], "inner_step"),
                             (["inner_lr": .string("fast")], "inner_lr")] {
            let error = thrownError(try maml.instantiate(given, setting: setting))
            XCTAssertTrue(error is HyperParameterError, "\(given): \(String(describing: error))")
            let text = "\(error.map { "\($0)" } ?? "")"
            XCTAssertTrue(text.contains("'\(key)'") && text.contains("'maml'"), text)
        }
        let unknown = thrownError(try maml.instantiate(["inner_step": .int(1)], setting: setting))
        XCTAssertEqual(unknown as? HyperParameterError,
                       .unknownKey(learner: "maml", key: "inner_step", known: MAML.hyperparameters.map(\.name)))
    }

    func testCheckpointRoundTripGivesIdenticalLogits() throws {
        let folder = try makeTemporaryFolder(self)
        let setting = LearnerSetting(imageShape: Self.tinyShape, ways: 3, shots: 2, queriesPerClass: 2, trainWays: 3,
                                     trainClassCount: 3, seed: 11, metaBatch: 2)
        let descriptor = try LearnerRegistry.builtIn.descriptor(named: "maml")
        let given: [String: HyperValue] = ["width": .int(4), "downsampling": .string("strided")]
        let trained = try descriptor.instantiate(given, setting: setting)
        let source = FixedSource(episodes: (0..<2).map {
            randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: UInt64(20 + $0))
        })
        for i in 0..<3 { _ = try trained.trainStep(iteration: i, source: source) }

        let path = folder + "/maml.h5"
        try Checkpoint.save(trained.checkpointState(), to: path, metadata: ["learner": "maml"])
        let fresh = try descriptor.instantiate(given, setting: setting)
        try fresh.restore(checkpointState: try Checkpoint.load(path))

        let episode = randomEpisode(ways: 3, shots: 2, queries: 2, shape: Self.tinyShape, seed: 40)
        let a = try trained.adapt(support: episode.support, ways: 3).logits(queries: episode.query.tensor)
        let b = try fresh.adapt(support: episode.support, ways: 3).logits(queries: episode.query.tensor)
        XCTAssertEqual(a.scalars, b.scalars)
        // The optimiser state came back too: one more identical step keeps them identical.
        _ = try trained.trainStep(iteration: 3, source: source)
        _ = try fresh.trainStep(iteration: 3, source: source)
        XCTAssertEqual(trained.checkpointState().mapValues(\.scalars), fresh.checkpointState().mapValues(\.scalars))
    }
}
