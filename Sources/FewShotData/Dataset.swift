/// The shape of one image, channels first.
public struct ImageShape: Hashable, Sendable, Codable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// Number of values in one image: channels × height × width.
    public var count: Int { channels * height * width }

    public var description: String { "\(channels)×\(height)×\(width)" }
}

/// One class of a few-shot dataset: its images decoded, resized and held in memory as bytes.
///
/// Pixels are `count × channels × height × width` bytes in CHW order per image (0 = black, 255 = white
/// for colour images; for Omniglot, 255 is the stroke, as torchmeta stores it).
public struct ImageClass: Sendable {
    public var name: String
    public var count: Int
    public var pixels: [UInt8]

    public init(name: String, count: Int, pixels: [UInt8]) {
        self.name = name
        self.count = count
        self.pixels = pixels
    }
}

/// A named split (train, val or test) of classes.
public struct Split: Sendable {
    public var name: String
    public var classes: [ImageClass]

    public init(name: String, classes: [ImageClass]) {
        self.name = name
        self.classes = classes
    }

    /// Smallest and largest number of images in a class of this split.
    public var imagesPerClass: ClosedRange<Int> {
        let counts = classes.map(\.count)
        return (counts.min() ?? 0)...(counts.max() ?? 0)
    }
}

/// A few-shot dataset in memory: named splits of classes, every image of one shape.
public struct FewShotDataset: Sendable {
    /// A short name for reports, e.g. `omniglot` or `embedded-glyphs`.
    public var name: String
    /// The detected on-disk layout, e.g. `torchmeta-omniglot`.
    public var layout: String
    public var imageShape: ImageShape
    public var splits: [Split]

    public init(name: String, layout: String, imageShape: ImageShape, splits: [Split]) {
        self.name = name
        self.layout = layout
        self.imageShape = imageShape
        self.splits = splits
    }

    /// The split called `name`, or an error listing the splits there are.
    public func split(named name: String) throws -> Split {
        if let split = splits.first(where: { $0.name == name }) { return split }
        throw DataError.unknownSplit(name, available: splits.map(\.name))
    }
}
