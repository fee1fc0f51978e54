import HDF5

/// MetaBench's own dataset layout: one HDF5 file holding every split.
///
/// Root attributes `metabench_layout = "metabench-fewshot-v1"`, `name`, and `channels`, `height`,
/// `width`; a group `/<split>` per split holding one uint8 dataset (n, C, H, W) per class, named by its
/// zero-padded index (`000000`, `000001`, …) with a string attribute `class_name`. Class order is the
/// sorted dataset names; split order is train, val, test, then others by name.
public enum MetaBenchLayout {
    public static let layoutName = "metabench-fewshot-v1"

    /// Writes `dataset` to `path` (through a temporary file renamed into place: never a half-written file).
    public static func write(_ dataset: FewShotDataset, to path: String) throws {
        let shape = dataset.imageShape
        guard shape.channels > 0, shape.height > 0, shape.width > 0 else {
            throw DataError.badDataset(file: path, dataset: "/", reason: "image shape \(shape) is empty")
        }
        for split in dataset.splits {
            guard !split.name.isEmpty, !split.name.contains("/"), split.name != "." else {
                throw DataError.badDataset(file: path, dataset: split.name, reason: "unusable split name")
            }
            for cls in split.classes {
                guard case .bytes(let pixels) = cls.storage else {
                    throw DataError.badDataset(file: path, dataset: "\(split.name)/\(cls.name)",
                                               reason: "the images are held as floats (resized with resize area or bilinear), "
                                               + "but this layout stores uint8 pixels; resize with area-uint8 to write them")
                }
                guard cls.count >= 0, ReadLimits.product([cls.count, shape.count]) == pixels.count else {
                    throw DataError.badDataset(file: path, dataset: "\(split.name)/\(cls.name)",
                                               reason: "\(pixels.count) bytes for \(cls.count) images of \(shape)")
                }
            }
        }
        try AtomicWrite.hdf5(to: path) { file in
            let root = try file.root()
            try root.setAttribute("metabench_layout", layoutName)
            try root.setAttribute("name", dataset.name)
            try root.setAttribute("channels", shape.channels)
            try root.setAttribute("height", shape.height)
            try root.setAttribute("width", shape.width)
            for split in dataset.splits {
                let group = try root.createGroup(split.name)
                let width = max(6, String(max(split.classes.count - 1, 0)).count)
                for (index, cls) in split.classes.enumerated() {
                    let digits = String(index)
                    let name = String(repeating: "0", count: width - digits.count) + digits
                    let ds = try group.createDataset(name, shape: [cls.count, shape.channels, shape.height, shape.width],
                                                     values: cls.pixels, gzipLevel: 4)
                    try ds.setAttribute("class_name", cls.name)
                }
            }
        }
    }

    /// Whether `path` is an HDF5 file with the MetaBench dataset layout attribute.
    static func matches(_ path: String) -> Bool {
        guard let file = try? File(path), let root = try? file.root(),
              let value = try? root.stringAttribute("metabench_layout") else { return false }
        return value == layoutName
    }

    /// Reads a file written by `write`.
    public static func read(_ path: String) throws -> FewShotDataset {
        let file = try LayoutIO.openHDF5(path)
        return try LayoutIO.mapHDF5Errors {
            let root = try file.root()
            guard try root.hasAttribute("metabench_layout") else {
                throw DataError.unknownLayout(path: path, reason: "an HDF5 file without the metabench_layout attribute")
            }
            let layout = try root.stringAttribute("metabench_layout")
            guard layout == layoutName else {
                throw DataError.unknownLayout(path: path, reason: "metabench_layout is '\(layout)', expected '\(layoutName)'")
            }
            let name = try root.hasAttribute("name") ? root.stringAttribute("name") : "unnamed"
            var progress = LayoutIO.Progress()
            if try root.hasAttribute("channels") && root.hasAttribute("height") && root.hasAttribute("width") {
                let shape = ImageShape(channels: try root.intAttribute("channels"), height: try root.intAttribute("height"),
                                       width: try root.intAttribute("width"))
                try LayoutIO.checkImageSize(shape, file: path, dataset: "/")
                progress.shape = shape
            }
            let groups = try root.members().filter { $0.kind == .group }.map(\.name)
            let known = LayoutIO.splitNames.filter(groups.contains)
            let others = groups.filter { !LayoutIO.splitNames.contains($0) }.sorted()
            // Every class name first, so repeated classes and classes in two splits fail before any pixel is read.
            var datasetPaths: [[String]] = []
            let labels = try (known + others).map { splitName in
                let group = try root.group(splitName)
                var names: [String] = [], paths: [String] = []
                for member in try group.members().sorted(by: { $0.name < $1.name }) {
                    let datasetPath = "\(splitName)/\(member.name)"
                    guard member.kind == .dataset else {
                        throw DataError.badDataset(file: path, dataset: datasetPath, reason: "expected a dataset of images")
                    }
                    let dataset = try file.dataset(datasetPath)
                    guard try dataset.hasAttribute("class_name") else {
                        throw DataError.badDataset(file: path, dataset: datasetPath, reason: "no class_name attribute")
                    }
                    names.append(try dataset.stringAttribute("class_name"))
                    paths.append(datasetPath)
                }
                datasetPaths.append(paths)
                return SplitClasses(split: splitName, source: path, names: names, places: paths.map { "dataset /\($0)" })
            }
            try SplitClasses.checkDistinct(labels)
            let splits = try zip(labels, datasetPaths).map { split, paths in
                Split(name: split.split, classes: try zip(split.names, paths).map { className, datasetPath in
                    try LayoutIO.readClass(file, datasetPath, name: className, layout: .nchw, progress: &progress)
                })
            }
            guard let imageShape = progress.shape else {
                throw DataError.badDataset(file: path, dataset: "/", reason: "no classes and no channels/height/width attributes")
            }
            return FewShotDataset(name: name, layout: layoutName, imageShape: imageShape, splits: splits)
        }
    }
}
