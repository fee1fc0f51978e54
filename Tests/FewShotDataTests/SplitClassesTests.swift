import Foundation
import HDF5
import XCTest
@testable import FewShotData

/// A class listed twice in a split, or listed in two splits, is an error naming the class and the files,
/// in every layout (before, both loaded: a repeated class gets two labels in one episode, and a class seen
/// in training and testing measures memory, not few-shot learning).
final class SplitClassesTests: XCTestCase {
    /// A copy of a shipped fixture folder, to edit.
    private func copy(_ fixture: String) throws -> String {
        let folder = try makeTemporaryFolder(self) + "/" + URL(fileURLWithPath: fixture).lastPathComponent
        try FileManager.default.copyItem(atPath: try SharedData.path(fixture), toPath: folder)
        return folder
    }

    private func json(_ path: String) throws -> [Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [Any])
    }

    func testOmniglot() throws {
        let folder = try makeTemporaryFolder(self)
        do {
            let file = try File(folder + "/data.hdf5", mode: .create)
            for name in ["c1", "c2"] {
                try file.root().createDataset("g/A/\(name)", shape: [2, 6, 6], values: [UInt8](repeating: 255, count: 72))
            }
            try file.root().createDataset("h/A/c1", shape: [2, 6, 6], values: [UInt8](repeating: 255, count: 72))
            try file.close()
        }
        try writeJSON([["g", "A", "c1"], ["g", "A", "c2"], ["g", "A", "c1"]], to: folder + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .invalidLabels(path: folder + "/train_labels.json", reason: "class 'A/c1' is listed twice in split 'train' (g/A/c1 and g/A/c1)"))
        // The same class name from another group is the same class.
        try writeJSON([["g", "A", "c1"], ["h", "A", "c1"]], to: folder + "/train_labels.json")
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .invalidLabels(path: folder + "/train_labels.json", reason: "class 'A/c1' is listed twice in split 'train' (g/A/c1 and h/A/c1)"))
        try writeJSON([["g", "A", "c1"], ["g", "A", "c2"]], to: folder + "/train_labels.json")
        try writeJSON([["g", "A", "c2"]], to: folder + "/test_labels.json")
        let error = thrownError(try DatasetLoader.load(folder)) as? DataError
        XCTAssertEqual(error, .classInTwoSplits(className: "A/c2", splits: ["train", "test"],
                                                files: [folder + "/train_labels.json", folder + "/test_labels.json"]))
        XCTAssertEqual(error?.description, "class 'A/c2' is in both split 'train' (\(folder)/train_labels.json) and 'test' "
                       + "(\(folder)/test_labels.json); a class must belong to one split only")
        try writeJSON([["g", "A", "c1"]], to: folder + "/train_labels.json")
        XCTAssertEqual(try DatasetLoader.load(folder).splits.map(\.classes.count), [1, 1])
    }

    func testMiniImageNetAndTieredImageNet() throws {
        for fixture in ["layout-fixtures/miniimagenet", "layout-fixtures/tieredimagenet"] {
            let folder = try copy(fixture)
            let train = try json(folder + "/train_labels.json"), test = try json(folder + "/test_labels.json")
            let first = try XCTUnwrap(train[0] as? String)
            try writeJSON(test + [first], to: folder + "/test_labels.json")
            XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                           .classInTwoSplits(className: first, splits: ["train", "test"],
                                             files: [folder + "/train_labels.json", folder + "/test_labels.json"]), fixture)
            try writeJSON(test, to: folder + "/test_labels.json")
            try writeJSON(train + [train[2]], to: folder + "/train_labels.json")
            XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                           .invalidLabels(path: folder + "/train_labels.json",
                                          reason: "class '\(train[2])' is listed twice in split 'train' (entry 2 and entry \(train.count))"), fixture)
        }
    }

    func testCIFAR() throws {
        let root = try copy("layout-fixtures/cifar100")
        for variant in ["cifar-fs", "fc100"] {
            let labels = root + "/" + variant
            let train = try json(labels + "/train_labels.json"), val = try json(labels + "/val_labels.json")
            let pair = try XCTUnwrap(train[1] as? [String])
            try writeJSON(val + [pair], to: labels + "/val_labels.json")
            XCTAssertEqual(thrownError(try DatasetLoader.load(root, options: LoadOptions(variant: variant))) as? DataError,
                           .classInTwoSplits(className: pair[1], splits: ["train", "val"],
                                             files: [labels + "/train_labels.json", labels + "/val_labels.json"]), variant)
            try writeJSON([val[0], val[0]], to: labels + "/val_labels.json")
            let again = try XCTUnwrap(val[0] as? [String])
            XCTAssertEqual(thrownError(try DatasetLoader.load(root, options: LoadOptions(variant: variant))) as? DataError,
                           .invalidLabels(path: labels + "/val_labels.json",
                                          reason: "class '\(again[1])' is listed twice in split 'val' (\(again[0])/\(again[1]) and \(again[0])/\(again[1]))"),
                           variant)
        }
    }

    func testMetaBenchLayout() throws {
        let folder = try makeTemporaryFolder(self)
        func write(_ splits: [(String, [String])], to path: String) throws {
            let shape = ImageShape(channels: 1, height: 2, width: 2)
            try MetaBenchLayout.write(FewShotDataset(name: "d", layout: "x", imageShape: shape, splits: splits.map { split in
                Split(name: split.0, classes: split.1.map { ImageClass(name: $0, count: 1, pixels: [1, 2, 3, 4]) })
            }), to: path)
        }
        let repeated = folder + "/repeated.h5"
        try write([("train", ["x", "y", "x"])], to: repeated)
        XCTAssertEqual(thrownError(try DatasetLoader.load(repeated)) as? DataError,
                       .invalidLabels(path: repeated, reason: "class 'x' is listed twice in split 'train' (dataset /train/000000 and dataset /train/000002)"))
        let shared = folder + "/shared.h5"
        try write([("train", ["x", "y"]), ("val", ["z"]), ("test", ["y"])], to: shared)
        XCTAssertEqual(thrownError(try MetaBenchLayout.read(shared)) as? DataError,
                       .classInTwoSplits(className: "y", splits: ["train", "test"], files: [shared, shared]))
        let fine = folder + "/fine.h5"
        try write([("train", ["x", "y"]), ("test", ["z"])], to: fine)
        XCTAssertEqual(try DatasetLoader.load(fine).splits.map(\.classes.count), [2, 1])
    }

    func testShippedDatasetsHaveDistinctClasses() throws {
        // The check accepts what ships (the loaders would throw otherwise), and the embedded dataset.
        XCTAssertEqual(try DatasetLoader.load(try SharedData.path("layout-fixtures/tieredimagenet")).splits.count, 3)
        let embedded = EmbeddedDatasetTests.dataset
        XCTAssertNoThrow(try SplitClasses.checkDistinct(embedded.splits.map { SplitClasses(split: $0.name, source: "embedded", names: $0.classes.map(\.name)) }))
    }
}
