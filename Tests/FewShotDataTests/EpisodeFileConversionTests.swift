import Foundation
import HDF5
import XCTest
@testable import FewShotData

/// Episode files as a suite evaluates them (issue 11, point 4): uint8 or float32 images, resized by the
/// suite's `image_size` and normalised exactly as its dataset's; a shape the suite cannot use is a clear error.
final class EpisodeFileConversionTests: XCTestCase {
    /// One episode as another framework would write it with h5py: its own type for the images.
    struct StoredEpisode {
        var ways: Int
        var shots: Int
        var queries: Int
        var shape: [Int]  // C, H, W
        var support: Values
        var query: Values
        var supportLabels: [Int64]
        var queryLabels: [Int64]

        enum Values {
            case bytes([UInt8])
            case floats([Float])
        }

        /// An episode of `Episode`'s values stored as bytes (`Float(b) / 255` → `b`) or as they are.
        init(_ episode: Episode, bytes: Bool) {
            ways = episode.ways
            shots = episode.shots
            queries = episode.queriesPerClass
            shape = [episode.support.shape.channels, episode.support.shape.height, episode.support.shape.width]
            func values(_ pixels: [Float]) -> Values {
                bytes ? .bytes(pixels.map { UInt8(($0 * 255).rounded()) }) : .floats(pixels)
            }
            support = values(episode.support.pixels)
            query = values(episode.query.pixels)
            supportLabels = episode.support.labels.map(Int64.init)
            queryLabels = episode.query.labels.map(Int64.init)
        }
    }

    /// Writes the layout with the HDF5 library directly (no `EpisodeFile.write`), without class indices.
    func write(_ episodes: [StoredEpisode], to path: String) throws {
        let file = try File(path, mode: .create)
        let root = try file.root()
        try root.setAttribute("metabench_layout", "metabench-episodes-v1")
        try root.setAttribute("count", episodes.count)
        try root.createGroup("episodes")
        for (i, e) in episodes.enumerated() {
            let group = try root.createGroup("episodes/" + String(format: "%06d", i))
            try group.setAttribute("ways", e.ways)
            try group.setAttribute("shots", e.shots)
            try group.setAttribute("queries", e.queries)
            for (prefix, values, labels) in [("support", e.support, e.supportLabels), ("query", e.query, e.queryLabels)] {
                let shape = [labels.count] + e.shape
                switch values {
                case .bytes(let v): try group.createDataset("\(prefix)_images", shape: shape, values: v)
                case .floats(let v): try group.createDataset("\(prefix)_images", shape: shape, values: v)
                }
                try group.createDataset("\(prefix)_labels", shape: [labels.count], values: labels)
            }
        }
        try file.close()
    }

    /// Omniglot's test episodes at the stored 105×105, written as uint8, read by a suite with `image_size: 28`
    /// and a normalisation, are bit for bit the episodes that suite samples from its resized dataset — for
    /// every resize mode.
    func testUInt8ImagesAreResizedAndNormalisedAsTheDataset() throws {
        let folder = try makeTemporaryFolder(self)
        let omniglot = try SharedData.path("omniglot-small")
        let raw = try DatasetLoader.load(omniglot)
        XCTAssertEqual(raw.imageShape, ImageShape(channels: 1, height: 105, width: 105))
        let normalization = Normalization.meanStd(mean: [0.08], std: [0.27])
        let rawSampler = try EpisodeSampler(split: try raw.split(named: "test"), imageShape: raw.imageShape,
                                            settings: EpisodeSettings(ways: 5, shots: 1, queriesPerClass: 3), seed: 4)
        let path = folder + "/omniglot-5w1s.h5"
        try write((0..<3).map { StoredEpisode(rawSampler.episode($0), bytes: true) }, to: path)
        let summary = try EpisodeFile.summary(path)
        XCTAssertEqual(summary, EpisodeFileSummary(count: 3, imageShape: raw.imageShape, pixelType: .uint8,
                                                   shapes: [.init(ways: 5, shots: 1, queries: 3, episodes: 3)],
                                                   imageCount: 3 * 20))
        XCTAssertEqual(summary.description, "3 episodes of 5w1s3q (5-way 1-shot, 3 queries per class), uint8 1×105×105 images")
        for mode in ResizeMode.allCases {
            let resized = try DatasetLoader.load(omniglot, options: LoadOptions(imageSize: 28, resize: mode))
            let sampler = try EpisodeSampler(split: try resized.split(named: "test"), imageShape: resized.imageShape,
                                             settings: EpisodeSettings(ways: 5, shots: 1, queriesPerClass: 3,
                                                                       normalization: normalization), seed: 4)
            let read = try EpisodeFile.read(path, conversion: .init(imageShape: resized.imageShape, resize: mode,
                                                                     normalization: normalization))
            XCTAssertEqual(read.count, 3)
            for (i, episode) in read.enumerated() {
                var expected = sampler.episode(i)
                expected.classIndices = Array(0..<5)  // not in the file: labels stand for themselves
                XCTAssertEqual(episode, expected, "\(mode) episode \(i)")
            }
        }
        // Read as stored: bytes as b / 255, the raw sampler's values.
        XCTAssertEqual(try EpisodeFile.read(path).map(\.query.pixels), (0..<3).map { rawSampler.episode($0).query.pixels })
    }

