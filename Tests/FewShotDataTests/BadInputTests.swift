import Foundation
import HDF5
import XCTest
@testable import FewShotData

/// Every user-controlled input that is wrong gives a clear error naming the problem, never a crash.
final class BadInputTests: XCTestCase {
    private func randomBytes(_ count: Int, to path: String) throws {
        var generator = SystemRandomNumberGenerator()
        try Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: path))
    }

    /// A torchmeta-Omniglot-like folder whose data.hdf5 holds `write`'s datasets.
    private func omniglotFolder(labels: Any, write: (File) throws -> Void) throws -> String {
        let folder = try makeTemporaryFolder(self)
        let file = try File(folder + "/data.hdf5", mode: .create)
        try write(file)
        try file.close()
        try writeJSON(labels, to: folder + "/train_labels.json")
        return folder
    }

    func testMissingPath() throws {
        let path = try makeTemporaryFolder(self) + "/nothing-here"
        let error = thrownError(try DatasetLoader.load(path)) as? DataError
        XCTAssertEqual(error, .missingPath(path))
        XCTAssertEqual(error?.description, "no such file or folder: \(path)")
    }

    func testUnknownLayoutInEmptyFolder() throws {
        let folder = try makeTemporaryFolder(self)
        guard case .unknownLayout(let path, let reason)? = thrownError(try DatasetLoader.load(folder)) as? DataError else {
            return XCTFail("expected unknownLayout")
        }
        XCTAssertEqual(path, folder)
        for looked in ["data.hdf5", "{split}_labels.json", "fine_names.json", "{split}_data.hdf5", "MetaBench .h5"] {
            XCTAssertTrue(reason.contains(looked), "the message should name \(looked): \(reason)")
        }
    }

    func testFileThatIsNotHDF5() throws {
        let folder = try makeTemporaryFolder(self)
        try randomBytes(5000, to: folder + "/random.h5")
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder + "/random.h5")) as? DataError,
                       .unknownLayout(path: folder + "/random.h5",
                                      reason: "not an HDF5 file (a file must be a MetaBench .h5 dataset; for torchmeta layouts pass the folder)"))
        // In a torchmeta folder.
        try randomBytes(5000, to: folder + "/data.hdf5")
        try writeJSON([["images_background", "A", "c"]], to: folder + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .hdf5("\(folder)/data.hdf5: not an HDF5 file (or truncated or damaged)"))
        XCTAssertEqual(thrownError(try MetaBenchLayout.read(folder + "/random.h5")) as? DataError,
                       .hdf5("\(folder)/random.h5: not an HDF5 file (or truncated or damaged)"))
        XCTAssertEqual(thrownError(try EpisodeFile.read(folder + "/random.h5")) as? DataError,
                       .hdf5("\(folder)/random.h5: not an HDF5 file (or truncated or damaged)"))
    }

    func testTruncatedHDF5File() throws {
        let folder = try makeTemporaryFolder(self)
        let source = try SharedData.path("layout-fixtures/miniimagenet")
        for split in ["train", "val", "test"] {
            try FileManager.default.copyItem(atPath: source + "/\(split)_labels.json", toPath: folder + "/\(split)_labels.json")
            let data = try Data(contentsOf: URL(fileURLWithPath: source + "/\(split)_data.hdf5"))
            try (split == "val" ? data.prefix(data.count / 2) : data).write(to: URL(fileURLWithPath: folder + "/\(split)_data.hdf5"))
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .hdf5("\(folder)/val_data.hdf5: not an HDF5 file (or truncated or damaged)"))

        // A truncated MetaBench file, and a truncated Omniglot data.hdf5.
        let h5 = folder + "/tiny.h5"
        let dataset = FewShotDataset(name: "t", layout: "x", imageShape: ImageShape(channels: 1, height: 8, width: 8),
                                     splits: [Split(name: "train", classes: [ImageClass(name: "a", count: 50, pixels: (0..<3200).map { UInt8($0 % 251) })])])
        try MetaBenchLayout.write(dataset, to: h5)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: h5))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: h5))
        XCTAssertEqual(thrownError(try DatasetLoader.load(h5)) as? DataError,
                       .unknownLayout(path: h5, reason: "not an HDF5 file (a file must be a MetaBench .h5 dataset; for torchmeta layouts pass the folder)"))
        XCTAssertEqual(thrownError(try MetaBenchLayout.read(h5)) as? DataError,
                       .hdf5("\(h5): not an HDF5 file (or truncated or damaged)"))

        let omniglot = try makeTemporaryFolder(self)
        let real = try Data(contentsOf: URL(fileURLWithPath: try SharedData.path("omniglot-small/data.hdf5")))
        try real.prefix(real.count / 2).write(to: URL(fileURLWithPath: omniglot + "/data.hdf5"))
        try FileManager.default.copyItem(atPath: try SharedData.path("omniglot-small/train_labels.json"), toPath: omniglot + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(omniglot)) as? DataError,
                       .hdf5("\(omniglot)/data.hdf5: not an HDF5 file (or truncated or damaged)"))
    }

    func testLabelsNamingAMissingGroup() throws {
        let folder = try omniglotFolder(labels: [["images_background", "A", "c1"], ["images_background", "A", "c2"]]) { file in
            try file.root().createDataset("images_background/A/c1", shape: [2, 6, 6], values: [UInt8](repeating: 255, count: 72))
        }
        let error = thrownError(try DatasetLoader.load(folder)) as? DataError
        XCTAssertEqual(error, .missingGroup(file: folder + "/data.hdf5", group: "images_background/A/c2"))
        XCTAssertEqual(error?.description, "\(folder)/data.hdf5: the labels name 'images_background/A/c2', which is not in the file")
    }

    func testMalformedLabels() throws {
        let write: (File) throws -> Void = { file in
            try file.root().createDataset("g/A/c1", shape: [2, 6, 6], values: [UInt8](repeating: 255, count: 72))
        }
        let pairs = try omniglotFolder(labels: [["g", "A"]], write: write)
        XCTAssertEqual(thrownError(try DatasetLoader.load(pairs)) as? DataError,
                       .invalidLabels(path: pairs + "/train_labels.json", reason: "entry 0 is not a list of 3 names ([group, alphabet, character])"))
        let object = try omniglotFolder(labels: ["g": 1], write: write)
        XCTAssertEqual(thrownError(try DatasetLoader.load(object)) as? DataError,
                       .invalidLabels(path: object + "/train_labels.json", reason: "expected a JSON list of [group, alphabet, character] lists"))
        let empty = try omniglotFolder(labels: [Any](), write: write)
        XCTAssertEqual(thrownError(try DatasetLoader.load(empty)) as? DataError,
                       .invalidLabels(path: empty + "/train_labels.json", reason: "the list names no classes"))
        let traversal = try omniglotFolder(labels: [["g", "..", "c1"]], write: write)
        XCTAssertEqual(thrownError(try DatasetLoader.load(traversal)) as? DataError,
                       .invalidLabels(path: traversal + "/train_labels.json", reason: "entry 0 has an unusable name '..'"))
        let notJSON = try omniglotFolder(labels: [], write: write)
        try Data("[[\"g\", \"A\"".utf8).write(to: URL(fileURLWithPath: notJSON + "/train_labels.json"))
        XCTAssertEqual(thrownError(try DatasetLoader.load(notJSON)) as? DataError,
                       .invalidLabels(path: notJSON + "/train_labels.json", reason: "not valid JSON"))
        // The vinyals_ prefix asked for, but only torchmeta's default labels are there.
        let noVinyals = try omniglotFolder(labels: [["g", "A", "c1"]], write: write)
        XCTAssertEqual(thrownError(try DatasetLoader.load(noVinyals, options: LoadOptions(labelsPrefix: "vinyals_"))) as? DataError,
                       .unknownLayout(path: noVinyals, reason: "data.hdf5 is there, but none of vinyals_train_labels.json, vinyals_val_labels.json, vinyals_test_labels.json"))
    }

    func testDatasetOfWrongRankOrType() throws {
        let labels = [["g", "A", "c1"]]
        let rank = try omniglotFolder(labels: labels) { file in
            try file.root().createDataset("g/A/c1", shape: [2, 36], values: [UInt8](repeating: 1, count: 72))
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(rank)) as? DataError,
                       .badDataset(file: rank + "/data.hdf5", dataset: "g/A/c1", reason: "expected shape (images, height, width), found (2, 36)"))
        let type = try omniglotFolder(labels: labels) { file in
            try file.root().createDataset("g/A/c1", shape: [2, 6, 6], values: [Float](repeating: 1, count: 72))
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(type)) as? DataError,
                       .badDataset(file: type + "/data.hdf5", dataset: "g/A/c1", reason: "holds float32, expected uint8 pixels"))
        let group = try omniglotFolder(labels: labels) { file in try file.createGroup("g/A/c1/inner") }
        XCTAssertEqual(thrownError(try DatasetLoader.load(group)) as? DataError,
                       .badDataset(file: group + "/data.hdf5", dataset: "g/A/c1", reason: "is a group, expected a dataset of images"))
        let mixed = try omniglotFolder(labels: [["g", "A", "c1"], ["g", "A", "c2"]]) { file in
            try file.root().createDataset("g/A/c1", shape: [1, 6, 6], values: [UInt8](repeating: 1, count: 36))
            try file.root().createDataset("g/A/c2", shape: [1, 5, 6], values: [UInt8](repeating: 1, count: 30))
        }
        XCTAssertEqual(thrownError(try DatasetLoader.load(mixed)) as? DataError,
                       .badDataset(file: mixed + "/data.hdf5", dataset: "g/A/c2", reason: "images are 1×5×6, but earlier classes have 1×6×6"))

        // miniImageNet-like: NHWC with 5 channels, and int64 pixels.
        let mini = try makeTemporaryFolder(self)
        do {
            let file = try File(mini + "/train_data.hdf5", mode: .create)
            try file.root().createDataset("datasets/n1", shape: [1, 4, 4, 5], values: [UInt8](repeating: 1, count: 80))
            try file.root().createDataset("datasets/n2", shape: [1, 4, 4, 3], values: [Int64](repeating: 1, count: 48))
            try file.close()
        }
        try writeJSON(["n1"], to: mini + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(mini)) as? DataError,
                       .badDataset(file: mini + "/train_data.hdf5", dataset: "datasets/n1",
                                   reason: "expected shape (images, height, width, 1 or 3 channels), found (1, 4, 4, 5)"))
        try writeJSON(["n2"], to: mini + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(mini)) as? DataError,
                       .badDataset(file: mini + "/train_data.hdf5", dataset: "datasets/n2", reason: "holds int64, expected uint8 pixels"))
        try FileManager.default.removeItem(atPath: mini + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(mini)) as? DataError, .missingPath(mini + "/train_labels.json"))
    }

    func testPNGThatFailsToDecode() throws {
        let folder = try makeTemporaryFolder(self)
        let good = try File(try SharedData.path("layout-fixtures/tieredimagenet/train_data.hdf5"))
            .dataset("datasets/train_class_00").readVariableLengthBytes()
        let truncatedPNG = Array(good[1].prefix(good[1].count / 2))
        var corrupt = good[2]
        for i in 40..<min(corrupt.count, 400) { corrupt[i] ^= 0x5A }
        do {
            let file = try File(folder + "/train_data.hdf5", mode: .create)
            try file.root().createVariableLengthDataset("datasets/a", values: [good[0], truncatedPNG])
            try file.root().createVariableLengthDataset("datasets/b", values: [good[0], corrupt])
            try file.root().createVariableLengthDataset("datasets/c", values: [[1, 2, 3]])
            try file.close()
        }
        for (name, index) in [("a", 1), ("b", 1), ("c", 0)] {
            try writeJSON([name], to: folder + "/train_labels.json")
            guard case .imageDecoding(let file, let dataset, let reason)? = thrownError(try DatasetLoader.load(folder)) as? DataError else {
                XCTFail("expected imageDecoding for \(name)"); continue
            }
            XCTAssertEqual(file, folder + "/train_data.hdf5")
            XCTAssertEqual(dataset, "datasets/\(name)")
            XCTAssertTrue(reason.hasPrefix("image \(index): "), reason)
        }
        XCTAssertEqual((thrownError(try DatasetLoader.load(folder)) as? DataError)?.description,
                       "\(folder)/train_data.hdf5: cannot decode an image of 'datasets/c': image 0: not a PNG (3 bytes without the PNG signature)")
    }

    func testInvalidOptions() throws {
        let path = try SharedData.path("layout-fixtures/cifar100")
        XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 0))) as? DataError,
                       .invalidOptions("image_size 0 is not in 1...4096"))
    }
}
