import Foundation
import HDF5

/// Reading helpers shared by the dataset layouts.
enum LayoutIO {
    /// The split names torchmeta uses, in report order.
    static let splitNames = ["train", "val", "test"]
    /// The largest labels file read: a list of a million class names takes a few tens of MiB.
    static let maxLabelsFileBytes = 64 << 20
    /// The most values one image may have (channels × height × width), e.g. 9000×9000×3.
    static let maxImageValues = 1 << 28
    /// The largest `image_size` (resize target).
    static let maxImageSize = 4096

    /// Runs `body`, turning an `HDF5Error` into `DataError.hdf5` with its message.
    static func mapHDF5Errors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as HDF5Error {
            throw DataError.hdf5(error.description)
        }
    }

    static func join(_ folder: String, _ name: String) -> String {
        URL(fileURLWithPath: folder).appendingPathComponent(name).path
    }

    static func fileExists(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    static func folderExists(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Opens an HDF5 file read-only; a missing file is `missingPath`, a bad one `hdf5` with the reason.
    static func openHDF5(_ path: String) throws -> File {
        guard fileExists(path) else { throw DataError.missingPath(path) }
        return try mapHDF5Errors { try File(path) }
    }

    /// Parses a JSON file; a missing file is `missingPath`, bad JSON `invalidLabels`.
    static func readJSON(_ path: String) throws -> Any {
        guard fileExists(path) else { throw DataError.missingPath(path) }
        let tooLarge = { (size: Int) in
            DataError.invalidLabels(path: path, reason: "the file holds \(ReadLimits.byteCount(size)), more than the "
                                    + "\(ReadLimits.byteCount(maxLabelsFileBytes)) a labels file may have")
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        guard size <= maxLabelsFileBytes else { throw tooLarge(size) }
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = try handle.read(upToCount: maxLabelsFileBytes + 1) ?? Data()
        } catch {
            throw DataError.invalidLabels(path: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
        guard data.count <= maxLabelsFileBytes else { throw tooLarge(data.count) }
        do {
            return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw DataError.invalidLabels(path: path, reason: "not valid JSON")
        }
    }

    /// A JSON list of non-empty names (miniImageNet, tieredImageNet labels).
    static func nameList(_ path: String) throws -> [String] {
        guard let list = try readJSON(path) as? [Any] else {
            throw DataError.invalidLabels(path: path, reason: "expected a JSON list of class names")
        }
        guard !list.isEmpty else { throw DataError.invalidLabels(path: path, reason: "the list names no classes") }
        return try list.enumerated().map { index, item in
            guard let name = item as? String else {
                throw DataError.invalidLabels(path: path, reason: "entry \(index) is not a string")
            }
            try checkName(name, path: path, index: index)
            return name
        }
    }

    /// A JSON list of lists of `arity` names (Omniglot triples, CIFAR pairs).
    static func tupleList(_ path: String, arity: Int, example: String) throws -> [[String]] {
        guard let list = try readJSON(path) as? [Any] else {
            throw DataError.invalidLabels(path: path, reason: "expected a JSON list of \(example) lists")
        }
        guard !list.isEmpty else { throw DataError.invalidLabels(path: path, reason: "the list names no classes") }
        return try list.enumerated().map { index, item in
            guard let tuple = item as? [Any], tuple.count == arity else {
                throw DataError.invalidLabels(path: path, reason: "entry \(index) is not a list of \(arity) names (\(example))")
            }
            return try tuple.map { part in
                guard let name = part as? String else {
                    throw DataError.invalidLabels(path: path, reason: "entry \(index) holds a value that is not a string")
                }
                try checkName(name, path: path, index: index)
                return name
            }
        }
    }

    private static func checkName(_ name: String, path: String, index: Int) throws {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw DataError.invalidLabels(path: path, reason: "entry \(index) has an unusable name '\(name)'")
        }
    }

    /// How a stored uint8 image dataset is laid out.
    enum PixelLayout {
        /// (n, height, width): one channel (Omniglot).
        case nhw
        /// (n, height, width, channels) with 1 or 3 channels (miniImageNet, CIFAR).
        case nhwc
        /// (n, channels, height, width) (MetaBench's own layout).
        case nchw
    }

    /// What a loader has read so far: the image shape every class must have (set by the first class) and
    /// the bytes held, which must stay within `ReadLimits.memoryBudget`.
    struct Progress {
        var shape: ImageShape?
        var bytes = 0

        init(shape: ImageShape? = nil) { self.shape = shape }

        /// Counts `count` more bytes for the class at `dataset` of `file`.
        mutating func hold(_ count: Int?, file: String, dataset: String) throws {
            guard let count, let total = ReadLimits.sum([bytes, count]), total <= ReadLimits.memoryBudget else {
                throw DataError.tooLarge(file: file, reason: "dataset '\(dataset)': the classes read up to it need "
                                         + "\(ReadLimits.byteCount(ReadLimits.sum([bytes, count ?? .max]) ?? .max)), more than "
                                         + ReadLimits.memoryBudgetDescription)
            }
            bytes = total
        }
    }

    /// Reads the uint8 images at `datasetPath` as one class with CHW pixels, checking type, rank, the image
    /// size, that the image shape matches `progress.shape` (set from the first class read) and the memory.
    static func readClass(_ file: File, _ datasetPath: String, name: String, layout: PixelLayout,
                          progress: inout Progress) throws -> ImageClass {
        guard try mapHDF5Errors({ try file.exists(datasetPath) }) else {
            throw DataError.missingGroup(file: file.path, group: datasetPath)
        }
        let dataset: Dataset
        do {
            dataset = try file.dataset(datasetPath)
        } catch HDF5Error.wrongKind {
            throw DataError.badDataset(file: file.path, dataset: datasetPath, reason: "is a group, expected a dataset of images")
        } catch let error as HDF5Error {
            throw DataError.hdf5(error.description)
        }
        let (type, dims) = try mapHDF5Errors { (try dataset.elementType(), try dataset.shape()) }
        guard type == .uint8 else {
            throw DataError.badDataset(file: file.path, dataset: datasetPath, reason: "holds \(type), expected uint8 pixels")
        }
        let shapeText = "(" + dims.map(String.init).joined(separator: ", ") + ")"
        let count: Int, shape: ImageShape
        switch layout {
        case .nhw:
            guard dims.count == 3 else {
                throw DataError.badDataset(file: file.path, dataset: datasetPath,
                                           reason: "expected shape (images, height, width), found \(shapeText)")
            }
            count = dims[0]; shape = ImageShape(channels: 1, height: dims[1], width: dims[2])
        case .nhwc:
            guard dims.count == 4, dims[3] == 1 || dims[3] == 3 else {
                throw DataError.badDataset(file: file.path, dataset: datasetPath,
                                           reason: "expected shape (images, height, width, 1 or 3 channels), found \(shapeText)")
            }
            count = dims[0]; shape = ImageShape(channels: dims[3], height: dims[1], width: dims[2])
        case .nchw:
            guard dims.count == 4, dims[1] >= 1 else {
                throw DataError.badDataset(file: file.path, dataset: datasetPath,
                                           reason: "expected shape (images, channels, height, width), found \(shapeText)")
            }
            count = dims[0]; shape = ImageShape(channels: dims[1], height: dims[2], width: dims[3])
        }
        guard shape.height > 0, shape.width > 0 else {
            throw DataError.badDataset(file: file.path, dataset: datasetPath, reason: "images of size \(shapeText) are empty")
        }
        try checkImageSize(shape, file: file.path, dataset: datasetPath)
        try checkShape(shape, expected: &progress.shape, file: file.path, dataset: datasetPath)
        try progress.hold(ReadLimits.product([count, shape.count]), file: file.path, dataset: datasetPath)
        let raw: [UInt8] = try mapHDF5Errors { try dataset.read() }
        let pixels = layout == .nhwc
            ? ImageOps.hwcToCHW(raw, count: count, height: shape.height, width: shape.width, channels: shape.channels)
            : raw
        return ImageClass(name: name, count: count, pixels: pixels)
    }

    /// Checks that one image of `shape` has at most `maxImageValues` values (so `shape.count` cannot overflow).
    static func checkImageSize(_ shape: ImageShape, file: String, dataset: String) throws {
        guard shape.channels > 0, shape.height > 0, shape.width > 0 else {
            throw DataError.badDataset(file: file, dataset: dataset, reason: "images of \(shape) have an empty dimension")
        }
        guard let values = ReadLimits.product([shape.channels, shape.height, shape.width]), values <= maxImageValues else {
            throw DataError.badDataset(file: file, dataset: dataset, reason: "images of \(shape) are larger than the limit of "
                                       + "\(maxImageValues) values per image")
        }
    }

    /// Checks every class has images of one shape.
    static func checkShape(_ shape: ImageShape, expected: inout ImageShape?, file: String, dataset: String) throws {
        if let expected, expected != shape {
            throw DataError.badDataset(file: file, dataset: dataset,
                                       reason: "images are \(shape), but earlier classes have \(expected)")
        }
        expected = shape
    }

    /// Applies the resizing and rotation options to a dataset read at its stored size (held as bytes).
    ///
    /// The memory they need is checked first: one byte per value, four for images resized to floats.
    static func apply(_ options: LoadOptions, to dataset: FewShotDataset) throws -> FewShotDataset {
        var result = dataset
        let images = ReadLimits.sum(dataset.splits.flatMap { $0.classes.map(\.count) }) ?? .max
        if let size = options.imageSize {
            guard size > 0, size <= maxImageSize else {
                throw DataError.invalidOptions("image_size \(size) is not in 1...\(maxImageSize)")
            }
            let from = dataset.imageShape
            let to = ImageShape(channels: from.channels, height: size, width: size)
            let floats = from != to && options.resize.keepsFloats
            let channels = from.channels
            let resized = ReadLimits.product([images, channels, size, size, options.rotations ? 4 : 1,
                                              floats ? MemoryLayout<Float>.size : 1])
            guard let resized, resized <= ReadLimits.memoryBudget else {
                throw DataError.invalidOptions("image_size \(size): \(images) images of \(channels) channel(s) at \(size)×\(size)"
                                               + (options.rotations ? " with rotations" : "")
                                               + (floats ? " as 4-byte floats (resize \(options.resize.rawValue))" : "") + " need "
                                               + "\(ReadLimits.byteCount(resized ?? .max)), more than \(ReadLimits.memoryBudgetDescription)")
            }
            if from != to {
                result.imageShape = to
                for s in result.splits.indices {
                    for c in result.splits[s].classes.indices {
                        let cls = result.splits[s].classes[c]
                        guard case .bytes(let bytes) = cls.storage else {
                            throw DataError.invalidOptions("image_size: class '\(cls.name)' is already resized (held as floats)")
                        }
                        result.splits[s].classes[c].storage = ImageOps.resize(bytes, count: cls.count, from: from, toHeight: size,
                                                                              width: size, mode: options.resize)
                    }
                }
            }
        }
        if options.rotations {
            let shape = result.imageShape
            guard shape.height == shape.width else {
                throw DataError.invalidOptions("rotations need square images, these are \(shape.height)×\(shape.width); set an image size")
            }
            let bytesPerValue = result.splits.lazy.flatMap(\.classes).map(\.storage.bytesPerValue).max() ?? 1
            let rotated = ReadLimits.product([images, shape.count, 4, bytesPerValue])
            guard let rotated, rotated <= ReadLimits.memoryBudget else {
                throw DataError.invalidOptions("rotations: \(images) images of \(shape) and their three rotations"
                                               + (bytesPerValue > 1 ? " as 4-byte floats" : "") + " need "
                                               + "\(ReadLimits.byteCount(rotated ?? .max)), more than \(ReadLimits.memoryBudgetDescription)")
            }
            for s in result.splits.indices {
                let originals = result.splits[s].classes
                for (turns, suffix) in [(1, "rot90"), (2, "rot180"), (3, "rot270")] {
                    for cls in originals {
                        let rotated = ImageOps.rotate(cls.storage, count: cls.count, shape: shape, quarterTurns: turns)
                        result.splits[s].classes.append(ImageClass(name: cls.name + "/" + suffix, count: cls.count, storage: rotated))
                    }
                }
            }
        }
        return result
    }

    /// The class lists of miniImageNet's and tieredImageNet's layout: `{split}_labels.json` for each split
    /// whose `{split}_data.hdf5` is in `folder`, checked for repeated classes and classes in two splits.
    static func splitLabels(in folder: String) throws -> [SplitClasses] {
        let labels = try presentSplits(in: folder, { "\($0)_data.hdf5" }).map { split in
            let path = join(folder, "\(split)_labels.json")
            return SplitClasses(split: split, source: path, names: try nameList(path))
        }
        try SplitClasses.checkDistinct(labels)
        return labels
    }

    /// The splits among train, val and test whose file `name(split)` exists in `folder`.
    static func presentSplits(in folder: String, _ name: (String) -> String) -> [String] {
        splitNames.filter { fileExists(join(folder, name($0))) }
    }
}