    /// float32 images in [0, 1] at the suite's shape: normalised as the sampler normalises a dataset's floats.
    func testFloatImagesAreNormalisedAsTheDataset() throws {
        let folder = try makeTemporaryFolder(self)
        let split = Self.split()
        let shape = ImageShape(channels: 1, height: 6, width: 6)
        let plain = try EpisodeSampler(split: split, imageShape: shape,
                                       settings: EpisodeSettings(ways: 3, shots: 2, queriesPerClass: 2), seed: 1)
        let normalization = Normalization.meanStd(mean: [0.5], std: [0.25])
        let normalised = try EpisodeSampler(split: split, imageShape: shape,
                                            settings: EpisodeSettings(ways: 3, shots: 2, queriesPerClass: 2,
                                                                      normalization: normalization), seed: 1)
        let path = folder + "/floats.h5"
        try write((0..<2).map { StoredEpisode(plain.episode($0), bytes: false) }, to: path)
        let read = try EpisodeFile.read(path, conversion: .init(imageShape: shape, resize: nil, normalization: normalization))
        XCTAssertEqual(read.map(\.support), (0..<2).map { normalised.episode($0).support })
        XCTAssertEqual(read.map(\.query), (0..<2).map { normalised.episode($0).query })

        // EpisodeFile.write as uint8 stores the same bytes: the same episodes again.
        let bytes = folder + "/bytes.h5"
        try EpisodeFile.write((0..<2).map(plain.episode), to: bytes, pixelType: .uint8)
        XCTAssertEqual(try EpisodeFile.summary(bytes).pixelType, .uint8)
        XCTAssertEqual(try EpisodeFile.read(bytes, conversion: .init(imageShape: shape, resize: nil, normalization: normalization)),
                       (0..<2).map(normalised.episode))
        // A value that is no byte cannot be stored as one.
        var odd = plain.episode(0)
        odd.support.pixels[0] = 0.3
        XCTAssertEqual(thrownError(try EpisodeFile.write([odd], to: folder + "/odd.h5", pixelType: .uint8)) as? DataError,
                       .badDataset(file: folder + "/odd.h5", dataset: "episodes/000000",
                                   reason: "the value 0.3 is not a byte b / 255, so the episode cannot be stored as uint8; store float32"))
    }

    /// Episodes of several shapes in one file: the summary lists them, and each reads with its own shape.
    func testEpisodesOfSeveralShapes() throws {
        let folder = try makeTemporaryFolder(self)
        let split = Self.split()
        let shape = ImageShape(channels: 1, height: 6, width: 6)
        func sampler(_ ways: Int, _ shots: Int, _ queries: Int) throws -> EpisodeSampler {
            try EpisodeSampler(split: split, imageShape: shape,
                               settings: EpisodeSettings(ways: ways, shots: shots, queriesPerClass: queries), seed: 2)
        }
        let episodes = [try sampler(3, 1, 2).episode(0), try sampler(2, 3, 1).episode(0), try sampler(3, 1, 2).episode(1)]
        let path = folder + "/mixed.h5"
        try EpisodeFile.write(episodes, to: path)
        let summary = try EpisodeFile.summary(path)
        XCTAssertEqual(summary.shapes.map(\.name), ["3w1s2q", "2w3s1q"])
        XCTAssertEqual(summary.shapes.map(\.episodes), [2, 1])
        XCTAssertNil(summary.uniformShape)
        XCTAssertEqual(summary.ways, [3, 2])
        XCTAssertEqual(summary.description, "3 episodes: 2 of 3w1s2q, 1 of 2w3s1q; float32 1×6×6 images")
        XCTAssertEqual(try EpisodeFile.read(path, conversion: .init(imageShape: shape, resize: nil, normalization: .none)),
                       episodes)
    }

