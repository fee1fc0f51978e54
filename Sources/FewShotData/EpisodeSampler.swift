// STUB — to be replaced by the episode-sampling work.

/// How episode pixels are scaled: [0, 1], or standardised per channel.
public enum Normalization: Sendable, Equatable, Codable {
    case none
    case meanStd(mean: [Float], std: [Float])
}

/// N-way K-shot Q-query settings.
public struct EpisodeSettings: Sendable, Equatable, Codable {
    public var ways: Int
    public var shots: Int
    public var queriesPerClass: Int
    public var normalization: Normalization

    public init(ways: Int, shots: Int, queriesPerClass: Int, normalization: Normalization = .none) {
        self.ways = ways
        self.shots = shots
        self.queriesPerClass = queriesPerClass
        self.normalization = normalization
    }
}

/// Samples episodes from a split; episode `index` is a pure function of (seed, split, settings, index).
public struct EpisodeSampler: Sendable {
    public let split: Split
    public let imageShape: ImageShape
    public let settings: EpisodeSettings
    public let seed: UInt64

    /// Throws when the split has fewer classes than ways, or a class fewer images than shots + queries.
    public init(split: Split, imageShape: ImageShape, settings: EpisodeSettings, seed: UInt64) throws {
        self.split = split
        self.imageShape = imageShape
        self.settings = settings
        self.seed = seed
    }

    public func episode(_ index: Int) -> Episode { fatalError("stub") }

    /// Episodes `iteration * size ..< (iteration + 1) * size`.
    public func metaBatch(_ iteration: Int, size: Int) -> [Episode] {
        (iteration * size ..< (iteration + 1) * size).map(episode)
    }
}

/// Samples plain labelled batches over all classes of a split (labels are the split's class indices).
public struct ClassificationSampler: Sendable {
    public let split: Split
    public let imageShape: ImageShape
    public let normalization: Normalization
    public let seed: UInt64

    public init(split: Split, imageShape: ImageShape, normalization: Normalization = .none, seed: UInt64) throws {
        self.split = split
        self.imageShape = imageShape
        self.normalization = normalization
        self.seed = seed
    }

    /// Batch `iteration` of `size` images: a pure function of (seed, split, iteration, size).
    public func batch(_ iteration: Int, size: Int) -> LabelledImages { fatalError("stub") }
}
