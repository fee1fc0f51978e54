// Episodes of random pixels for the throughput benchmarks and Probe (one source, so both time the same data).
import FewShotData
import Learners

/// Episodes of random pixels (throughput only), made once and served for every iteration.
public struct RandomEpisodes: TrainingSource {
    public let episode: Episode

    /// `ways` classes of `shots` support and `queries` query images of `shape` (28×28 grey by default), seed 3.
    public init(ways: Int, shots: Int, queries: Int, shape: ImageShape = ImageShape(channels: 1, height: 28, width: 28)) {
        var rng = SeededGenerator(seed: 3)
        func images(_ perClass: Int) -> LabelledImages {
            let labels = (0..<(ways * perClass)).map { $0 / perClass }
            return LabelledImages(shape: shape, pixels: (0..<(labels.count * shape.count)).map { _ in rng.nextUnitFloat() },
                                  labels: labels)
        }
        episode = Episode(ways: ways, shots: shots, queriesPerClass: queries, support: images(shots),
                          query: images(queries), classIndices: Array(0..<ways))
    }

    public func episodes(iteration: Int, count: Int) throws -> [Episode] { Array(repeating: episode, count: count) }
    public func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages { episode.query }
    public var classCount: Int { episode.ways }
}
