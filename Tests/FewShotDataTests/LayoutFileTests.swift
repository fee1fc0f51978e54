import Foundation
import HDF5
import XCTest
@testable import FewShotData

final class LayoutFileTests: XCTestCase {
    private func smallDataset() -> FewShotDataset {
        let shape = ImageShape(channels: 3, height: 4, width: 5)
        func cls(_ name: String, _ count: Int, _ seed: Int) -> ImageClass {
            ImageClass(name: name, count: count, pixels: (0..<count * shape.count).map { UInt8(($0 * 7 + seed * 31) % 256) })
        }
        return FewShotDataset(name: "tiny", layout: "test", imageShape: shape, splits: [
            Split(name: "train", classes: (0..<12).map { cls("class \($0)", 3 + $0 % 2, $0) }),
            Split(name: "val", classes: [cls("v/0", 2, 100)]),
            Split(name: "test", classes: [cls("t0", 1, 200), cls("t1", 5, 201)]),
        ])
    }

    func testMetaBenchLayoutRoundTrip() throws {
        let folder = try makeTemporaryFolder(self)
        let path = folder + "/tiny.h5"
        let dataset = smallDataset()
        try MetaBenchLayout.write(dataset, to: path)
        // Only the finished file is left in the folder.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["tiny.h5"])
        for read in [try MetaBenchLayout.read(path), try DatasetLoader.load(path)] {
            XCTAssertEqual(read.name, "tiny")
            XCTAssertEqual(read.layout, "metabench-fewshot-v1")
            XCTAssertEqual(read.imageShape, dataset.imageShape)
            XCTAssertEqual(read.splits.map(\.name), ["train", "val", "test"])
            for (a, b) in zip(read.splits, dataset.splits) {
                XCTAssertEqual(a.classes.map(\.name), b.classes.map(\.name))
                XCTAssertEqual(a.classes.map(\.count), b.classes.map(\.count))
                XCTAssertEqual(a.classes.map(\.pixels), b.classes.map(\.pixels))
            }
        }
        let file = try File(path)
        XCTAssertEqual(try file.root().stringAttribute("metabench_layout"), "metabench-fewshot-v1")
        XCTAssertEqual(try file.group("train").members().first?.name, "000000")
        XCTAssertEqual(try file.dataset("train/000011").shape(), [4, 3, 4, 5])
        XCTAssertEqual(try file.dataset("train/000011").stringAttribute("class_name"), "class 11")

        // Options apply to this layout too.
        let resized = try DatasetLoader.load(path, options: LoadOptions(imageSize: 2, rotations: true))
        XCTAssertEqual(resized.imageShape, ImageShape(channels: 3, height: 2, width: 2))
        XCTAssertEqual(resized.splits[0].classes.count, 48)
    }

