/// A batch of images as float32 NCHW values with a class label per image.
public struct LabelledImages: Sendable, Equatable {
    public var shape: ImageShape
    /// `labels.count × shape.count` values, NCHW, in [0, 1] unless normalised.
    public var pixels: [Float]
    public var labels: [Int]

    public init(shape: ImageShape, pixels: [Float], labels: [Int]) {
        self.shape = shape
        self.pixels = pixels
        self.labels = labels
    }

    public var count: Int { labels.count }
}

/// One N-way K-shot episode: a labelled support set and a labelled query set, labels in 0..<ways.
public struct Episode: Sendable, Equatable {
    public var ways: Int
    public var shots: Int
    public var queriesPerClass: Int
    public var support: LabelledImages
    public var query: LabelledImages
    /// The dataset class behind each episode label (label i is `classIndices[i]` of the split).
    public var classIndices: [Int]

    public init(ways: Int, shots: Int, queriesPerClass: Int, support: LabelledImages, query: LabelledImages,
                classIndices: [Int]) {
        self.ways = ways
        self.shots = shots
        self.queriesPerClass = queriesPerClass
        self.support = support
        self.query = query
        self.classIndices = classIndices
    }
}
