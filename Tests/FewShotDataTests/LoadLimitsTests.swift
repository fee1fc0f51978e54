import Foundation
import XCTest
@testable import FewShotData
@testable import HDF5

/// Sizes that come from user input — `image_size`, rotations, labels files, episode settings, the numbers
/// stored in MetaBench's files — are checked before anything is allocated from them.
final class LoadLimitsTests: XCTestCase {
    private func withMemoryBudget<T>(_ bytes: Int, _ body: () throws -> T) rethrows -> T {
        let saved = ReadLimits.memoryBudget
        ReadLimits.memoryBudget = bytes
        defer { ReadLimits.memoryBudget = saved }
        return try body()
    }

    func testImageSizeWithinBoundsButBeyondTheMemoryBudget() throws {
        let path = try SharedData.path("layout-fixtures/cifar100")
        try withMemoryBudget(100 << 20) {
            // 288 images × 3 channels × 4096² = 13.5 GiB as bytes, 54 GiB as floats (the default resize, area).
            XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 4096, resize: .areaUInt8))) as? DataError,
                           .invalidOptions("image_size 4096: 288 images of 3 channel(s) at 4096×4096 need 13.5 GiB, "
                                           + "more than the memory budget of 100.0 MiB"))
            XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 4096))) as? DataError,
                           .invalidOptions("image_size 4096: 288 images of 3 channel(s) at 4096×4096 as 4-byte floats (resize area) "
                                           + "need 54.0 GiB, more than the memory budget of 100.0 MiB"))
            XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 512, resize: .areaUInt8, rotations: true))) as? DataError,
                           .invalidOptions("image_size 512: 288 images of 3 channel(s) at 512×512 with rotations need 864.0 MiB, "
                                           + "more than the memory budget of 100.0 MiB"))
            XCTAssertEqual(try DatasetLoader.load(path, options: LoadOptions(imageSize: 64)).imageShape,
                           ImageShape(channels: 3, height: 64, width: 64))
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 4097))) as? DataError,
                       .invalidOptions("image_size 4097 is not in 1...4096"))
        XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: -1))) as? DataError,
                       .invalidOptions("image_size -1 is not in 1...4096"))
    }

    func testRotationsBeyondTheMemoryBudget() throws {
        let path = try SharedData.path("layout-fixtures/cifar100")
        try withMemoryBudget(1 << 20) {
            // 288 × 3×32×32 = 864 KiB read; four times that with rotations.
            XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(rotations: true))) as? DataError,
                           .invalidOptions("rotations: 288 images of 3×32×32 and their three rotations need 3.4 MiB, "
                                           + "more than the memory budget of 1.0 MiB"))
        }
    }

    func testDatasetBeyondTheMemoryBudget() throws {
        let path = try SharedData.path("layout-fixtures/miniimagenet")
        try withMemoryBudget(500_000) {
            // Classes of 12 × 84×84×3 = 254 016 bytes: the second one passes the budget.
            XCTAssertEqual(thrownError(try DatasetLoader.load(path)) as? DataError,
                           .tooLarge(file: path + "/train_data.hdf5", reason: "dataset 'datasets/n10007919': the classes read up to it need "
                                     + "496.1 KiB, more than the memory budget of 488.3 KiB"))
        }
        let tiered = try SharedData.path("layout-fixtures/tieredimagenet")
        try withMemoryBudget(300_000) {
            guard case .tooLarge(let file, let reason)? = thrownError(try DatasetLoader.load(tiered)) as? DataError else {
                return XCTFail("expected tooLarge")
            }
            XCTAssertEqual(file, tiered + "/train_data.hdf5")
            XCTAssertTrue(reason.hasPrefix("dataset 'datasets/train_class_01': the classes read up to it need 413.4 KiB"), reason)
        }
    }

    func testHugeLabelsFileIsRefusedUnread() throws {
        let folder = try makeTemporaryFolder(self)
        let file = try File(folder + "/data.hdf5", mode: .create)
        try file.root().createDataset("g/A/c1", shape: [1, 4, 4], values: [UInt8](repeating: 255, count: 16))
        try file.close()
        let labels = folder + "/train_labels.json"
        _ = FileManager.default.createFile(atPath: labels, contents: Data("[".utf8))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: labels))
        try handle.truncate(atOffset: UInt64(LayoutIO.maxLabelsFileBytes + (1 << 20)))   // sparse: nothing written
        try handle.close()
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .invalidLabels(path: labels, reason: "the file holds 65.0 MiB, more than the 64.0 MiB a labels file may have"))
    }

    func testShotsPlusQueriesOverflowIsNotEnoughImages() throws {
        let split = Split(name: "train", classes: (0..<3).map { ImageClass(name: "c\($0)", count: 2, pixels: [UInt8](repeating: 0, count: 8)) })
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        for settings in [EpisodeSettings(ways: 2, shots: .max, queriesPerClass: 1), EpisodeSettings(ways: 2, shots: 1, queriesPerClass: .max)] {
            XCTAssertEqual(thrownError(try EpisodeSampler(split: split, imageShape: shape, settings: settings, seed: 1)) as? DataError,
                           .notEnoughImages(split: "train", className: "c0", needed: .max, available: 2))
        }
        // An image shape whose size overflows.
        XCTAssertEqual(thrownError(try ClassificationSampler(split: split, imageShape: ImageShape(channels: 1 << 31, height: 1 << 31, width: 4), seed: 1)) as? DataError,
                       .invalidEpisodeSettings("image shape 2147483648×2147483648×4 has more values than can be addressed"))
    }

    func testEpisodeFileWithHugeWaysIsAnError() throws {
        let path = try makeTemporaryFolder(self) + "/episodes.h5"
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        let episode = Episode(ways: 2, shots: 1, queriesPerClass: 1,
                              support: LabelledImages(shape: shape, pixels: [Float](repeating: 0.5, count: 8), labels: [0, 1]),
                              query: LabelledImages(shape: shape, pixels: [Float](repeating: 0.5, count: 8), labels: [1, 0]),
                              classIndices: [3, 4])
        try EpisodeFile.write([episode], to: path)
        XCTAssertEqual(try EpisodeFile.read(path), [episode])
        do {
            let file = try File(path, mode: .readWrite)
            let group = try file.group("episodes/000000")
            try group.setAttribute("ways", 1 << 60)
            try file.close()
        }
        XCTAssertEqual(thrownError(try EpisodeFile.read(path)) as? DataError,
                       .badDataset(file: path, dataset: "episodes/000000/support_images", reason: "2 images, expected ways × shots = 1152921504606846976"))
        do {
            let file = try File(path, mode: .readWrite)
            let group = try file.group("episodes/000000")
            try group.setAttribute("ways", 2)
            try group.setAttribute("shots", 1 << 62)
            try file.close()
        }
        XCTAssertEqual(thrownError(try EpisodeFile.read(path)) as? DataError,
                       .badDataset(file: path, dataset: "episodes/000000/support_images", reason: "2 images, expected ways × shots = more than can be addressed"))
    }

    func testMetaBenchImageShapeAttributesAreChecked() throws {
        let path = try makeTemporaryFolder(self) + "/empty.h5"
        let file = try File(path, mode: .create)
        let root = try file.root()
        try root.setAttribute("metabench_layout", "metabench-fewshot-v1")
        try root.setAttribute("channels", 1 << 40)
        try root.setAttribute("height", 1 << 40)
        try root.setAttribute("width", 3)
        try file.close()
        XCTAssertEqual(thrownError(try DatasetLoader.load(path)) as? DataError,
                       .badDataset(file: path, dataset: "/", reason: "images of 1099511627776×1099511627776×3 are larger than the limit of 268435456 values per image"))
    }
}
