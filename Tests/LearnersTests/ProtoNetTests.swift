import Engine
import FewShotData
@testable import Learners
import Models
import XCTest

final class ProtoNetTests: XCTestCase {
    let small: [String: HyperValue] = ["width": .int(8)]

    func testMetricLearnersAreRegisteredAfterMAML() throws {
        let names = LearnerRegistry.builtIn.names
        XCTAssertEqual(Array(names.suffix(4)), ["protonet", "matchingnet", "baseline", "baseline++"])
        for name in names.suffix(4) {
            let d = try LearnerRegistry.builtIn.descriptor(named: name)
            XCTAssertFalse(d.summary.isEmpty)
            XCTAssertTrue(d.paper.contains("20"), d.paper)
            XCTAssertNoThrow(try d.instantiate(["width": .int(4)], setting: embeddedSetting()))
        }
    }

    func testLogitsAreMinusSquaredDistancesToClassMeans() throws {
        let learner = try XCTUnwrap(try makeLearner("protonet", small) as? ProtoNet)
        let source = try EmbeddedTrainingSource(ways: 5, shots: 2, queries: 3)
        for i in 0..<2 { _ = try learner.trainStep(iteration: i, source: source) }
        let e = try evaluationEpisodes(ways: 4, shots: 3, queries: 2).episode(3)
        let logits = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
        XCTAssertEqual(logits.shape, [e.query.count, e.ways])

        let s = learner.embed(e.support.tensor), q = learner.embed(e.query.tensor)
        let d = s.shape[1]
        var expected = [Float]()
        for r in 0..<q.shape[0] {
            for k in 0..<e.ways {
                let members = e.support.labels.indices.filter { e.support.labels[$0] == k }
                var distance: Float = 0
                for j in 0..<d {
                    let mean = members.map { s.scalars[$0 * d + j] }.reduce(0, +) / Float(members.count)
                    let diff = q.scalars[r * d + j] - mean
                    distance += diff * diff
                }
                expected.append(-distance)
            }
        }
        assertClose(logits, Tensor(shape: logits.shape, scalars: expected), tolerance: 1e-3)
    }