    /// Every image the suite cannot use is refused before a pixel is read, naming both shapes.
    func testShapesTheSuiteCannotUseAreErrors() throws {
        let folder = try makeTemporaryFolder(self)
        let split = Self.split()
        let shape = ImageShape(channels: 1, height: 6, width: 6)
        let episode = try EpisodeSampler(split: split, imageShape: shape,
                                         settings: EpisodeSettings(ways: 2, shots: 1, queriesPerClass: 1), seed: 3).episode(0)
        let floats = folder + "/floats.h5", bytes = folder + "/bytes.h5"
        try write([StoredEpisode(episode, bytes: false)], to: floats)
        try write([StoredEpisode(episode, bytes: true)], to: bytes)
        func error(_ path: String, _ conversion: EpisodeFile.Conversion) -> String? {
            (thrownError(try EpisodeFile.read(path, conversion: conversion)) as? DataError)?.description
        }
        let four = ImageShape(channels: 1, height: 4, width: 4)
        XCTAssertEqual(error(floats, .init(imageShape: four, resize: .area, normalization: .none)),
                       "\(floats): dataset 'episodes': its images are 1×6×6 (float32), but the suite's are 1×4×4: float32 images are used as stored; store uint8 images to have them resized by image_size, or store them at 4×4")
        XCTAssertEqual(error(bytes, .init(imageShape: four, resize: nil, normalization: .none)),
                       "\(bytes): dataset 'episodes': its images are 1×6×6 (uint8), but the suite's are 1×4×4: the suite has no image_size to resize them to")
        XCTAssertEqual(error(bytes, .init(imageShape: ImageShape(channels: 3, height: 6, width: 6), resize: .area, normalization: .none)),
                       "\(bytes): dataset 'episodes': its images are 1×6×6 (uint8), but the suite's are 3×6×6: the channels differ")
        // uint8 at another size is resized.
        XCTAssertEqual(try EpisodeFile.read(bytes, conversion: .init(imageShape: four, resize: .area, normalization: .none))
                        .first?.support.shape, four)

        // Normalised values are not pixels: refused rather than normalised twice.
        var normalised = StoredEpisode(episode, bytes: false)
        normalised.query = .floats(episode.query.pixels.map { ($0 - 0.5) / 0.25 })
        let twice = folder + "/normalised.h5"
        try write([normalised], to: twice)
        let message = error(twice, .init(imageShape: shape, resize: nil, normalization: .none))
        XCTAssertTrue(message?.contains("dataset 'episodes/000000/query_images': holds the value") ?? false, message ?? "no error")
        XCTAssertTrue(message?.contains("outside [0, 1]: float32 images are stored before normalisation") ?? false, message ?? "")

        // One file holds one image type.
        let mixed = folder + "/mixed.h5"
        try write([StoredEpisode(episode, bytes: false), StoredEpisode(episode, bytes: true)], to: mixed)
        XCTAssertEqual((thrownError(try EpisodeFile.summary(mixed)) as? DataError)?.description,
                       "\(mixed): dataset 'episodes/000001': images are uint8 1×6×6, but the first episode's are float32 1×6×6; one file holds one image type and shape")
        // Images of another type.
        let doubles = folder + "/doubles.h5"
        let file = try File(doubles, mode: .create)
        let root = try file.root()
        try root.setAttribute("metabench_layout", "metabench-episodes-v1")
        let group = try root.createGroup("episodes/000000")
        for (key, value) in [("ways", 1), ("shots", 1), ("queries", 1)] { try group.setAttribute(key, value) }
        for prefix in ["support", "query"] {
            try group.createDataset("\(prefix)_images", shape: [1, 1, 2, 2], values: [Double](repeating: 0.5, count: 4))
            try group.createDataset("\(prefix)_labels", shape: [1], values: [Int64(0)])
        }
        try file.close()
        XCTAssertEqual((thrownError(try EpisodeFile.summary(doubles)) as? DataError)?.description,
                       "\(doubles): dataset 'episodes/000000/support_images': holds float64, expected uint8 or float32 images")
        // Wrong image counts for the attributes.
        var short = StoredEpisode(episode, bytes: true)
        short.queries = 2
        let counts = folder + "/counts.h5"
        try write([short], to: counts)
        XCTAssertEqual((thrownError(try EpisodeFile.summary(counts)) as? DataError)?.description,
                       "\(counts): dataset 'episodes/000000/query_images': 2 images, expected ways × queries = 4")
    }

    /// Six 1×6×6 classes of ten images, bytes.
    static func split() -> Split {
        var rng = SeededGenerator(seed: 9)
        return Split(name: "test", classes: (0..<6).map { c in
            ImageClass(name: "c\(c)", count: 10, pixels: (0..<360).map { _ in UInt8(rng.nextInt(below: 256)) })
        })
    }
}
