import Foundation
import HDF5

/// Reads torchmeta's CIFAR-100 folder for CIFAR-FS or FC100: `data.hdf5` with uint8 (n, 32, 32, 3)
/// datasets at `<coarse>/<fine>`, `fine_names.json`, and `cifar-fs/{split}_labels.json` or
/// `fc100/{split}_labels.json` lists of `[coarse, fine]` pairs.
enum TorchmetaCIFAR {
    static let variants = ["cifar-fs", "fc100"]

    /// The `cifar100` folder and the variant for `path`, or nil when it is not this layout.
    static func resolve(_ path: String, options: LoadOptions) throws -> (root: String, variant: String)? {
        func isRoot(_ folder: String) -> Bool {
            LayoutIO.fileExists(LayoutIO.join(folder, "data.hdf5")) && LayoutIO.fileExists(LayoutIO.join(folder, "fine_names.json"))
        }
        if isRoot(path) {
            let variant = options.variant ?? "cifar-fs"
            guard variants.contains(variant) else {
                throw DataError.invalidOptions("unknown CIFAR-100 variant '\(variant)' (expected cifar-fs or fc100)")
            }
            return (path, variant)
        }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let last = url.lastPathComponent
        let parent = url.deletingLastPathComponent().path
        guard variants.contains(last), isRoot(parent) else { return nil }
        if let asked = options.variant, asked != last {
            throw DataError.invalidOptions("the path is the '\(last)' folder, but the variant asked for is '\(asked)'")
        }
        return (parent, last)
    }

    static func read(root: String, variant: String, options: LoadOptions) throws -> FewShotDataset {
        let labelsFolder = LayoutIO.join(root, variant)
        let splits = LayoutIO.presentSplits(in: labelsFolder) { "\($0)_labels.json" }
        guard !splits.isEmpty else {
            throw DataError.unknownLayout(path: root, reason: "no \(variant)/train_labels.json, \(variant)/val_labels.json or \(variant)/test_labels.json")
        }
        let labels = try splits.map { split in
            let path = LayoutIO.join(labelsFolder, "\(split)_labels.json")
            let pairs = try LayoutIO.tupleList(path, arity: 2, example: "[coarse, fine]")
            return SplitClasses(split: split, source: path, names: pairs.map { $0[1] }, places: pairs.map { $0.joined(separator: "/") })
        }
        try SplitClasses.checkDistinct(labels)
        let file = try LayoutIO.openHDF5(LayoutIO.join(root, "data.hdf5"))
        var progress = LayoutIO.Progress()
        var result: [Split] = []
        for split in labels {
            let classes = try zip(split.names, split.places).map { name, groupPath in
                try LayoutIO.readClass(file, groupPath, name: name, layout: .nhwc, progress: &progress)
            }
            result.append(Split(name: split.split, classes: classes))
        }
        let dataset = FewShotDataset(name: variant, layout: "torchmeta-\(variant)",
                                     imageShape: progress.shape ?? ImageShape(channels: 3, height: 0, width: 0), splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }
}