    func testQueriesAreScoredIndependently() throws {
        let learner = try makeLearner("protonet", small)
        XCTAssertFalse(learner.isTransductive)
        _ = try learner.trainStep(iteration: 0, source: try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 2))
        let e = try evaluationEpisodes().episode(0)
        let classifier = try learner.adapt(support: e.support, ways: e.ways)
        let all = try classifier.logits(queries: e.query.tensor)
        let first = try classifier.logits(queries: e.query.tensor.slice(axis: 0, 0..<1))
        assertClose(first, all.slice(axis: 0, 0..<1), tolerance: 1e-5)
    }

    /// `batch_norm: transductive`: in training the support set and the queries are normalised as two
    /// batches (the loss equals one computed from two separate forward passes, not from one joint batch),
    /// and at evaluation the queries share their batch's statistics. Matching Networks alike.
    func testTransductiveBatchNormEmbedsSupportAndQueriesAsTwoBatches() throws {
        let e = try evaluationEpisodes(ways: 4, shots: 2, queries: 3).episode(5)
        for name in ["protonet", "matchingnet"] {
            for mode in ["running", "transductive"] {
                let learner = try makeLearner(name, small.merging(["batch_norm": .string(mode)]) { $1 })
                XCTAssertEqual(learner.isTransductive, mode == "transductive", name)
                let model = (learner as? ProtoNet)?.model ?? (learner as! MatchingNet).model
                let p = model.parameters
                let (s, q): (Tensor, Tensor) = withoutGradients {
                    if mode == "transductive" {
                        return (model.forward(e.support.tensor, parameters: p, normalization: .batch).output,
                                model.forward(e.query.tensor, parameters: p, normalization: .batch).output)
                    }
                    let joint = model.forward(Tensor.concat([e.support.tensor, e.query.tensor], axis: 0), parameters: p,
                                              normalization: .batch).output
                    return (joint.slice(axis: 0, 0..<e.support.count), joint.slice(axis: 0, e.support.count..<joint.shape[0]))
                }
                let expected: Tensor
                let loss: Float
                if let proto = learner as? ProtoNet {
                    expected = ProtoNet.logits(queries: q, prototypes: ProtoNet.prototypes(s, labels: e.support.labels, ways: e.ways))
                    loss = proto.episodeGradient(p, episode: e).loss
                } else {
                    let matching = learner as! MatchingNet
                    expected = withoutGradients { matching.logits(p, support: s, labels: e.support.labels, queries: q, ways: e.ways) }
                    loss = withoutGradients { matching.episodeLoss(p, episode: e).loss.item }
                }
                let byHand = withoutGradients { Tensor.crossEntropy(logits: expected, labels: e.query.labels).item }
                XCTAssertEqual(loss, byHand, accuracy: 1e-5 * max(1, abs(byHand)), "\(name) \(mode): training loss")
                if mode == "transductive" {
                    let logits = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor)
                    assertClose(logits, expected, tolerance: 1e-3)
                    let firstTwo = try learner.adapt(support: e.support, ways: e.ways).logits(queries: e.query.tensor.slice(axis: 0, 0..<2))
                    XCTAssertNotEqual(firstTwo.scalars, Array(logits.scalars.prefix(2 * e.ways)), "\(name): queries share statistics")
                }
            }
        }
    }

    func testBadHyperparametersNameTheKey() {
        assertHyperParameterError("protonet", ["batch_norm": .string("support")], names: "batch_norm")
        assertHyperParameterError("matchingnet", ["attention_scale": .double(0)], names: "attention_scale")
        assertHyperParameterError("protonet", ["lr": .double(-0.1)], names: "lr")
        assertHyperParameterError("protonet", ["lr_decay_every": .int(-1)], names: "lr_decay_every")
        assertHyperParameterError("protonet", ["lr_decay": .double(0)], names: "lr_decay")
        assertHyperParameterError("protonet", ["width": .int(0)], names: "width")
        assertHyperParameterError("protonet", ["downsampling": .string("avgpool")], names: "downsampling")
        assertHyperParameterError("protonet", ["learning_rate": .double(0.1)], names: "learning_rate")
    }

    func testLearningRateHalvesEveryDecayPeriod() throws {
        let learner = try XCTUnwrap(try makeLearner("protonet", ["lr_decay_every": .int(2)].merging(small) { a, _ in a }) as? ProtoNet)
        XCTAssertEqual(learner.optimizer.schedule.rate(at: 0), 0.001)
        XCTAssertEqual(learner.optimizer.schedule.rate(at: 2), 0.0005)
        XCTAssertEqual(learner.optimizer.schedule.rate(at: 5), 0.00025)
    }

    func testMetaBatchAveragesEpisodesReproducibly() throws {
        let setting = embeddedSetting(metaBatch: 3)
        let source = try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 2)
        for name in ["protonet", "matchingnet"] {
            let a = try makeLearner(name, small, setting: setting), b = try makeLearner(name, small, setting: setting)
            let sa = try a.trainStep(iteration: 0, source: source), sb = try b.trainStep(iteration: 0, source: source)
            XCTAssertEqual(sa, sb, name)
            // The reported loss is the mean of the three episodes' losses at the same parameters.
            let fresh = try makeLearner(name, small, setting: embeddedSetting(metaBatch: 1))
            var losses: [Float] = []
            for e in try source.episodes(iteration: 0, count: 3) {
                struct One: TrainingSource {
                    let e: Episode
                    func episodes(iteration: Int, count: Int) throws -> [Episode] { [e] }
                    func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages { e.support }
                    var classCount: Int { 5 }
                }
                let copy = try makeLearner(name, small, setting: embeddedSetting(metaBatch: 1))
                try copy.restore(checkpointState: fresh.checkpointState())
                losses.append(try copy.trainStep(iteration: 0, source: One(e: e)).loss)
            }
            XCTAssertEqual(sa.loss, losses.reduce(0, +) / 3, accuracy: 1e-4, name)
            XCTAssertEqual(a.checkpointState()["model/block1.conv.weight"]?.scalars,
                           b.checkpointState()["model/block1.conv.weight"]?.scalars, name)
        }
    }

    func testCheckpointRoundTrip() throws {
        let learner = try makeLearner("protonet", small)
        let source = try EmbeddedTrainingSource(ways: 5, shots: 1, queries: 2)
        for i in 0..<2 { _ = try learner.trainStep(iteration: i, source: source) }
        let state = learner.checkpointState()
        XCTAssertNotNil(state["bn/block4/variance"])
        XCTAssertNotNil(state["optimizer/step"])
        try assertCheckpointRoundTrip("protonet", small, trained: learner)
    }

    func testLearnsOnTheEmbeddedDataset() throws {
        let setting = embeddedSetting(trainWays: 10)
        let learner = try makeLearner("protonet", ["width": .int(16)], setting: setting)
        try assertLearns("protonet", learner, source: try EmbeddedTrainingSource(ways: 10, shots: 1, queries: 5),
                         iterations: 40)
    }
}
