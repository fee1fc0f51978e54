import Engine
import FewShotData
import Foundation
@testable import Learners
import Models
import XCTest

/// The embedded dataset, generated once per test process.
enum Embedded {
    static let dataset: FewShotDataset = EmbeddedDataset.generate()

    static func sampler(_ splitName: String, ways: Int = 5, shots: Int = 1, queries: Int = 5, seed: UInt64 = 7) throws -> EpisodeSampler {
        try EpisodeSampler(split: try dataset.split(named: splitName), imageShape: dataset.imageShape,
                           settings: EpisodeSettings(ways: ways, shots: shots, queriesPerClass: queries), seed: seed)
    }

    static func setting(ways: Int = 5, shots: Int = 1, queries: Int = 5, seed: UInt64 = 1, metaBatch: Int = 1,
                        iterations: Int = 1) -> LearnerSetting {
        LearnerSetting(imageShape: dataset.imageShape, ways: ways, shots: shots, queriesPerClass: queries, trainWays: ways,
                       trainClassCount: 200, seed: seed, metaBatch: metaBatch, iterations: iterations)
    }
}

/// Meta-training episodes from an episode sampler (no classification batches).
struct SamplerSource: TrainingSource {
    let sampler: EpisodeSampler
    func episodes(iteration: Int, count: Int) throws -> [Episode] { sampler.metaBatch(iteration, size: count) }
    func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages {
        throw CocoaError(.featureUnsupported)
    }
    var classCount: Int { sampler.split.classes.count }
}

/// Fixed episodes (the same list at every iteration).
struct FixedSource: TrainingSource {
    let episodes: [Episode]
    func episodes(iteration: Int, count: Int) throws -> [Episode] { Array(episodes.prefix(count)) }
    func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages {
        throw CocoaError(.featureUnsupported)
    }
    var classCount: Int { 0 }
}

/// Mean query accuracy of `learner` over test episodes `0..<count`: the runner's loop, adapt then score.
func meanAccuracy(_ learner: MetaLearner, _ sampler: EpisodeSampler, episodes count: Int) throws -> Double {
    let accuracies = try ComputeThreads.map(count) { i -> Float in
        let episode = sampler.episode(i)
        let classifier = try learner.adapt(support: episode.support, ways: episode.ways)
        return accuracy(logits: try classifier.logits(queries: episode.query.tensor), labels: episode.query.labels)
    }
    return accuracies.map(Double.init).reduce(0, +) / Double(count)
}

/// A random episode of `ways` classes with images of `shape` (values in [0, 1)), labels class-major.
func randomEpisode(ways: Int, shots: Int, queries: Int, shape: ImageShape, seed: UInt64) -> Episode {
    var rng = SeededGenerator(seed: seed)
    func images(_ perClass: Int) -> LabelledImages {
        let labels = (0..<ways).flatMap { Array(repeating: $0, count: perClass) }
        let pixels = (0..<(labels.count * shape.count)).map { _ in rng.nextUnitFloat() }
        return LabelledImages(shape: shape, pixels: pixels, labels: labels)
    }
    let support = images(shots), query = images(queries)
    return Episode(ways: ways, shots: shots, queriesPerClass: queries, support: support, query: query,
                   classIndices: Array(0..<ways))
}

/// The error `body` throws, failing the test when it returns.
func thrownError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> Error? {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return nil
    } catch {
        return error
    }
}

/// Asserts that `a` and `b` agree within `absolute + relative·|b|`, element by element.
func assertClose(_ a: [Float], _ b: [Float], relative: Float, absolute: Float, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where !(abs(x - y) <= absolute + relative * abs(y)) {
        XCTFail("\(message) [\(i)]: \(x) vs \(y)", file: file, line: line)
        return
    }
}

/// A fresh temporary folder, removed when the test ends.
func makeTemporaryFolder(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-learners-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}
