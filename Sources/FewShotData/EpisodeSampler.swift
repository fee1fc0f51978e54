import HDF5

/// How episode pixels are scaled: [0, 1], or standardised per channel.
///
/// With `.meanStd`, channel `c` of a byte `b` becomes `(b / 255 - mean[c]) / std[c]`, and of a float `v`
/// (a class resized to floats in [0, 1]) `(v - mean[c]) / std[c]`.
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
///
/// An episode draws `ways` distinct classes of the split, gives them the labels `0..<ways` in random
/// order (`classIndices[label]` is the split class), then draws `shots + queriesPerClass` distinct images
/// of each class: the first `shots` go to the support set, the rest to the query set.
///
/// Both sets are ordered class-major: all images of label 0, then all of label 1, and so on, so support
/// image `i` has label `i / shots` and query image `i` has label `i / queriesPerClass`.
///
/// Nothing is shared between episodes (each draws from its own generator, named by the seed, the split's
/// name, the ways, shots, queries and the index), so every learner sees the same evaluation episodes and
/// episodes can be made concurrently, in any order.
public struct EpisodeSampler: Sendable {
    public let split: Split
    public let imageShape: ImageShape
    public let settings: EpisodeSettings
    public let seed: UInt64
    private let scaling: PixelConversion.Scaling

    /// Throws when the settings are invalid, the split has fewer classes than ways, or a class has fewer
    /// images than shots + queries.
    public init(split: Split, imageShape: ImageShape, settings: EpisodeSettings, seed: UInt64) throws {
        guard settings.ways >= 2 else {
            throw DataError.invalidEpisodeSettings("ways must be at least 2 (got \(settings.ways))")
        }
        guard settings.shots >= 1 else {
            throw DataError.invalidEpisodeSettings("shots must be at least 1 (got \(settings.shots))")
        }
        guard settings.queriesPerClass >= 1 else {
            throw DataError.invalidEpisodeSettings(
                "queries per class must be at least 1 (got \(settings.queriesPerClass))")
        }
        try PixelConversion.validate(split: split, imageShape: imageShape)
        guard split.classes.count >= settings.ways else {
            throw DataError.notEnoughClasses(split: split.name, ways: settings.ways, available: split.classes.count)
        }
        let needed = ReadLimits.sum([settings.shots, settings.queriesPerClass]) ?? .max
        if let small = split.classes.first(where: { $0.count < needed }) {
            throw DataError.notEnoughImages(split: split.name, className: small.name, needed: needed,
                                            available: small.count)
        }
        self.scaling = try PixelConversion.Scaling(settings.normalization, channels: imageShape.channels)
        self.split = split
        self.imageShape = imageShape
        self.settings = settings
        self.seed = seed
    }

    /// Episode `index`: the same value for the same seed, split name, settings and index.
    public func episode(_ index: Int) -> Episode {
        let ways = settings.ways, shots = settings.shots, queries = settings.queriesPerClass
        var generator = SeededGenerator(seed: seed, "episode", .string(split.name),
                                        .int(ways), .int(shots), .int(queries), .int(index))
        let classIndices = generator.sample(ways, from: split.classes.count)
        var supportImages: [(ImageClass, Int)] = []
        var queryImages: [(ImageClass, Int)] = []
        supportImages.reserveCapacity(ways * shots)
        queryImages.reserveCapacity(ways * queries)
        for classIndex in classIndices {
            let imageClass = split.classes[classIndex]
            let chosen = generator.sample(shots + queries, from: imageClass.count)
            for image in chosen[..<shots] { supportImages.append((imageClass, image)) }
            for image in chosen[shots...] { queryImages.append((imageClass, image)) }
        }
        let support = LabelledImages(
            shape: imageShape,
            pixels: PixelConversion.convert(supportImages, shape: imageShape, scaling: scaling),
            labels: (0..<ways).flatMap { Array(repeating: $0, count: shots) })
        let query = LabelledImages(
            shape: imageShape,
            pixels: PixelConversion.convert(queryImages, shape: imageShape, scaling: scaling),
            labels: (0..<ways).flatMap { Array(repeating: $0, count: queries) })
        return Episode(ways: ways, shots: shots, queriesPerClass: queries, support: support, query: query,
                       classIndices: classIndices)
    }

