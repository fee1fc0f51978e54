import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

final class MatchingNetTests: XCTestCase {
    let small: [String: HyperValue] = ["width": .int(8)]
    let smallFCE: [String: HyperValue] = ["width": .int(8), "fce": .bool(true), "fce_steps": .int(3)]

    func testAttentionRowsSumToOneAndLogitsGiveTheAttentionWeightedLabels() throws {
        let learner = try XCTUnwrap(try makeLearner("matchingnet", small) as? MatchingNet)
        let e = try evaluationEpisodes(ways: 4, shots: 2, queries: 3).episode(1)
        let embedded = withoutGradients {
            learner.model.forward(Tensor.concat([e.support.tensor, e.query.tensor], axis: 0),
                                  parameters: learner.model.parameters, normalization: .batch).output
        }
        let ns = e.support.count
        let s = embedded.slice(axis: 0, 0..<ns), q = embedded.slice(axis: 0, ns..<embedded.shape[0])
        let scale: Float = 3
        let a = MatchingNet.attention(queries: q, support: s, scale: scale)
        XCTAssertEqual(a.shape, [e.query.count, ns])
        for r in 0..<a.shape[0] {
            XCTAssertEqual(a.scalars[(r * ns)..<((r + 1) * ns)].reduce(0, +), 1, accuracy: 1e-5)
        }
        // By hand: cosine similarities, their softmax, and the attention mass on each class.
        let d = s.shape[1]
        func row(_ t: Tensor, _ i: Int) -> [Float] { Array(t.scalars[(i * d)..<((i + 1) * d)]) }
        func norm(_ v: [Float]) -> Float { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        for r in 0..<q.shape[0] {
            let cos = (0..<ns).map { i -> Float in
                let x = row(q, r), y = row(s, i)
                return zip(x, y).map(*).reduce(0, +) / (norm(x) * norm(y))
            }
            let exps = cos.map { Foundation.exp(scale * $0) }
            let attention = exps.map { $0 / exps.reduce(0, +) }
            for i in 0..<ns { XCTAssertEqual(a.scalars[r * ns + i], attention[i], accuracy: 1e-4) }
        }
        let logits = MatchingNet.logits(attention: a, labels: e.support.labels, ways: e.ways)
        let probabilities = logits.softmax()
        for r in 0..<q.shape[0] {
            for k in 0..<e.ways {
                let mass = (0..<ns).filter { e.support.labels[$0] == k }.map { a.scalars[r * ns + $0] }.reduce(0, +)
                XCTAssertEqual(probabilities.scalars[r * e.ways + k], mass, accuracy: 1e-5)
                XCTAssertEqual(logits.scalars[r * e.ways + k], Foundation.log(mass), accuracy: 1e-4)
            }
        }
    }

    func testFullContextEmbeddingsHaveTheRightShapesAndTrainTheLSTMs() throws {
        let learner = try XCTUnwrap(try makeLearner("matchingnet", smallFCE) as? MatchingNet)
        XCTAssertTrue(learner.usesFCE)
        let d = learner.model.featureCount
        XCTAssertEqual(learner.fce["fce.attn.weight_hh"]?.shape, [4 * d, 2 * d])
        XCTAssertEqual(learner.fce["fce.fwd.weight_ih"]?.shape, [4 * d, d])
        let e = try EmbeddedTrainingSource(ways: 5, shots: 2, queries: 3).episodes(iteration: 0, count: 1)[0]
        let theta = learner.parameters
        let s = Tensor(shape: [e.support.count, d], scalars: (0..<(e.support.count * d)).map { Float($0 % 7) / 7 })
        let q = Tensor(shape: [e.query.count, d], scalars: (0..<(e.query.count * d)).map { Float($0 % 5) / 5 })
        let (g, f) = learner.contextEmbeddings(support: s, queries: q, parameters: theta)
        XCTAssertEqual(g.shape, [e.support.count, d])
        XCTAssertEqual(f.shape, [e.query.count, d])

        let r = learner.episodeLoss(theta, episode: e)
        XCTAssertEqual(r.logits.shape, [e.query.count, e.ways])
        let grads = gradients(of: r.loss, wrt: theta.tensors)
        for (name, g) in zip(theta.names, grads) where name.hasPrefix("fce.") {
            XCTAssertGreaterThan(g.scalars.map(abs).max() ?? 0, 0, "no gradient reaches \(name)")
        }
        let before = learner.fce["fce.attn.weight_ih"]!.scalars
        _ = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 2, queries: 3))
        XCTAssertNotEqual(learner.fce["fce.attn.weight_ih"]!.scalars, before)
    }

    func testQueriesAreScoredIndependentlyWithFCE() throws {
        let learner = try makeLearner("matchingnet", smallFCE)
        XCTAssertFalse(learner.isTransductive)
        _ = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 2))
        let e = try evaluationEpisodes().episode(0)
        let classifier = try learner.adapt(support: e.support, ways: e.ways)
        let all = try classifier.logits(queries: e.query.tensor)
        XCTAssertEqual(all.shape, [e.query.count, e.ways])
        let some = try classifier.logits(queries: e.query.tensor.slice(axis: 0, 2..<4))
        assertClose(some, all.slice(axis: 0, 2..<4), tolerance: 1e-5)
    }

    func testBadHyperparametersNameTheKey() {
        assertHyperParameterError("matchingnet", ["lr": .double(-1)], names: "lr")
        assertHyperParameterError("matchingnet", ["fce_steps": .int(0)], names: "fce_steps")
        assertHyperParameterError("matchingnet", ["fce": .string("yes")], names: "fce")
        assertHyperParameterError("matchingnet", ["attention": .string("cosine")], names: "attention")
    }

    func testCheckpointRoundTripWithFCE() throws {
        let learner = try makeLearner("matchingnet", smallFCE)
        _ = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 2))
        XCTAssertNotNil(learner.checkpointState()["model/fce.bwd.bias"])
        try assertCheckpointRoundTrip("matchingnet", smallFCE, trained: learner)
        // A checkpoint without the LSTMs does not load into a learner with them.
        let plain = try makeLearner("matchingnet", small)
        XCTAssertThrowsError(try learner.restore(checkpointState: plain.checkpointState())) { error in
            XCTAssertTrue("\(error)".contains("fce."), "\(error)")
        }
    }

    func testLearnsOnTheEmbeddedDataset() throws {
        let learner = try makeLearner("matchingnet", ["width": .int(16)], setting: embeddedSetting(trainWays: 10))
        try assertLearns("matchingnet", learner, source: try EmbeddedTrainingSource(ways: 10, shots: 1, queries: 5),
                         iterations: 80)
    }

    func testLearnsWithFullContextEmbeddings() throws {
        let learner = try makeLearner("matchingnet", ["width": .int(16), "fce": .bool(true)],
                                      setting: embeddedSetting(trainWays: 10))
        try assertLearns("matchingnet+fce", learner, source: try EmbeddedTrainingSource(ways: 10, shots: 1, queries: 5),
                         iterations: 60)
    }
}
