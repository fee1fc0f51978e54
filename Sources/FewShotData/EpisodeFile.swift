import HDF5

/// A file of fixed episodes, so a published set of test episodes is evaluated exactly as given.
///
/// One HDF5 file: root attributes `metabench_layout = "metabench-episodes-v1"` and `count`; a group
/// `episodes/000000`, `episodes/000001`, … per episode with datasets `support_images` and `query_images`
/// (n, C, H, W), uint8 (0…255) or float32 (in [0, 1]) — one type and one image shape in the whole file —
/// int64 datasets `support_labels`, `query_labels` (in 0..<ways) and, optionally, `class_indices`, and int
/// attributes `ways`, `shots`, `queries` (queries per class). Episodes may differ in ways, shots and queries.
///
/// Images are pixels before normalisation, as a dataset holds them: a suite that evaluates the file
/// (`evaluation: {episodes_file: …}`) resizes uint8 images to its `image_size` and normalises them exactly
/// as it does its dataset's (`Conversion`). `write` stores float32 values that round-trip bit for bit.
public enum EpisodeFile {
    public static let layoutName = "metabench-episodes-v1"

    /// What a suite does to a file's images before the learners see them: the image shape of its dataset,
    /// the resizing of its `image_size` (nil: the suite does not resize, so stored images must already have
    /// that shape), and its normalisation. A float32 byte value `Float(b) / 255` and the uint8 byte `b`
    /// become the same value, as in the samplers.
    public struct Conversion: Sendable, Equatable {
        public var imageShape: ImageShape
        public var resize: ResizeMode?
        public var normalization: Normalization

        public init(imageShape: ImageShape, resize: ResizeMode?, normalization: Normalization) {
            self.imageShape = imageShape
            self.resize = resize
            self.normalization = normalization
        }
    }