    func testMetaBenchLayoutRejectsInconsistentDataset() throws {
        let folder = try makeTemporaryFolder(self)
        var dataset = smallDataset()
        dataset.splits[0].classes[1].pixels.removeLast()
        XCTAssertEqual(thrownError(try MetaBenchLayout.write(dataset, to: folder + "/bad.h5")) as? DataError,
                       .badDataset(file: folder + "/bad.h5", dataset: "train/class 1", reason: "239 bytes for 4 images of 3×4×5"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad.h5"))
        XCTAssertEqual(thrownError(try MetaBenchLayout.write(smallDataset(), to: folder + "/no/such/x.h5")) as? DataError,
                       .missingPath(folder + "/no/such"))
    }

    func testMetaBenchLayoutReadErrors() throws {
        let folder = try makeTemporaryFolder(self)
        let plain = folder + "/plain.h5"
        do {
            let file = try File(plain, mode: .create)
            try file.root().setAttribute("metabench_layout", "something-else")
            try file.close()
        }
        XCTAssertEqual(thrownError(try MetaBenchLayout.read(plain)) as? DataError,
                       .unknownLayout(path: plain, reason: "metabench_layout is 'something-else', expected 'metabench-fewshot-v1'"))
        XCTAssertEqual(thrownError(try DatasetLoader.load(plain)) as? DataError,
                       .unknownLayout(path: plain, reason: "metabench_layout 'something-else' is not 'metabench-fewshot-v1'"))

        // A class dataset of the wrong rank.
        let wrong = folder + "/wrong.h5"
        do {
            let file = try File(wrong, mode: .create)
            try file.root().setAttribute("metabench_layout", "metabench-fewshot-v1")
            let ds = try file.root().createDataset("train/000000", shape: [2, 8, 8], values: [UInt8](repeating: 0, count: 128))
            try ds.setAttribute("class_name", "c")
            try file.close()
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(wrong)) as? DataError,
                       .badDataset(file: wrong, dataset: "train/000000", reason: "expected shape (images, channels, height, width), found (2, 8, 8)"))
    }

    private func episode(ways: Int, shots: Int, queries: Int, seed: UInt64) -> Episode {
        var rng = SeededGenerator(seed: seed)
        let shape = ImageShape(channels: 1, height: 3, width: 2)
        func images(_ perClass: Int) -> LabelledImages {
            let labels = (0..<ways).flatMap { Array(repeating: $0, count: perClass) }
            var pixels = (0..<labels.count * shape.count).map { _ in rng.nextNormal() }
            if !pixels.isEmpty { pixels[0] = .nan; pixels[pixels.count - 1] = -0.0 }
            return LabelledImages(shape: shape, pixels: pixels, labels: labels)
        }
        return Episode(ways: ways, shots: shots, queriesPerClass: queries, support: images(shots), query: images(queries),
                       classIndices: (0..<ways).map { $0 * 3 + Int(seed) })
    }

    func testEpisodeFileRoundTripIsBitExact() throws {
        let path = try makeTemporaryFolder(self) + "/episodes.h5"
        let episodes = [episode(ways: 5, shots: 1, queries: 3, seed: 1), episode(ways: 2, shots: 4, queries: 0, seed: 2),
                        episode(ways: 3, shots: 2, queries: 2, seed: 3)]
        try EpisodeFile.write(episodes, to: path)
        let read = try EpisodeFile.read(path)
        XCTAssertEqual(read.count, 3)
        for (a, b) in zip(read, episodes) {
            XCTAssertEqual(a.ways, b.ways); XCTAssertEqual(a.shots, b.shots); XCTAssertEqual(a.queriesPerClass, b.queriesPerClass)
            XCTAssertEqual(a.classIndices, b.classIndices)
            for (x, y) in [(a.support, b.support), (a.query, b.query)] {
                XCTAssertEqual(x.shape, y.shape)
                XCTAssertEqual(x.labels, y.labels)
                XCTAssertEqual(x.pixels.map(\.bitPattern), y.pixels.map(\.bitPattern))
            }
        }
        let file = try File(path)
        XCTAssertEqual(try file.root().stringAttribute("metabench_layout"), "metabench-episodes-v1")
        XCTAssertEqual(try file.group("episodes").members().map(\.name), ["000000", "000001", "000002"])
        XCTAssertEqual(try file.dataset("episodes/000000/support_images").shape(), [5, 1, 3, 2])
        XCTAssertEqual(try file.dataset("episodes/000000/support_labels").elementType(), .int64)
        XCTAssertEqual(try file.group("episodes/000000").intAttribute("queries"), 3)
        // An episode file is not a dataset.
        XCTAssertEqual(thrownError(try DatasetLoader.load(path)) as? DataError,
                       .unknownLayout(path: path, reason: "this is a file of fixed episodes (metabench-episodes-v1), not a dataset"))
        try EpisodeFile.write([], to: path)
        XCTAssertEqual(try EpisodeFile.read(path), [])
    }

    func testEpisodeFileValidation() throws {
        let folder = try makeTemporaryFolder(self)
        var bad = episode(ways: 3, shots: 1, queries: 1, seed: 4)
        bad.query.labels[2] = 3
        XCTAssertEqual(thrownError(try EpisodeFile.write([bad], to: folder + "/w.h5")) as? DataError,
                       .badDataset(file: folder + "/w.h5", dataset: "episodes/000000", reason: "query label 3 is outside 0..<3"))

        // Written by hand: a label out of range, then a labels count that does not match the images.
        let path = folder + "/hand.h5"
        func writeFile(supportLabels: [Int64], queryImages: Int = 3) throws {
            let file = try File(path, mode: .create)
            let root = try file.root()
            try root.setAttribute("metabench_layout", "metabench-episodes-v1")
            let group = try root.createGroup("episodes/000000")
            try group.setAttribute("ways", 3); try group.setAttribute("shots", 1); try group.setAttribute("queries", 1)
            try group.createDataset("support_images", shape: [3, 1, 2, 2], values: [Float](repeating: 0.5, count: 12))
            try group.createDataset("support_labels", shape: [supportLabels.count], values: supportLabels)
            try group.createDataset("query_images", shape: [queryImages, 1, 2, 2], values: [Float](repeating: 0.5, count: queryImages * 4))
            try group.createDataset("query_labels", shape: [3], values: [Int64(0), 1, 2])
            try file.close()
        }
        try writeFile(supportLabels: [0, 1, 2])
        XCTAssertEqual(try EpisodeFile.read(path).first?.classIndices, [0, 1, 2])
        try writeFile(supportLabels: [0, 7, 2])
        XCTAssertEqual(thrownError(try EpisodeFile.read(path)) as? DataError,
                       .badDataset(file: path, dataset: "episodes/000000", reason: "support label 7 is outside 0..<3"))
        try writeFile(supportLabels: [0, 1])
        XCTAssertEqual(thrownError(try EpisodeFile.read(path)) as? DataError,
                       .badDataset(file: path, dataset: "episodes/000000/support_labels",
                                   reason: "expected 3 labels (one per image), found shape [2]"))
        try writeFile(supportLabels: [0, 1, 2], queryImages: 3)
        XCTAssertNoThrow(try EpisodeFile.read(path))

        XCTAssertEqual(thrownError(try EpisodeFile.read(folder + "/missing.h5")) as? DataError, .missingPath(folder + "/missing.h5"))
        let notEpisodes = folder + "/dataset.h5"
        try MetaBenchLayout.write(smallDataset(), to: notEpisodes)
        XCTAssertEqual(thrownError(try EpisodeFile.read(notEpisodes)) as? DataError,
                       .unknownLayout(path: notEpisodes, reason: "not an episode file (no metabench_layout = \"metabench-episodes-v1\")"))
    }
}
