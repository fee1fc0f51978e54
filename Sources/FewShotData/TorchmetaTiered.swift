import HDF5

/// Reads torchmeta's tieredImageNet folder: `{split}_data.hdf5` with `datasets/<class>` variable-length
/// uint8 arrays, each an encoded PNG, and `{split}_labels.json` lists of class names.
enum TorchmetaTiered {
    static let layout = "torchmeta-tieredimagenet"

    static func read(_ folder: String, options: LoadOptions) throws -> FewShotDataset {
        let labels = try LayoutIO.splitLabels(in: folder)
        var progress = LayoutIO.Progress()
        var result: [Split] = []
        for split in labels {
            let file = try LayoutIO.openHDF5(LayoutIO.join(folder, "\(split.split)_data.hdf5"))
            let classes = try split.names.map { name in
                try readClass(file, "datasets/\(name)", name: name, progress: &progress)
            }
            result.append(Split(name: split.split, classes: classes))
        }
        let dataset = FewShotDataset(name: "tieredimagenet", layout: layout,
                                     imageShape: progress.shape ?? ImageShape(channels: 3, height: 0, width: 0), splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }

    /// Decodes one class's PNGs to CHW bytes; the first image decides gray or RGB for the whole dataset.
    static func readClass(_ file: File, _ datasetPath: String, name: String, progress: inout LayoutIO.Progress) throws -> ImageClass {
        guard try LayoutIO.mapHDF5Errors({ try file.exists(datasetPath) }) else {
            throw DataError.missingGroup(file: file.path, group: datasetPath)
        }
        let encoded: [[UInt8]] = try LayoutIO.mapHDF5Errors {
            let dataset = try file.dataset(datasetPath)
            let type = try dataset.elementType()
            guard type == .variableLengthUInt8 else {
                throw DataError.badDataset(file: file.path, dataset: datasetPath,
                                           reason: "holds \(type), expected variable-length uint8 (encoded PNG images)")
            }
            return try dataset.readVariableLengthBytes()
        }
        var pixels: [UInt8] = []
        for (index, png) in encoded.enumerated() {
            do {
                let channels = try progress.shape?.channels ?? (PNGDecoder.isColour(png) ? 3 : 1)
                let image = try PNGDecoder.decode(png, channels: channels)
                let shape = ImageShape(channels: channels, height: image.height, width: image.width)
                try LayoutIO.checkImageSize(shape, file: file.path, dataset: datasetPath)
                try LayoutIO.checkShape(shape, expected: &progress.shape, file: file.path, dataset: datasetPath)
                if index == 0 {
                    try progress.hold(ReadLimits.product([encoded.count, shape.count]), file: file.path, dataset: datasetPath)
                }
                pixels += ImageOps.hwcToCHW(image.pixels, count: 1, height: image.height, width: image.width, channels: channels)
            } catch let error as PNGDecoder.PNGError {
                throw DataError.imageDecoding(file: file.path, dataset: datasetPath, reason: "image \(index): \(error.reason)")
            }
        }
        return ImageClass(name: name, count: encoded.count, pixels: pixels)
    }

    /// Whether the first class dataset of `file` holds variable-length data (tieredImageNet) rather than arrays.
    static func holdsEncodedImages(_ path: String) throws -> Bool {
        let file = try LayoutIO.openHDF5(path)
        return try LayoutIO.mapHDF5Errors {
            guard try file.exists("datasets") else {
                throw DataError.missingGroup(file: path, group: "datasets")
            }
            guard let first = try file.group("datasets").members().first(where: { $0.kind == .dataset }) else {
                throw DataError.badDataset(file: path, dataset: "datasets", reason: "the group holds no datasets")
            }
            return try file.dataset("datasets/\(first.name)").elementType().kind == .variableLength
        }
    }
}
