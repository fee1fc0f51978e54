import Foundation
import HDF5

/// Reading helpers shared by the dataset layouts.
enum LayoutIO {
    /// The split names torchmeta uses, in report order.
    static let splitNames = ["train", "val", "test"]

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
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataError.invalidLabels(path: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
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

    /// Reads the uint8 images at `datasetPath` as one class with CHW pixels, checking type, rank and that
    /// the image shape matches `expectedShape` (set from the first class read).
    static func readClass(_ file: File, _ datasetPath: String, name: String, layout: PixelLayout,
                          expectedShape: inout ImageShape?) throws -> ImageClass {
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
        try checkShape(shape, expected: &expectedShape, file: file.path, dataset: datasetPath)
        let raw: [UInt8] = try mapHDF5Errors { try dataset.read() }
        let pixels = layout == .nhwc
            ? ImageOps.hwcToCHW(raw, count: count, height: shape.height, width: shape.width, channels: shape.channels)
            : raw
        return ImageClass(name: name, count: count, pixels: pixels)
    }

    /// Checks every class has images of one shape.
    static func checkShape(_ shape: ImageShape, expected: inout ImageShape?, file: String, dataset: String) throws {
        if let expected, expected != shape {
            throw DataError.badDataset(file: file, dataset: dataset,
                                       reason: "images are \(shape), but earlier classes have \(expected)")
        }
        expected = shape
    }

    /// Applies the resizing and rotation options to a dataset read at its stored size.
    static func apply(_ options: LoadOptions, to dataset: FewShotDataset) throws -> FewShotDataset {
        var result = dataset
        if let size = options.imageSize {
            guard size > 0, size <= 4096 else {
                throw DataError.invalidOptions("image size \(size) is not in 1...4096")
            }
            let from = dataset.imageShape
            let to = ImageShape(channels: from.channels, height: size, width: size)
            if from != to {
                result.imageShape = to
                for s in result.splits.indices {
                    for c in result.splits[s].classes.indices {
                        let cls = result.splits[s].classes[c]
                        result.splits[s].classes[c].pixels = ImageOps.resize(cls.pixels, count: cls.count, from: from,
                                                                             toHeight: size, width: size)
                    }
                }
            }
        }
        if options.rotations {
            let shape = result.imageShape
            guard shape.height == shape.width else {
                throw DataError.invalidOptions("rotations need square images, these are \(shape.height)×\(shape.width); set an image size")
            }
            for s in result.splits.indices {
                let originals = result.splits[s].classes
                for (turns, suffix) in [(1, "rot90"), (2, "rot180"), (3, "rot270")] {
                    for cls in originals {
                        let rotated = ImageOps.rotate(cls.pixels, count: cls.count, shape: shape, quarterTurns: turns)
                        result.splits[s].classes.append(ImageClass(name: cls.name + "/" + suffix, count: cls.count, pixels: rotated))
                    }
                }
            }
        }
        return result
    }

    /// The splits among train, val and test whose file `name(split)` exists in `folder`.
    static func presentSplits(in folder: String, _ name: (String) -> String) -> [String] {
        splitNames.filter { fileExists(join(folder, name($0))) }
    }
}
