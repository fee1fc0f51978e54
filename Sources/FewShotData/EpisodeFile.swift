import HDF5

/// A file of fixed episodes, so a published set of test episodes is evaluated exactly as given.
///
/// One HDF5 file: root attributes `metabench_layout = "metabench-episodes-v1"` and `count`; a group
/// `episodes/000000`, `episodes/000001`, … per episode with float32 datasets `support_images` (n, C, H, W)
/// and `query_images`, int64 datasets `support_labels`, `query_labels` and `class_indices`, and int
/// attributes `ways`, `shots`, `queries`. Values round-trip bit for bit.
public enum EpisodeFile {
    public static let layoutName = "metabench-episodes-v1"

    /// Writes `episodes` to `path` (through a temporary file renamed into place).
    public static func write(_ episodes: [Episode], to path: String) throws {
        for (index, episode) in episodes.enumerated() {
            try validate(episode, file: path, group: groupName(index))
        }
        try AtomicWrite.hdf5(to: path) { file in
            let root = try file.root()
            try root.setAttribute("metabench_layout", layoutName)
            try root.setAttribute("count", episodes.count)
            try root.createGroup("episodes")
            for (index, episode) in episodes.enumerated() {
                let group = try root.createGroup(groupName(index))
                try group.setAttribute("ways", episode.ways)
                try group.setAttribute("shots", episode.shots)
                try group.setAttribute("queries", episode.queriesPerClass)
                for (prefix, images) in [("support", episode.support), ("query", episode.query)] {
                    let s = images.shape
                    try group.createDataset("\(prefix)_images", shape: [images.count, s.channels, s.height, s.width],
                                            values: images.pixels, gzipLevel: 4)
                    try group.createDataset("\(prefix)_labels", shape: [images.count], values: images.labels.map { Int64($0) })
                }
                try group.createDataset("class_indices", shape: [episode.classIndices.count],
                                        values: episode.classIndices.map { Int64($0) })
            }
        }
    }

    /// Reads and validates the episodes in `path` (labels in 0..<ways, shapes consistent).
    public static func read(_ path: String) throws -> [Episode] {
        let file = try LayoutIO.openHDF5(path)
        return try LayoutIO.mapHDF5Errors {
            let root = try file.root()
            guard try root.hasAttribute("metabench_layout"), try root.stringAttribute("metabench_layout") == layoutName else {
                throw DataError.unknownLayout(path: path, reason: "not an episode file (no metabench_layout = \"\(layoutName)\")")
            }
            guard try root.exists("episodes") else { throw DataError.missingGroup(file: path, group: "episodes") }
            let names = try root.group("episodes").members().map(\.name).sorted()
            if try root.hasAttribute("count") {
                let count = try root.intAttribute("count")
                guard count == names.count else {
                    throw DataError.badDataset(file: path, dataset: "episodes",
                                               reason: "the file says \(count) episodes but holds \(names.count)")
                }
            }
            return try names.map { try readEpisode(file, "episodes/\($0)") }
        }
    }

    private static func groupName(_ index: Int) -> String {
        let digits = String(index)
        return "episodes/" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    private static func readEpisode(_ file: File, _ name: String) throws -> Episode {
        let group: Group
        do { group = try file.group(name) } catch HDF5Error.wrongKind {
            throw DataError.badDataset(file: file.path, dataset: name, reason: "expected an episode group")
        }
        func attribute(_ key: String) throws -> Int {
            guard try group.hasAttribute(key) else {
                throw DataError.badDataset(file: file.path, dataset: name, reason: "no '\(key)' attribute")
            }
            return try group.intAttribute(key)
        }
        let ways = try attribute("ways"), shots = try attribute("shots"), queries = try attribute("queries")
        func images(_ prefix: String) throws -> LabelledImages {
            let imagesPath = "\(name)/\(prefix)_images", labelsPath = "\(name)/\(prefix)_labels"
            for path in [imagesPath, labelsPath] where !(try file.exists(path)) {
                throw DataError.missingGroup(file: file.path, group: path)
            }
            let imageSet = try file.dataset(imagesPath), labelSet = try file.dataset(labelsPath)
            let imageType = try imageSet.elementType(), labelType = try labelSet.elementType()
            guard imageType == .float32 else {
                throw DataError.badDataset(file: file.path, dataset: imagesPath, reason: "holds \(imageType), expected float32")
            }
            guard labelType.kind == .integer else {
                throw DataError.badDataset(file: file.path, dataset: labelsPath, reason: "holds \(labelType), expected int64 labels")
            }
            let dims = try imageSet.shape(), labelDims = try labelSet.shape()
            guard dims.count == 4 else {
                throw DataError.badDataset(file: file.path, dataset: imagesPath, reason: "expected shape (n, C, H, W), found \(dims)")
            }
            guard labelDims == [dims[0]] else {
                throw DataError.badDataset(file: file.path, dataset: labelsPath,
                                           reason: "expected \(dims[0]) labels (one per image), found shape \(labelDims)")
            }
            let shape = ImageShape(channels: dims[1], height: dims[2], width: dims[3])
            try LayoutIO.checkImageSize(shape, file: file.path, dataset: imagesPath)
            let labels: [Int64] = try labelSet.read()
            return LabelledImages(shape: shape, pixels: try imageSet.read(), labels: labels.map { Int(clamping: $0) })
        }
        let support = try images("support"), query = try images("query")
        guard ways > 0, ways <= support.count else {
            throw DataError.badDataset(file: file.path, dataset: name, reason: "ways \(ways) does not fit \(support.count) support images")
        }
        var classIndices = Array(0..<ways)
        if try file.exists("\(name)/class_indices") {
            let stored: [Int64] = try file.dataset("\(name)/class_indices").read()
            classIndices = stored.map { Int(clamping: $0) }
        }
        let episode = Episode(ways: ways, shots: shots, queriesPerClass: queries, support: support, query: query,
                              classIndices: classIndices)
        try validate(episode, file: file.path, group: name)
        return episode
    }

    /// Checks an episode's counts, shapes and labels agree.
    static func validate(_ episode: Episode, file: String, group: String) throws {
        func bad(_ reason: String) -> DataError { DataError.badDataset(file: file, dataset: group, reason: reason) }
        guard episode.ways > 0, episode.shots > 0, episode.queriesPerClass >= 0 else {
            throw bad("ways \(episode.ways), shots \(episode.shots), queries \(episode.queriesPerClass): ways and shots must be positive")
        }
        guard episode.support.shape == episode.query.shape else {
            throw bad("support images are \(episode.support.shape) but query images are \(episode.query.shape)")
        }
        guard episode.classIndices.count == episode.ways else {
            throw bad("\(episode.classIndices.count) class indices for \(episode.ways) ways")
        }
        for (kind, images, perClass) in [("support", episode.support, episode.shots), ("query", episode.query, episode.queriesPerClass)] {
            let expected = ReadLimits.product([episode.ways, perClass])
            guard images.count == expected else {
                throw bad("\(images.count) \(kind) images, expected ways × \(kind == "support" ? "shots" : "queries") = "
                          + (expected.map(String.init) ?? "more than can be addressed"))
            }
            guard images.pixels.count == ReadLimits.product([images.count, images.shape.channels, images.shape.height, images.shape.width]) else {
                throw bad("\(images.pixels.count) \(kind) values for \(images.count) images of \(images.shape)")
            }
            if let label = images.labels.first(where: { !(0..<episode.ways).contains($0) }) {
                throw bad("\(kind) label \(label) is outside 0..<\(episode.ways)")
            }
        }
    }
}
