import HDF5

/// Reads torchmeta's miniImageNet folder: `{split}_data.hdf5` with uint8 (n, 84, 84, 3) datasets at
/// `datasets/<wnid>` and `{split}_labels.json` lists of wnids.
enum TorchmetaMiniImageNet {
    static let layout = "torchmeta-miniimagenet"

    static func read(_ folder: String, options: LoadOptions) throws -> FewShotDataset {
        let labels = try LayoutIO.splitLabels(in: folder)
        var progress = LayoutIO.Progress()
        var result: [Split] = []
        for split in labels {
            let file = try LayoutIO.openHDF5(LayoutIO.join(folder, "\(split.split)_data.hdf5"))
            let classes = try split.names.map { wnid in
                try LayoutIO.readClass(file, "datasets/\(wnid)", name: wnid, layout: .nhwc, progress: &progress)
            }
            result.append(Split(name: split.split, classes: classes))
        }
        let dataset = FewShotDataset(name: "miniimagenet", layout: layout,
                                     imageShape: progress.shape ?? ImageShape(channels: 3, height: 0, width: 0), splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }
}
