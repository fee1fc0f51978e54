import Engine
import FewShotData
import Foundation
import HDF5
@testable import Learners
import Models
import XCTest

/// MetaBench against learn2learn / PyTorch on the same episode and the same weights: the MAML meta-gradient
/// (second order, one and two inner steps), the first-order one, the Prototypical and Matching Network
/// (without full-context embeddings) gradients and Reptile's inner loop, read from
/// `Reference/torch-reference.h5` (written by `Reference/make_torch_reference.py`).
final class TorchReferenceTests: XCTestCase {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/torch-reference.h5").path

    struct Reference {
        let file: File
        func tensor(_ path: String) throws -> Tensor {
            let dataset = try file.dataset(path)
            return Tensor(shape: try dataset.shape(), scalars: try dataset.read(as: Float.self))
        }
        func labels(_ path: String) throws -> [Int] { try file.dataset(path).read(as: Int64.self).map { Int($0) } }
        func scalar(_ path: String) throws -> Float { try file.dataset(path).read(as: Float.self)[0] }
        func images(_ prefix: String) throws -> LabelledImages {
            LabelledImages(shape: ImageShape(channels: 1, height: 28, width: 28),
                           pixels: try tensor(prefix + "/x").scalars, labels: try labels(prefix + "/y"))
        }
        func parameters(_ group: String, names: [String]) throws -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: try names.map { ($0, try tensor(group + "/" + $0)) })
        }
        /// Sets `model`'s parameters to the reference weights θ and returns them.
        func loadTheta(into model: Conv4) throws -> Parameters {
            model.parameters = try model.parameters.loading(try parameters("theta", names: model.parameters.names))
            return model.parameters
        }
    }

    func reference() throws -> (Reference, Episode) {
        let r = Reference(file: try File(Self.file))
        let support = try r.images("support"), query = try r.images("query")
        let episode = Episode(ways: 5, shots: 1, queriesPerClass: 3, support: support, query: query,
                              classIndices: Array(0..<5))
        return (r, episode)
    }

    func setting() -> LearnerSetting {
        LearnerSetting(imageShape: ImageShape(channels: 1, height: 28, width: 28), ways: 5, shots: 1,
                       queriesPerClass: 3, trainWays: 5, trainClassCount: 5, seed: 0)
    }

    /// Every gradient within 1e-3 of its tensor's largest magnitude (float32 rounding of two implementations).
    /// A convolution bias followed by batch norm has a gradient of exactly zero (the normalisation subtracts
    /// it again); both implementations give rounding noise there, so both must be below 1e-5 of the block's
    /// weight gradient instead.
    func assertMatches(_ ours: Parameters, _ theirs: [String: Tensor], _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(ours.names), Set(theirs.keys), "\(what): parameter names", file: file, line: line)
        func largest(_ t: Tensor) -> Double { t.scalars.map { abs(Double($0)) }.max() ?? 0 }
        for (name, g) in ours {
            guard let t = theirs[name] else { continue }
            XCTAssertEqual(g.shape, t.shape, "\(what) \(name): shape", file: file, line: line)
            if name.hasSuffix(".conv.bias"), let weight = theirs[name.replacingOccurrences(of: ".bias", with: ".weight")] {
                let bound = 1e-5 * largest(weight)
                XCTAssertLessThanOrEqual(largest(g), bound, "\(what) \(name): ours is not zero", file: file, line: line)
                XCTAssertLessThanOrEqual(largest(t), bound, "\(what) \(name): the reference is not zero", file: file, line: line)
                continue
            }
            let scale = largest(t)
            let worst = zip(g.scalars, t.scalars).map { abs(Double($0) - Double($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-3 * scale + 1e-6,
                                     "\(what) \(name): largest difference \(worst), largest value \(scale)", file: file, line: line)
        }
    }

    func testMAMLMatchesLearn2Learn() throws {
        let (r, episode) = try reference()
        for (group, firstOrder, steps) in [("maml", false, 1), ("maml_2steps", false, 2), ("fomaml", true, 1)] {
            let given: [String: HyperValue] = ["width": .int(8), "inner_lr": .double(0.4), "inner_steps": .int(steps)]
            let maml = try MAML(HyperParameters(learner: "maml", specs: MAML.hyperparameters, given: given), setting(),
                                firstOrder: firstOrder)
            let theta = try r.loadTheta(into: maml.model)
            let (grads, loss, _) = maml.metaGradient(theta, episode: episode)
            XCTAssertEqual(loss, try r.scalar(group + "/loss"), accuracy: 1e-5, "\(group): query loss")
            assertMatches(Parameters(Array(zip(theta.names, grads))), try r.parameters(group + "/grad", names: theta.names), group)
        }
    }

    func testProtoNetMatchesPyTorch() throws {
        let (r, episode) = try reference()
        let proto = try ProtoNet(HyperParameters(learner: "protonet", specs: ProtoNet.hyperparameters, given: ["width": .int(8)]),
                                 setting())
        let theta = try r.loadTheta(into: proto.model)
        let result = proto.episodeGradient(theta, episode: episode)
        XCTAssertEqual(result.loss, try r.scalar("protonet/loss"), accuracy: 1e-4, "ProtoNet query loss")
        assertMatches(Parameters(Array(zip(theta.names, result.gradients))),
                      try r.parameters("protonet/grad", names: theta.names), "protonet")
    }

    /// Reptile's inner loop (plain SGD, three steps on the whole support set): φ − θ against PyTorch's.
    func testReptileInnerLoopMatchesPyTorch() throws {
        let (r, episode) = try reference()
        let reptile = try Reptile(HyperParameters(learner: "reptile", specs: Reptile.hyperparameters,
                                                  given: ["width": .int(8), "inner_optimizer": .string("sgd")]), setting())
        let theta = try r.loadTheta(into: reptile.model)
        let all = Array(0..<episode.support.count)
        let phi = reptile.adapt(theta, support: episode.support, batches: [all, all, all], learningRate: 0.1)
        let delta = Parameters(zip(theta.names, zip(phi.tensors, theta.tensors)).map { name, pair in
            (name, Tensor(shape: pair.1.shape, scalars: zip(pair.0.scalars, pair.1.scalars).map { $0 - $1 }))
        })
        assertMatches(delta, try r.parameters("reptile_sgd/delta", names: theta.names), "reptile φ − θ")
    }

    /// The reference was computed with the paper's raw cosines (attention scale 1); the trajectory tests
    /// check the default scale.
    func testMatchingNetMatchesPyTorch() throws {
        let (r, episode) = try reference()
        let matching = try MatchingNet(HyperParameters(learner: "matchingnet", specs: MatchingNet.hyperparameters,
                                                       given: ["width": .int(8), "attention_scale": .double(1)]), setting())
        let theta = try r.loadTheta(into: matching.model)
        let loss = matching.episodeLoss(theta, episode: episode).loss
        XCTAssertEqual(loss.item, try r.scalar("matchingnet/loss"), accuracy: 1e-5, "Matching Networks query loss")
        assertMatches(Parameters(Array(zip(theta.names, gradients(of: loss, wrt: theta.tensors)))),
                      try r.parameters("matchingnet/grad", names: theta.names), "matchingnet")
    }
}
