import FewShotData

/// Memory a learner holds at once (one allocation, or a tape that lives through a step), as a product of
/// named factors counted in float32 values. The check before training multiplies the factors without
/// overflow and compares the product with the memory budget, so that a suite whose sizes the machine cannot
/// hold fails at once with an error naming the keys, instead of aborting in the middle of a run.
public struct MemoryFootprint: Sendable, Equatable {
    /// One factor: the suite keys or hyperparameters it comes from, and its value.
    public struct Factor: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var value: Int

        public init(_ name: String, _ value: Int) {
            self.name = name
            self.value = value
        }

        /// `width (64)`, or the bare number for a constant (`9`).
        public var description: String { name.isEmpty ? String(value) : "\(name) (\(value))" }
    }

    /// What the memory is for, e.g. "first-block activations of a training episode".
    public var what: String
    public var factors: [Factor]

    public init(_ what: String, _ factors: [Factor]) {
        self.what = what
        self.factors = factors
    }

    /// The number of float32 values, or nil when the product overflows `Int` (or a factor is negative).
    public var count: Int? {
        var product = 1
        for factor in factors {
            guard factor.value >= 0 else { return nil }
            let (p, overflow) = product.multipliedReportingOverflow(by: factor.value)
            if overflow { return nil }
            product = p
        }
        return product
    }

    /// The size in bytes (4 per value), or nil when it overflows `Int`.
    public var bytes: Int? {
        guard let count else { return nil }
        let (b, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        return overflow ? nil : b
    }

    /// The factors as a product: `ways × (shots + queries) (80) × width (64) × image height × width (784)`.
    public var formula: String { factors.map(\.description).joined(separator: " × ") }
}

/// What a learner's footprint depends on besides its hyperparameters: the image shape and the sizes of one
/// cell's episodes and batches, each named as the suite file names it.
public struct FootprintContext: Sendable, Equatable {
    public var imageShape: ImageShape
    /// Images of one meta-training episode: `train_ways × (train_shots + train_queries)`.
    public var trainEpisodeImages: MemoryFootprint.Factor
    /// Images of one evaluation episode: `ways × (shots + queries)`.
    public var evaluationEpisodeImages: MemoryFootprint.Factor
    /// Episodes per meta-training iteration: `meta_batch`.
    public var metaBatch: MemoryFootprint.Factor
    /// Classes of the training split (for learners that pre-train a classifier over all of them).
    public var trainClasses: MemoryFootprint.Factor

    public init(imageShape: ImageShape, trainEpisodeImages: MemoryFootprint.Factor,
                evaluationEpisodeImages: MemoryFootprint.Factor, metaBatch: MemoryFootprint.Factor,
                trainClasses: MemoryFootprint.Factor) {
        self.imageShape = imageShape
        self.trainEpisodeImages = trainEpisodeImages
        self.evaluationEpisodeImages = evaluationEpisodeImages
        self.metaBatch = metaBatch
        self.trainClasses = trainClasses
    }

    /// Pixels per channel of one image: height × width (`Int.max` if that overflows, so a check fails).
    public var pixels: MemoryFootprint.Factor {
        let (p, overflow) = imageShape.height.multipliedReportingOverflow(by: imageShape.width)
        return MemoryFootprint.Factor("image height × width", overflow ? Int.max : p)
    }

    /// Values of one image: channels × height × width (`Int.max` if that overflows).
    public var imageValues: MemoryFootprint.Factor {
        let (p, overflow) = pixels.value.multipliedReportingOverflow(by: imageShape.channels)
        return MemoryFootprint.Factor("image channels × height × width", overflow ? Int.max : p)
    }
}
