import HDF5

/// Reads torchmeta's Omniglot folder: `data.hdf5` with uint8 (n, 105, 105) datasets at
/// `<group>/<alphabet>/<character>` and `{prefix}{split}_labels.json` lists of those triples.
enum TorchmetaOmniglot {
    static let layout = "torchmeta-omniglot"

    /// Whether `folder` looks like torchmeta's Omniglot folder (with any labels prefix).
    static func matches(_ folder: String) -> Bool {
        guard LayoutIO.fileExists(LayoutIO.join(folder, "data.hdf5")),
              !LayoutIO.fileExists(LayoutIO.join(folder, "fine_names.json")) else { return false }
        return ["", "vinyals_"].contains { prefix in
            !LayoutIO.presentSplits(in: folder) { "\(prefix)\($0)_labels.json" }.isEmpty
        }
    }

    /// Reads the splits named by `{options.labelsPrefix}{split}_labels.json`; class names are `alphabet/character`.
    static func read(_ folder: String, options: LoadOptions) throws -> FewShotDataset {
        let prefix = options.labelsPrefix
        let splits = LayoutIO.presentSplits(in: folder) { "\(prefix)\($0)_labels.json" }
        guard !splits.isEmpty else {
            throw DataError.unknownLayout(path: folder, reason: "data.hdf5 is there, but none of "
                + LayoutIO.splitNames.map { "\(prefix)\($0)_labels.json" }.joined(separator: ", "))
        }
        let labels = try splits.map { split in
            let path = LayoutIO.join(folder, "\(prefix)\(split)_labels.json")
            let triples = try LayoutIO.tupleList(path, arity: 3, example: "[group, alphabet, character]")
            return SplitClasses(split: split, source: path, names: triples.map { "\($0[1])/\($0[2])" },
                                places: triples.map { $0.joined(separator: "/") })
        }
        try SplitClasses.checkDistinct(labels)
        let file = try LayoutIO.openHDF5(LayoutIO.join(folder, "data.hdf5"))
        var progress = LayoutIO.Progress()
        var result: [Split] = []
        for split in labels {
            let classes = try zip(split.names, split.places).map { name, groupPath in
                try LayoutIO.readClass(file, groupPath, name: name, layout: .nhw, progress: &progress)
            }
            result.append(Split(name: split.split, classes: classes))
        }
        let dataset = FewShotDataset(name: "omniglot", layout: layout, imageShape: progress.shape ?? ImageShape(channels: 1, height: 0, width: 0),
                                     splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }
}
