// STUB — to be replaced by the HDF5 readers work.

/// Options applied while loading a dataset.
public struct LoadOptions: Sendable, Equatable, Codable {
    /// Resize images to `imageSize`×`imageSize` with an antialiasing filter (nil: keep the stored size).
    public var imageSize: Int?
    /// Add rotations by 90, 180 and 270 degrees as extra classes (Omniglot's usual ×4).
    public var rotations: Bool
    /// Omniglot labels-file prefix: "" (torchmeta's default) or "vinyals_".
    public var labelsPrefix: String
    /// For the CIFAR-100 layout: "cifar-fs" or "fc100".
    public var variant: String?

    public init(imageSize: Int? = nil, rotations: Bool = false, labelsPrefix: String = "", variant: String? = nil) {
        self.imageSize = imageSize
        self.rotations = rotations
        self.labelsPrefix = labelsPrefix
        self.variant = variant
    }
}

/// Detects a dataset's layout from a folder or file and reads it into memory.
public enum DatasetLoader {
    public static func load(_ path: String, options: LoadOptions = LoadOptions()) throws -> FewShotDataset {
        fatalError("stub")
    }
}
