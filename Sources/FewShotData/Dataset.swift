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

/// How a class's pixels are held in memory: bytes as read, or floats in [0, 1] after a floating-point resize.
///
/// Byte `b` and float `Float(b) / 255` are the same pixel: the samplers turn both into the same episode
/// value (`PixelConversion`).
public enum PixelStorage: Sendable, Equatable {
    /// 0...255 per value, as the dataset stores them.
    case bytes([UInt8])
    /// Values in [0, 1] (the resized value in 0...255, divided by 255), from `ResizeMode.area` or `.bilinear`.
    case floats([Float])

    /// Number of values held.
    public var count: Int {
        switch self {
        case .bytes(let bytes): return bytes.count
        case .floats(let values): return values.count
        }
    }

    /// Memory per value: 1 for bytes, 4 for floats.
    public var bytesPerValue: Int {
        switch self {
        case .bytes: return 1
        case .floats: return MemoryLayout<Float>.size
        }
    }
}

/// One class of a few-shot dataset: its images decoded, resized and held in memory.
///
/// Pixels are `count × channels × height × width` values in CHW order per image (0 = black, 255 = white
/// for colour images; for Omniglot, 255 is the stroke, as torchmeta stores it), held as bytes, or as floats
/// in [0, 1] when resized in floating point (`storage`).
public struct ImageClass: Sendable {
    public var name: String
    public var count: Int
    public var storage: PixelStorage

    public init(name: String, count: Int, storage: PixelStorage) {
        self.name = name
        self.count = count
        self.storage = storage
    }

    /// A class held as bytes.
    public init(name: String, count: Int, pixels: [UInt8]) {
        self.init(name: name, count: count, storage: .bytes(pixels))
    }

    /// The bytes of a class held as bytes; empty for a class held as floats (read `storage` to handle both).
    /// Setting it makes the class hold bytes.
    public var pixels: [UInt8] {
        get {
            if case .bytes(let bytes) = storage { return bytes }
            return []
        }
        set { storage = .bytes(newValue) }
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
