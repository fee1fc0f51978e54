import Foundation
import HDF5

/// Options applied while loading a dataset.
public struct LoadOptions: Sendable, Equatable, Codable {
    /// Resize images to `imageSize`×`imageSize` (with `resize`), or nil to keep the stored size.
    public var imageSize: Int?
    /// How `imageSize` resizes: exact area averaging kept in floating point (the default), antialiased
    /// bilinear as PyTorch, or area averaging rounded to bytes. Images not resized stay bytes.
    public var resize: ResizeMode
    /// Add rotations by 90, 180 and 270 degrees (counter-clockwise) as extra classes named
    /// `<class>/rot90`, `/rot180`, `/rot270`, after the originals (Omniglot's usual ×4).
    public var rotations: Bool
    /// Omniglot labels-file prefix: "" (torchmeta's default) or "vinyals_".
    public var labelsPrefix: String
    /// For the CIFAR-100 layout: "cifar-fs" or "fc100".
    public var variant: String?

    public init(imageSize: Int? = nil, resize: ResizeMode = .area, rotations: Bool = false, labelsPrefix: String = "",
                variant: String? = nil) {
        self.imageSize = imageSize
        self.resize = resize
        self.rotations = rotations
        self.labelsPrefix = labelsPrefix
        self.variant = variant
    }

    private enum CodingKeys: String, CodingKey {
        case imageSize, resize, rotations, labelsPrefix, variant
    }

    /// Options recorded before `resize` existed have none: with an image size, they resized as `area-uint8`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize)
        resize = try c.decodeIfPresent(ResizeMode.self, forKey: .resize) ?? (imageSize == nil ? .area : .areaUInt8)
        rotations = try c.decode(Bool.self, forKey: .rotations)
        labelsPrefix = try c.decode(String.self, forKey: .labelsPrefix)
        variant = try c.decodeIfPresent(String.self, forKey: .variant)
    }

    /// `resize` is written only with an image size and when it is not `area-uint8`: options that resize as
    /// MetaBench did before the option existed, or do not resize, encode as they did then, so the
    /// fingerprints of cells stored then still match (and any other resize changes them).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(imageSize, forKey: .imageSize)
        if imageSize != nil && resize != .areaUInt8 { try c.encode(resize, forKey: .resize) }
        try c.encode(rotations, forKey: .rotations)
        try c.encode(labelsPrefix, forKey: .labelsPrefix)
        try c.encodeIfPresent(variant, forKey: .variant)
    }
}

/// Detects a dataset's layout from a folder or file and reads it into memory.
///
/// Layouts: torchmeta's Omniglot (`data.hdf5` + `{prefix}{split}_labels.json`), miniImageNet and
/// tieredImageNet (`{split}_data.hdf5` + `{split}_labels.json`; tiered holds PNGs), CIFAR-FS and FC100
/// (`cifar100/` with `data.hdf5`, `fine_names.json`, `cifar-fs/` and `fc100/`), and MetaBench's own
/// single-file layout (see `MetaBenchLayout`).
///
/// Every reader first reads the class lists of all its splits and checks them (`SplitClasses`: no class
/// twice in a split, no class in two splits), then reads pixels, counting the bytes against
/// `ReadLimits.memoryBudget` and checking each image's size (`LayoutIO.Progress`, `checkImageSize`); the
/// options are checked against the same budget before resizing or rotating (`LayoutIO.apply`).
public enum DatasetLoader {
    public static func load(_ path: String, options: LoadOptions = LoadOptions()) throws -> FewShotDataset {
        try LayoutIO.mapHDF5Errors {
            let layout = try detect(path, options: options)
            switch layout {
            case .omniglot: return try TorchmetaOmniglot.read(path, options: options)
            case .miniImageNet: return try TorchmetaMiniImageNet.read(path, options: options)
            case .tieredImageNet: return try TorchmetaTiered.read(path, options: options)
            case .cifar(let root, let variant): return try TorchmetaCIFAR.read(root: root, variant: variant, options: options)
            case .metaBench: return try LayoutIO.apply(options, to: MetaBenchLayout.read(path))
            }
        }
    }

    enum Layout: Equatable {
        case omniglot, miniImageNet, tieredImageNet, metaBench
        case cifar(root: String, variant: String)
    }

    /// The layout of `path`, or `unknownLayout` naming what was looked for.
    static func detect(_ path: String, options: LoadOptions) throws -> Layout {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.missingPath(path)
        }
        if !isDirectory.boolValue {
            guard let file = try? File(path) else {
                throw DataError.unknownLayout(path: path, reason: "not an HDF5 file (a file must be a MetaBench .h5 dataset; for torchmeta layouts pass the folder)")
            }
            let root = try file.root()
            let layout = try root.hasAttribute("metabench_layout") ? root.stringAttribute("metabench_layout") : nil
            switch layout {
            case MetaBenchLayout.layoutName?: return .metaBench
            case EpisodeFile.layoutName?:
                throw DataError.unknownLayout(path: path, reason: "this is a file of fixed episodes (\(EpisodeFile.layoutName)), not a dataset")
            case let other?:
                throw DataError.unknownLayout(path: path, reason: "metabench_layout '\(other)' is not '\(MetaBenchLayout.layoutName)'")
            case nil:
                throw DataError.unknownLayout(path: path, reason: "an HDF5 file without the metabench_layout attribute (for torchmeta layouts pass the folder)")
            }
        }
        if let (root, variant) = try TorchmetaCIFAR.resolve(path, options: options) {
            return .cifar(root: root, variant: variant)
        }
        if TorchmetaOmniglot.matches(path) { return .omniglot }
        let dataFiles = LayoutIO.presentSplits(in: path) { "\($0)_data.hdf5" }
        if let first = dataFiles.first {
            return try TorchmetaTiered.holdsEncodedImages(LayoutIO.join(path, "\(first)_data.hdf5")) ? .tieredImageNet : .miniImageNet
        }
        if LayoutIO.fileExists(LayoutIO.join(path, "data.hdf5")) {
            let prefix = options.labelsPrefix
            throw DataError.unknownLayout(path: path, reason: "data.hdf5 is there, but no "
                + LayoutIO.splitNames.map { "\(prefix)\($0)_labels.json" }.joined(separator: ", ") + " (torchmeta Omniglot) and no fine_names.json (torchmeta CIFAR-100)")
        }
        throw DataError.unknownLayout(path: path, reason: "looked for data.hdf5 with {split}_labels.json (torchmeta Omniglot), "
            + "data.hdf5 with fine_names.json or a cifar-fs/fc100 folder (torchmeta CIFAR-FS/FC100), "
            + "{split}_data.hdf5 with {split}_labels.json (torchmeta miniImageNet/tieredImageNet), "
            + "or a MetaBench .h5 file; found none")
    }
}