    /// Episodes `iteration * size ..< (iteration + 1) * size`.
    public func metaBatch(_ iteration: Int, size: Int) -> [Episode] {
        (iteration * size ..< (iteration + 1) * size).map(episode)
    }
}

/// Samples plain labelled batches over all classes of a split (labels are the split's class indices).
///
/// Each image of a batch is drawn uniformly, with replacement, over all images of the split, so a class
/// is drawn in proportion to its number of images.
public struct ClassificationSampler: Sendable {
    public let split: Split
    public let imageShape: ImageShape
    public let normalization: Normalization
    public let seed: UInt64
    private let scaling: PixelConversion.Scaling
    /// `cumulativeCounts[c]` is the number of images in classes `0..<c`; the last entry is the total.
    private let cumulativeCounts: [Int]

    /// Throws when the split has no images, its pixels do not match `imageShape`, or the normalisation
    /// does not fit the channels.
    public init(split: Split, imageShape: ImageShape, normalization: Normalization = .none, seed: UInt64) throws {
        try PixelConversion.validate(split: split, imageShape: imageShape)
        var cumulative = [0]
        for imageClass in split.classes { cumulative.append(cumulative[cumulative.count - 1] + imageClass.count) }
        guard cumulative[cumulative.count - 1] > 0 else {
            throw DataError.invalidEpisodeSettings("split '\(split.name)' has no images to sample batches from")
        }
        self.scaling = try PixelConversion.Scaling(normalization, channels: imageShape.channels)
        self.cumulativeCounts = cumulative
        self.split = split
        self.imageShape = imageShape
        self.normalization = normalization
        self.seed = seed
    }

    /// Batch `iteration` of `size` images: a pure function of (seed, split, iteration, size).
    ///
    /// A `size` below 1 gives an empty batch.
    public func batch(_ iteration: Int, size: Int) -> LabelledImages {
        let size = max(size, 0)
        var generator = SeededGenerator(seed: seed, "classification", .string(split.name),
                                        .int(iteration), .int(size))
        let total = cumulativeCounts[cumulativeCounts.count - 1]
        var images: [(ImageClass, Int)] = []
        var labels: [Int] = []
        images.reserveCapacity(size)
        labels.reserveCapacity(size)
        for _ in 0..<size {
            let flat = generator.nextInt(below: total)
            let classIndex = Self.classContaining(flat, cumulative: cumulativeCounts)
            images.append((split.classes[classIndex], flat - cumulativeCounts[classIndex]))
            labels.append(classIndex)
        }
        return LabelledImages(shape: imageShape,
                              pixels: PixelConversion.convert(images, shape: imageShape, scaling: scaling),
                              labels: labels)
    }

    /// The class `c` with `cumulative[c] <= flat < cumulative[c + 1]` (binary search).
    private static func classContaining(_ flat: Int, cumulative: [Int]) -> Int {
        var low = 0, high = cumulative.count - 1   // cumulative[low] <= flat < cumulative[high]
        while high - low > 1 {
            let mid = (low + high) / 2
            if cumulative[mid] <= flat { low = mid } else { high = mid }
        }
        return low
    }
}

/// Pixel-to-float conversion shared by the samplers: bytes through a lookup table per channel, floats in
/// [0, 1] through the same arithmetic, written straight into one preallocated array.
enum PixelConversion {
    /// Checks that the shape is valid and every class holds `count × shape.count` values.
    static func validate(split: Split, imageShape: ImageShape) throws {
        guard imageShape.channels >= 1, imageShape.height >= 1, imageShape.width >= 1 else {
            throw DataError.invalidEpisodeSettings("image shape \(imageShape) has an empty dimension")
        }
        guard let perImage = ReadLimits.product([imageShape.channels, imageShape.height, imageShape.width]) else {
            throw DataError.invalidEpisodeSettings("image shape \(imageShape) has more values than can be addressed")
        }
        for imageClass in split.classes where ReadLimits.product([imageClass.count, perImage]) != imageClass.storage.count {
            let kind: String
            switch imageClass.storage {
            case .bytes: kind = "bytes"
            case .floats: kind = "float values"
            }
            throw DataError.invalidEpisodeSettings(
                "class '\(imageClass.name)' of split '\(split.name)' holds \(imageClass.storage.count) \(kind), "
                + "but \(imageClass.count) images of \(imageShape) need "
                + (ReadLimits.product([imageClass.count, perImage]).map(String.init) ?? "more than can be addressed"))
        }
    }