    /// Writes `episodes` to `path` (through a temporary file renamed into place), images as float32 or as
    /// uint8 (each value must then be a byte `b` as `Float(b) / 255`, as episodes of a dataset held in bytes
    /// and sampled without normalisation are: a quarter of the size).
    public static func write(_ episodes: [Episode], to path: String,
                             pixelType: EpisodeFileSummary.PixelType = .float32) throws {
        for (index, episode) in episodes.enumerated() {
            try validate(episode, file: path, group: groupName(index))
            if pixelType == .uint8,
               let value = (episode.support.pixels + episode.query.pixels).first(where: { byte($0) == nil }) {
                throw DataError.badDataset(file: path, dataset: groupName(index),
                                           reason: "the value \(value) is not a byte b / 255, so the episode cannot be stored as uint8; store float32")
            }
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
                    let shape = [images.count, s.channels, s.height, s.width]
                    switch pixelType {
                    case .float32:
                        try group.createDataset("\(prefix)_images", shape: shape, values: images.pixels, gzipLevel: 4)
                    case .uint8:
                        try group.createDataset("\(prefix)_images", shape: shape,
                                                values: images.pixels.map { byte($0) ?? 0 }, gzipLevel: 4)
                    }
                    try group.createDataset("\(prefix)_labels", shape: [images.count], values: images.labels.map { Int64($0) })
                }
                try group.createDataset("class_indices", shape: [episode.classIndices.count],
                                        values: episode.classIndices.map { Int64($0) })
            }
        }
    }

    /// The byte `b` whose `Float(b) / 255` is `value`, if there is one.
    private static func byte(_ value: Float) -> UInt8? {
        guard value >= 0, value <= 1 else { return nil }
        let b = UInt8((value * 255).rounded())
        return Float(b) / 255 == value ? b : nil
    }

    /// Reads and validates the episodes in `path` as stored (labels in 0..<ways, shapes consistent): float32
    /// values as they are, a uint8 byte `b` as `Float(b) / 255`.
    public static func read(_ path: String) throws -> [Episode] {
        try read(path, conversion: nil)
    }

    /// Reads the episodes in `path` as a suite evaluates them: uint8 images resized as its dataset's, then
    /// every image normalised as its dataset's. A stored image shape the conversion cannot turn into
    /// `conversion.imageShape` is an error naming both shapes; so is a float32 value outside [0, 1] (images
    /// are stored before normalisation), and a file whose converted images exceed the memory budget.
    public static func read(_ path: String, conversion: Conversion?) throws -> [Episode] {
        let file = try LayoutIO.openHDF5(path)
        return try LayoutIO.mapHDF5Errors {
            let names = try episodeNames(file)
            var plan: ReadPlan?
            if let conversion {
                let summary = try summarize(file, names: names)
                try check(summary, against: conversion, file: path)
                plan = ReadPlan(conversion: conversion,
                                scaling: try PixelConversion.Scaling(conversion.normalization,
                                                                     channels: conversion.imageShape.channels))
            }
            return try names.map { try readEpisode(file, "episodes/\($0)", plan: plan) }
        }
    }

    /// What the file at `path` holds, from its attributes and dataset shapes (no pixels are read).
    public static func summary(_ path: String) throws -> EpisodeFileSummary {
        let file = try LayoutIO.openHDF5(path)
        return try LayoutIO.mapHDF5Errors { try summarize(file, names: try episodeNames(file)) }
    }

    /// Checks that a suite can convert the file's images (`read(_:conversion:)`) and hold them: the same
    /// checks, before any pixel is read.
    public static func check(_ summary: EpisodeFileSummary, against conversion: Conversion, file: String) throws {
        guard summary.count > 0 else {
            throw DataError.badDataset(file: file, dataset: "episodes", reason: "the file holds no episodes")
        }
        let stored = summary.imageShape, target = conversion.imageShape
        func mismatch(_ why: String) -> DataError {
            DataError.badDataset(file: file, dataset: "episodes",
                                 reason: "its images are \(stored) (\(summary.pixelType.rawValue)), but the suite's are \(target): \(why)")
        }
        guard stored.channels == target.channels else { throw mismatch("the channels differ") }
        if stored.height != target.height || stored.width != target.width {
            guard conversion.resize != nil else {
                throw mismatch("the suite has no image_size to resize them to")
            }
            guard summary.pixelType == .uint8 else {
                throw mismatch("float32 images are used as stored; store uint8 images to have them resized by image_size, or store them at \(target.height)×\(target.width)")
            }
        }
        let bytes = ReadLimits.product([summary.imageCount, target.count, MemoryLayout<Float>.size])
        guard let bytes, bytes <= ReadLimits.memoryBudget else {
            throw DataError.tooLarge(file: file, reason: "its \(summary.imageCount) images need "
                                     + "\(bytes.map(ReadLimits.byteCount) ?? "more bytes than can be addressed") as float32 \(target) images, more than "
                                     + ReadLimits.memoryBudgetDescription)
        }
    }

    private struct ReadPlan {
        var conversion: Conversion
        var scaling: PixelConversion.Scaling
    }

    private static func groupName(_ index: Int) -> String {
        let digits = String(index)
        return "episodes/" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// The names of the episode groups, sorted, after checking the layout attribute and `count`.
    private static func episodeNames(_ file: File) throws -> [String] {
        let root = try file.root()
        guard try root.hasAttribute("metabench_layout"), try root.stringAttribute("metabench_layout") == layoutName else {
            throw DataError.unknownLayout(path: file.path, reason: "not an episode file (no metabench_layout = \"\(layoutName)\")")
        }
        guard try root.exists("episodes") else { throw DataError.missingGroup(file: file.path, group: "episodes") }
        let names = try root.group("episodes").members().map(\.name).sorted()
        if try root.hasAttribute("count") {
            let count = try root.intAttribute("count")
            guard count == names.count else {
                throw DataError.badDataset(file: file.path, dataset: "episodes",
                                           reason: "the file says \(count) episodes but holds \(names.count)")
            }
        }
        return names
    }

    /// One episode group's attributes and image datasets, checked against each other.
    private struct Header {
        var ways: Int
        var shots: Int
        var queries: Int
        var imageShape: ImageShape
        var pixelType: EpisodeFileSummary.PixelType
        var supportCount: Int
        var queryCount: Int
    }

    private static func header(_ file: File, _ name: String) throws -> Header {
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
        guard ways > 0, shots > 0, queries >= 0 else {
            throw DataError.badDataset(file: file.path, dataset: name,
                                       reason: "ways \(ways), shots \(shots), queries \(queries): ways and shots must be positive")
        }
        var shapes: [(ImageShape, EpisodeFileSummary.PixelType, Int)] = []
        for prefix in ["support", "query"] {
            let path = "\(name)/\(prefix)_images"
            guard try file.exists(path) else { throw DataError.missingGroup(file: file.path, group: path) }
            let images = try file.dataset(path)
            let type = try images.elementType()
            let pixelType: EpisodeFileSummary.PixelType
            if type == .float32 {
                pixelType = .float32
            } else if type == .uint8 {
                pixelType = .uint8
            } else {
                throw DataError.badDataset(file: file.path, dataset: path, reason: "holds \(type), expected uint8 or float32 images")
            }
            let dims = try images.shape()
            guard dims.count == 4 else {
                throw DataError.badDataset(file: file.path, dataset: path, reason: "expected shape (n, C, H, W), found \(dims)")
            }
            let shape = ImageShape(channels: dims[1], height: dims[2], width: dims[3])
            try LayoutIO.checkImageSize(shape, file: file.path, dataset: path)
            let perClass = prefix == "support" ? shots : queries
            guard let expected = ReadLimits.product([ways, perClass]), dims[0] == expected else {
                throw DataError.badDataset(file: file.path, dataset: path,
                                           reason: "\(dims[0]) images, expected ways × \(prefix == "support" ? "shots" : "queries") = "
                                           + (ReadLimits.product([ways, perClass]).map(String.init) ?? "more than can be addressed"))
            }
            shapes.append((shape, pixelType, dims[0]))
        }
        guard shapes[0].0 == shapes[1].0, shapes[0].1 == shapes[1].1 else {
            throw DataError.badDataset(file: file.path, dataset: name,
                                       reason: "support images are \(shapes[0].1.rawValue) \(shapes[0].0) but query images are \(shapes[1].1.rawValue) \(shapes[1].0)")
        }
        return Header(ways: ways, shots: shots, queries: queries, imageShape: shapes[0].0, pixelType: shapes[0].1,
                      supportCount: shapes[0].2, queryCount: shapes[1].2)
    }

    private static func summarize(_ file: File, names: [String]) throws -> EpisodeFileSummary {
        var shapes: [EpisodeFileSummary.Shape] = []
        var first: Header?
        var images = 0
        for name in names {
            let path = "episodes/\(name)"
            let h = try header(file, path)
            if let first, first.imageShape != h.imageShape || first.pixelType != h.pixelType {
                throw DataError.badDataset(file: file.path, dataset: path,
                                           reason: "images are \(h.pixelType.rawValue) \(h.imageShape), but the first episode's are \(first.pixelType.rawValue) \(first.imageShape); one file holds one image type and shape")
            }
            if first == nil { first = h }
            guard let total = ReadLimits.sum([images, h.supportCount, h.queryCount]) else {
                throw DataError.tooLarge(file: file.path, reason: "more images than can be counted")
            }
            images = total
            if let i = shapes.firstIndex(where: { $0.ways == h.ways && $0.shots == h.shots && $0.queries == h.queries }) {
                shapes[i].episodes += 1
            } else {
                shapes.append(EpisodeFileSummary.Shape(ways: h.ways, shots: h.shots, queries: h.queries, episodes: 1))
            }
        }
        return EpisodeFileSummary(count: names.count, imageShape: first?.imageShape ?? ImageShape(channels: 0, height: 0, width: 0),
                                  pixelType: first?.pixelType ?? .float32, shapes: shapes, imageCount: images)
    }

    private static func readEpisode(_ file: File, _ name: String, plan: ReadPlan?) throws -> Episode {
        let h = try header(file, name)
        func images(_ prefix: String, count: Int) throws -> LabelledImages {
            let imagesPath = "\(name)/\(prefix)_images", labelsPath = "\(name)/\(prefix)_labels"
            guard try file.exists(labelsPath) else { throw DataError.missingGroup(file: file.path, group: labelsPath) }
            let labelSet = try file.dataset(labelsPath)
            let labelType = try labelSet.elementType()
            guard labelType.kind == .integer else {
                throw DataError.badDataset(file: file.path, dataset: labelsPath, reason: "holds \(labelType), expected int64 labels")
            }
            let labelDims = try labelSet.shape()
            guard labelDims == [count] else {
                throw DataError.badDataset(file: file.path, dataset: labelsPath,
                                           reason: "expected \(count) labels (one per image), found shape \(labelDims)")
            }
            let labels: [Int64] = try labelSet.read()
            let imageSet = try file.dataset(imagesPath)
            let shape = plan?.conversion.imageShape ?? h.imageShape
            let pixels: [Float]
            switch h.pixelType {
            case .uint8:
                let bytes: [UInt8] = try imageSet.read()
                var storage = PixelStorage.bytes(bytes)
                if let plan, let mode = plan.conversion.resize {
                    storage = ImageOps.resize(bytes, count: count, from: h.imageShape, toHeight: shape.height,
                                              width: shape.width, mode: mode)
                }
                pixels = convert(storage, count: count, shape: shape, scaling: plan?.scaling)
            case .float32:
                let values: [Float] = try imageSet.read()
                if plan != nil, let bad = values.first(where: { !($0 >= 0 && $0 <= 1) }) {
                    throw DataError.badDataset(file: file.path, dataset: imagesPath,
                                               reason: "holds the value \(bad), outside [0, 1]: float32 images are stored before normalisation, in [0, 1] (the suite's normalisation is applied on reading)")
                }
                pixels = plan.map { convert(.floats(values), count: count, shape: shape, scaling: $0.scaling) } ?? values
            }
            return LabelledImages(shape: shape, pixels: pixels, labels: labels.map { Int(clamping: $0) })
        }
        let support = try images("support", count: h.supportCount), query = try images("query", count: h.queryCount)
        var classIndices = Array(0..<h.ways)
        if try file.exists("\(name)/class_indices") {
            let stored: [Int64] = try file.dataset("\(name)/class_indices").read()
            classIndices = stored.map { Int(clamping: $0) }
        }
        let episode = Episode(ways: h.ways, shots: h.shots, queriesPerClass: h.queries, support: support, query: query,
                              classIndices: classIndices)
        try validate(episode, file: file.path, group: name)
        return episode
    }

    /// Images held as `storage` (`count` images of `shape`) as float NCHW values: through `scaling` (the
    /// samplers' arithmetic), or as stored (a byte `b` as `Float(b) / 255`) without one.
    private static func convert(_ storage: PixelStorage, count: Int, shape: ImageShape,
                                scaling: PixelConversion.Scaling?) -> [Float] {
        guard let scaling else {
            switch storage {
            case .bytes(let bytes): return bytes.map { Float($0) / 255 }
            case .floats(let values): return values
            }
        }
        let images = ImageClass(name: "", count: count, storage: storage)
        return PixelConversion.convert((0..<count).map { (images, $0) }, shape: shape, scaling: scaling)
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

/// What an episode file holds (`EpisodeFile.summary`): its episodes' shapes and its images' type and shape.
public struct EpisodeFileSummary: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum PixelType: String, Sendable, Codable {
        case uint8, float32
    }

    /// Episodes of one shape.
    public struct Shape: Sendable, Equatable, Codable {
        public var ways: Int
        public var shots: Int
        /// Queries per class.
        public var queries: Int
        public var episodes: Int

        public init(ways: Int, shots: Int, queries: Int, episodes: Int) {
            self.ways = ways
            self.shots = shots
            self.queries = queries
            self.episodes = episodes
        }

        /// `5w1s15q`.
        public var name: String { "\(ways)w\(shots)s\(queries)q" }
    }

    public var count: Int
    /// The images as stored (before any resizing).
    public var imageShape: ImageShape
    public var pixelType: PixelType
    /// The distinct episode shapes, in the order they first appear, with their episode counts.
    public var shapes: [Shape]
    /// Support and query images in all episodes.
    public var imageCount: Int

    public init(count: Int, imageShape: ImageShape, pixelType: PixelType, shapes: [Shape], imageCount: Int) {
        self.count = count
        self.imageShape = imageShape
        self.pixelType = pixelType
        self.shapes = shapes
        self.imageCount = imageCount
    }

    /// The shape every episode has, when they all have one.
    public var uniformShape: Shape? { shapes.count == 1 ? shapes[0] : nil }

    /// The ways of the episodes, in the order they first appear.
    public var ways: [Int] {
        var seen = Set<Int>()
        return shapes.map(\.ways).filter { seen.insert($0).inserted }
    }

    /// "600 episodes of 5w1s15q (5-way 1-shot, 15 queries per class), uint8 1×28×28 images", or with several
    /// shapes "600 episodes: 300 of 5w1s15q, 300 of 5w5s15q, …".
    public var description: String {
        let episodes = "\(count) episode\(count == 1 ? "" : "s")"
        let images = "\(pixelType.rawValue) \(imageShape) images"
        if let shape = uniformShape {
            return "\(episodes) of \(shape.name) (\(shape.ways)-way \(shape.shots)-shot, \(shape.queries) queries per class), \(images)"
        }
        return "\(episodes): " + shapes.map { "\($0.episodes) of \($0.name)" }.joined(separator: ", ") + "; \(images)"
    }
}
