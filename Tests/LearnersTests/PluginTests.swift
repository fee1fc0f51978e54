import Engine
import FewShotData
import Learners
import XCTest

/// An example plugin: nearest neighbour on raw pixels. A query takes the class of the nearest support
/// image (Euclidean distance); the logit of a class is minus the distance to its nearest support image.
/// It has nothing to meta-train. Written as a plugin would be: one type and one descriptor, public API only.
final class PixelNearestNeighbour: MetaLearner {
    /// Distances are divided by this before negation (a temperature; the predictions do not depend on it).
    let scale: Float

    init(scale: Float) { self.scale = scale }

    static let descriptor = LearnerDescriptor(
        name: "pixel-nn",
        summary: "Nearest neighbour on raw pixels (no meta-training)",
        paper: "Cover & Hart, Nearest Neighbor Pattern Classification, IEEE Trans. Inf. Theory, 1967",
        hyperparameters: [HyperParameterSpec("scale", .double(1), "distances are divided by this")]
    ) { p, _ in
        PixelNearestNeighbour(scale: Float(try p.positiveDouble("scale")))
    }

    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats { StepStats(loss: 0) }

    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        Classifier(support: support, ways: ways, scale: scale)
    }

    func checkpointState() -> [String: Tensor] { [:] }
    func restore(checkpointState: [String: Tensor]) throws {}

    struct Classifier: EpisodeClassifier {
        let support: LabelledImages
        let ways: Int
        let scale: Float

        func logits(queries: Tensor) throws -> Tensor {
            let n = queries.shape[0], size = support.shape.count
            var out = [Float](repeating: 0, count: n * ways)
            for q in 0..<n {
                let query = queries.scalars[(q * size)..<((q + 1) * size)]
                var nearest = [Float](repeating: .infinity, count: ways)
                for (s, label) in support.labels.enumerated() {
                    let image = support.pixels[(s * size)..<((s + 1) * size)]
                    let distance = zip(query, image).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                    nearest[label] = min(nearest[label], distance)
                }
                for c in 0..<ways { out[q * ways + c] = -nearest[c] / scale }
            }
            return Tensor(shape: [n, ways], scalars: out)
        }
    }
}

final class PluginTests: XCTestCase {
    func testPluginRegistersAndRunsThroughTheEpisodeLoop() throws {
        var registry = LearnerRegistry.builtIn
        let builtIn = registry.names
        registry.register(PixelNearestNeighbour.descriptor)
        XCTAssertEqual(registry.names, builtIn + ["pixel-nn"])
        XCTAssertTrue(builtIn.contains("reptile"))

        let setting = LearnerSetting(imageShape: Embedded.dataset.imageShape, ways: 5, shots: 1, queriesPerClass: 5,
                                     trainWays: 5, trainClassCount: 200, seed: 1)
        let learner = try registry.descriptor(named: "pixel-nn").instantiate(["scale": .double(2)], setting: setting)
        XCTAssertFalse(learner.isTransductive)
        let test = try Embedded.sampler("test", queries: 5)
        // The runner's loop: adapt to the support set, then score the queries.
        var total: Float = 0
        for i in 0..<100 {
            let episode = test.episode(i)
            let classifier = try learner.adapt(support: episode.support, ways: episode.ways)
            let logits = try classifier.logits(queries: episode.query.tensor)
            XCTAssertEqual(logits.shape, [25, 5])
            total += accuracy(logits: logits, labels: episode.query.labels)
        }
        let mean = total / 100
        XCTAssertGreaterThan(mean, 0.35, "mean accuracy \(mean) (chance 0.2)")

        let error = thrownError(try registry.descriptor(named: "pixel-nn").instantiate(["scale": .double(-1)], setting: setting))
        XCTAssertTrue("\(error!)".contains("'scale'"))
    }

    func testNearestNeighbourLogitsByHand() throws {
        let shape = ImageShape(channels: 1, height: 1, width: 2)
        let support = LabelledImages(shape: shape, pixels: [0, 0, 1, 1, 3, 4], labels: [0, 1, 1])
        let classifier = try PixelNearestNeighbour(scale: 1).adapt(support: support, ways: 2)
        let logits = try classifier.logits(queries: Tensor(shape: [1, 1, 1, 2], scalars: [3, 0]))
        XCTAssertEqual(logits.scalars, [-3, -(5 as Float).squareRoot()])
    }

    func testUnknownLearnerListsKnownNames() {
        var registry = LearnerRegistry.builtIn
        registry.register(PixelNearestNeighbour.descriptor)
        let error = thrownError(try registry.descriptor(named: "protonet-v9")) as? UnknownLearnerError
        XCTAssertEqual(error?.name, "protonet-v9")
        XCTAssertEqual(error?.known, registry.names)
        let text = error.map { "\($0)" } ?? ""
        for name in ["maml", "fomaml", "reptile", "pixel-nn"] { XCTAssertTrue(text.contains(name), text) }
    }

    func testRegisteringAgainReplaces() {
        var registry = LearnerRegistry()
        registry.register(PixelNearestNeighbour.descriptor)
        var changed = PixelNearestNeighbour.descriptor
        changed.summary = "changed"
        registry.register(changed)
        XCTAssertEqual(registry.names, ["pixel-nn"])
        XCTAssertEqual(try registry.descriptor(named: "pixel-nn").summary, "changed")
    }
}
