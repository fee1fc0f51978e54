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
        let file = try LayoutIO.openHDF5(LayoutIO.join(folder, "data.hdf5"))
        var shape: ImageShape?
        var result: [Split] = []
        for split in splits {
            let labels = try LayoutIO.tupleList(LayoutIO.join(folder, "\(prefix)\(split)_labels.json"), arity: 3,
                                                example: "[group, alphabet, character]")
            let classes = try labels.map { triple in
                try LayoutIO.readClass(file, triple.joined(separator: "/"), name: "\(triple[1])/\(triple[2])",
                                       layout: .nhw, expectedShape: &shape)
            }
            result.append(Split(name: split, classes: classes))
        }
        let dataset = FewShotDataset(name: "omniglot", layout: layout, imageShape: shape ?? ImageShape(channels: 1, height: 0, width: 0),
                                     splits: result)
        return try LayoutIO.apply(options, to: dataset)
    }
}