    /// What a normalisation does to a pixel of channel `c`: `(v - mean[c]) / std[c]` for a value `v` in
    /// [0, 1], where byte `b` is `v = Float(b) / 255` (through `table`). Without normalisation the mean is 0
    /// and the deviation 1, which leave `v` exactly as it is, so a float `Float(b) / 255` and byte `b`
    /// become the same value either way.
    struct Scaling: Sendable {
        let mean: [Float]
        let std: [Float]
        /// `channels × 256` floats: entry `c * 256 + b` is what byte `b` of channel `c` becomes.
        let table: [Float]

        init(_ normalization: Normalization, channels: Int) throws {
            switch normalization {
            case .none:
                mean = [Float](repeating: 0, count: channels)
                std = [Float](repeating: 1, count: channels)
            case .meanStd(let mean, let std):
                guard mean.count == channels, std.count == channels else {
                    throw DataError.invalidEpisodeSettings(
                        "normalisation has \(mean.count) means and \(std.count) standard deviations, "
                        + "but the images have \(channels) channel\(channels == 1 ? "" : "s")")
                }
                for c in 0..<channels {
                    guard mean[c].isFinite else {
                        throw DataError.invalidEpisodeSettings(
                            "normalisation mean \(mean[c]) of channel \(c) is not finite")
                    }
                    guard std[c].isFinite, std[c] > 0 else {
                        throw DataError.invalidEpisodeSettings(
                            "normalisation standard deviation \(std[c]) of channel \(c) must be positive")
                    }
                }
                self.mean = mean
                self.std = std
            }
            var table = [Float](repeating: 0, count: channels * 256)
            for c in 0..<channels {
                for b in 0..<256 { table[c * 256 + b] = Self.scale(Float(b) / 255, mean: mean[c], std: std[c]) }
            }
            self.table = table
        }

        /// The one formula for both storages.
        @inline(__always)
        static func scale(_ value: Float, mean: Float, std: Float) -> Float { (value - mean) / std }
    }

    /// The images `(class, image index)` as float NCHW values, one after another.
    static func convert(_ images: [(ImageClass, Int)], shape: ImageShape, scaling: Scaling) -> [Float] {
        let imageSize = shape.count
        let plane = shape.height * shape.width
        let channels = shape.channels
        return [Float](unsafeUninitializedCapacity: images.count * imageSize) { output, initialized in
            scaling.table.withUnsafeBufferPointer { table in
                for (n, (imageClass, image)) in images.enumerated() {
                    precondition(image >= 0 && image < imageClass.count, "image index out of range")
                    let destination = output.baseAddress! + n * imageSize
                    switch imageClass.storage {
                    case .bytes(let pixels):
                        pixels.withUnsafeBufferPointer { bytes in
                            let source = bytes.baseAddress! + image * imageSize
                            for c in 0..<channels {
                                let lookup = table.baseAddress! + c * 256
                                let offset = c * plane
                                for p in 0..<plane {
                                    (destination + offset + p).initialize(to: lookup[Int(source[offset + p])])
                                }
                            }
                        }
                    case .floats(let pixels):
                        pixels.withUnsafeBufferPointer { values in
                            let source = values.baseAddress! + image * imageSize
                            for c in 0..<channels {
                                let mean = scaling.mean[c], std = scaling.std[c]
                                let offset = c * plane
                                for p in 0..<plane {
                                    (destination + offset + p).initialize(to: Scaling.scale(source[offset + p], mean: mean, std: std))
                                }
                            }
                        }
                    }
                }
            }
            initialized = images.count * imageSize
        }
    }
}
