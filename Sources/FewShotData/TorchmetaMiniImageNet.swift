import HDF5

/// Reads torchmeta's miniImageNet folder: `{split}_data.hdf5` with uint8 (n, 84, 84, 3) datasets at
/// `datasets/<wnid>` and `{split}_labels.json` lists of wnids.
enum TorchmetaMiniImageNet {
    static let layout = "torchmeta-miniimagenet"

    static func read(_ folder: String, options: LoadOptions) throws -> FewShotDataset {
        var shape: ImageShape?
        var result: [Split] = []
        for split in LayoutIO.presentSplits(in: folder, { "\($0)_data.hdf5" }) {
            let labels = try LayoutIO.nameList(LayoutIO.join(folder, "\(split)_labels.json"))
            let file = try LayoutIO.openHDF5(LayoutIO.join(folder, "\(split)_data.hdf5"))
            let classes = try labels.map { wnid in
                try LayoutIO.readClass(file, "datasets/\(wnid)", name: wnid, layout: .nhwc, expectedShape: &shape)
            }
            result.append(Split(name: split, classes: classes))
        }
        let dataset = FewShotDataset(name: "miniimagenet", layout: layout,
                                     imageShape: shape ?? ImageShape(channels: 3, height: 0, width: 0), splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }
}
