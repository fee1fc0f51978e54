import Foundation
import XCTest
@testable import FewShotData

final class ReaderTests: XCTestCase {
    func testOmniglotSmall() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("omniglot-small"))
        XCTAssertEqual(dataset.layout, "torchmeta-omniglot")
        XCTAssertEqual(dataset.name, "omniglot")
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 1, height: 105, width: 105))
        XCTAssertEqual(dataset.splits.map(\.name), ["train", "test"])
        XCTAssertEqual(dataset.splits.map(\.classes.count), [183, 59])
        let train = try dataset.split(named: "train"), test = try dataset.split(named: "test")
        XCTAssertEqual(train.imagesPerClass, 20...20)
        XCTAssertEqual(test.imagesPerClass, 20...20)
        XCTAssertEqual(train.classes[0].name, "Balinese/character01")
        XCTAssertEqual(test.classes.last?.name, "Tagalog/character17")
        // Data facts computed once with h5py.
        let first = train.classes[0]
        XCTAssertEqual(first.pixels.count, 20 * 105 * 105)
        XCTAssertEqual(sum(first.pixels), 5_012_790)
        XCTAssertEqual(sum(first.pixels[0..<105 * 105]), 224_655)
        XCTAssertEqual(first.pixels[29 * 105 + 64], 255)
        XCTAssertEqual(first.pixels[50 * 105 + 50], 255)
        XCTAssertEqual(first.pixels[3 * 105 * 105 + 60 * 105 + 40], 0)
        XCTAssertEqual(Set(first.pixels), [0, 255])
        XCTAssertEqual(sum(test.classes[58].pixels), 4_907_985)
        XCTAssertEqual(dataset.splits.flatMap(\.classes).reduce(0) { $0 + sum($1.pixels) }, 1_096_072_620)
    }

    func testOmniglotResizedTo28() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("omniglot-small"), options: LoadOptions(imageSize: 28, resize: .areaUInt8))
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 1, height: 28, width: 28))
        let cls = try dataset.split(named: "train").classes[0]
        XCTAssertEqual(cls.count, 20)
        XCTAssertEqual(cls.pixels.count, 20 * 28 * 28)
        // Area averaging keeps the mean intensity (20.377 at 105×105 for the first image).
        let image = Array(cls.pixels[0..<28 * 28])
        let mean = Double(sum(image)) / Double(28 * 28)
        XCTAssertEqual(mean, 20.3769, accuracy: 0.5)
        // Antialiased: grey levels between stroke and paper appear.
        XCTAssertGreaterThan(Set(image).count, 20)
        // Exact area averages computed independently with numpy (each pixel repeated 4×4 to 420×420, then
        // means of 15×15 blocks, rounded half up), rows 8..<12, columns 16..<20 (±1 for float rounding).
        let pil: [[Int]] = [[119, 255, 255, 219], [53, 239, 207, 194], [0, 68, 250, 144], [0, 0, 167, 205]]
        for (r, row) in pil.enumerated() {
            for (c, expected) in row.enumerated() {
                XCTAssertEqual(Int(image[(8 + r) * 28 + 16 + c]), expected, accuracy: 1, "pixel (\(8 + r), \(16 + c))")
            }
        }
        XCTAssertEqual(Double(sum(image)), 15_968, accuracy: 10)
        XCTAssertEqual(Double(sum(cls.pixels)), 356_483, accuracy: 50)
    }

    func testOmniglotRotations() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("omniglot-small"), options: LoadOptions(imageSize: 28, resize: .areaUInt8, rotations: true))
        let train = try dataset.split(named: "train")
        XCTAssertEqual(train.classes.count, 4 * 183)
        XCTAssertEqual(try dataset.split(named: "test").classes.count, 4 * 59)
        XCTAssertEqual(train.classes[183].name, "Balinese/character01/rot90")
        XCTAssertEqual(train.classes[366].name, "Balinese/character01/rot180")
        XCTAssertEqual(train.classes[549].name, "Balinese/character01/rot270")
        let shape = dataset.imageShape
        let original = train.classes[0], rot90 = train.classes[183], rot180 = train.classes[366], rot270 = train.classes[549]
        XCTAssertEqual(ImageOps.rotate(rot90.pixels, count: 20, shape: shape, quarterTurns: 1), rot180.pixels)
        XCTAssertEqual(ImageOps.rotate(rot180.pixels, count: 20, shape: shape, quarterTurns: 1), rot270.pixels)
        XCTAssertEqual(ImageOps.rotate(rot270.pixels, count: 20, shape: shape, quarterTurns: 1), original.pixels)
        XCTAssertNotEqual(rot90.pixels, original.pixels)
        XCTAssertEqual(sum(rot90.pixels), sum(original.pixels))
        // Counter-clockwise: the top-right pixel moves to the top-left.
        XCTAssertEqual(rot90.pixels[0], original.pixels[27])
    }

    func testRotateSmallImage() {
        // 2×2 image [[1, 2], [3, 4]] turned a quarter counter-clockwise is [[2, 4], [1, 3]].
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        XCTAssertEqual(ImageOps.rotate([1, 2, 3, 4], count: 1, shape: shape, quarterTurns: 1), [2, 4, 1, 3])
        XCTAssertEqual(ImageOps.rotate([1, 2, 3, 4], count: 1, shape: shape, quarterTurns: 2), [4, 3, 2, 1])
        XCTAssertEqual(ImageOps.rotate([1, 2, 3, 4], count: 1, shape: shape, quarterTurns: 3), [3, 1, 4, 2])
    }

    func testAreaResize() {
        // 4×4 → 2×2 averages 2×2 blocks; 3×3 → 2×2 weighs partial pixels.
        let shape = ImageShape(channels: 1, height: 4, width: 4)
        let pixels: [UInt8] = [0, 4, 8, 8, 4, 0, 8, 8, 100, 100, 255, 255, 100, 100, 255, 255]
        XCTAssertEqual(ImageOps.resize(pixels, count: 1, from: shape, toHeight: 2, width: 2), [2, 8, 100, 255])
        let three = ImageShape(channels: 1, height: 3, width: 3)
        // Output (0,0) covers pixel (0,0) fully, (0,1) and (1,0) half, (1,1) a quarter: (9 + 0 + 0 + 0) / 2.25 = 4.
        XCTAssertEqual(ImageOps.resize([9, 0, 0, 0, 0, 0, 0, 0, 0], count: 1, from: three, toHeight: 2, width: 2), [4, 0, 0, 0])
    }

    func testMiniImageNetFixture() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("layout-fixtures/miniimagenet"))
        XCTAssertEqual(dataset.layout, "torchmeta-miniimagenet")
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 3, height: 84, width: 84))
        XCTAssertEqual(dataset.splits.map(\.name), ["train", "val", "test"])
        XCTAssertEqual(dataset.splits.map(\.classes.count), [8, 5, 5])
        XCTAssertEqual(dataset.splits.map(\.imagesPerClass), [12...12, 12...12, 12...12])
        let cls = try dataset.split(named: "train").classes[0]
        XCTAssertEqual(cls.name, "n10000000")
        XCTAssertEqual(rgb(cls, image: 0, y: 0, x: 0, size: 84), [244, 156, 124])
        XCTAssertEqual(rgb(cls, image: 1, y: 10, x: 20, size: 84), [255, 170, 194])
        XCTAssertEqual(rgb(cls, image: 11, y: 83, x: 83, size: 84), [157, 26, 2])
        XCTAssertEqual(sum(cls.pixels), 35_173_110)
        let val = try dataset.split(named: "val").classes[0], test = try dataset.split(named: "test").classes[0]
        XCTAssertEqual(val.name, "n10063352")
        XCTAssertEqual(rgb(val, image: 0, y: 0, x: 0, size: 84), [44, 255, 220])
        XCTAssertEqual(sum(val.pixels), 34_187_470)
        XCTAssertEqual(rgb(test, image: 1, y: 10, x: 20, size: 84), [0, 14, 7])
        XCTAssertEqual(sum(test.pixels), 39_633_300)
    }

    func testTieredImageNetFixtureDecodesPNGs() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("layout-fixtures/tieredimagenet"))
        XCTAssertEqual(dataset.layout, "torchmeta-tieredimagenet")
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 3, height: 84, width: 84))
        XCTAssertEqual(dataset.splits.map(\.name), ["train", "val", "test"])
        XCTAssertEqual(dataset.splits.map(\.classes.count), [8, 5, 5])
        XCTAssertEqual(dataset.splits.map(\.imagesPerClass), [10...10, 10...10, 10...10])
        let cls = try dataset.split(named: "train").classes[0]
        XCTAssertEqual(cls.name, "train_class_00")
        // PIL's decoding of the first PNG.
        XCTAssertEqual(rgb(cls, image: 0, y: 0, x: 0, size: 84), [114, 111, 170])
        XCTAssertEqual(rgb(cls, image: 0, y: 10, x: 20, size: 84), [168, 121, 189])
        XCTAssertEqual(sum(cls.pixels[0..<3 * 84 * 84]), 2_448_810)
    }

    func testCIFARFSAndFC100Fixtures() throws {
        let root = try SharedData.path("layout-fixtures/cifar100")
        let fs = try DatasetLoader.load(root)
        XCTAssertEqual(fs.layout, "torchmeta-cifar-fs")
        XCTAssertEqual(fs.imageShape, ImageShape(channels: 3, height: 32, width: 32))
        XCTAssertEqual(fs.splits.map(\.classes.count), [12, 6, 6])
        let fsTest = try fs.split(named: "test").classes[0]
        XCTAssertEqual(fsTest.name, "fine_4_2")
        XCTAssertEqual(rgb(fsTest, image: 0, y: 0, x: 0, size: 32), [106, 183, 0])
        XCTAssertEqual(rgb(fsTest, image: 5, y: 31, x: 7, size: 32), [64, 136, 61])
        XCTAssertEqual(sum(fsTest.pixels), 4_641_414)

        let fc = try DatasetLoader.load(root, options: LoadOptions(variant: "fc100"))
        XCTAssertEqual(fc.layout, "torchmeta-fc100")
        XCTAssertEqual(fc.splits.map(\.classes.count), [16, 4, 4])
        let fcVal = try fc.split(named: "val").classes[2]
        XCTAssertEqual(fcVal.name, "fine_4_2")
        XCTAssertEqual(fcVal.pixels, fsTest.pixels)

        // A path to the variant folder itself.
        XCTAssertEqual(try DatasetLoader.load(root + "/fc100").layout, "torchmeta-fc100")
        XCTAssertEqual(try DatasetLoader.load(root + "/cifar-fs").splits.map(\.classes.count), [12, 6, 6])
        XCTAssertEqual((thrownError(try DatasetLoader.load(root + "/fc100", options: LoadOptions(variant: "cifar-fs"))) as? DataError),
                       .invalidOptions("the path is the 'fc100' folder, but the variant asked for is 'cifar-fs'"))
        XCTAssertEqual((thrownError(try DatasetLoader.load(root, options: LoadOptions(variant: "cifar-10"))) as? DataError),
                       .invalidOptions("unknown CIFAR-100 variant 'cifar-10' (expected cifar-fs or fc100)"))
    }

    func testResizeAndRotateColourImages() throws {
        let dataset = try DatasetLoader.load(try SharedData.path("layout-fixtures/cifar100"),
                                             options: LoadOptions(imageSize: 16, rotations: true))
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 3, height: 16, width: 16))
        XCTAssertEqual(dataset.splits.map(\.classes.count), [48, 24, 24])
        XCTAssertTrue(dataset.splits.allSatisfy { $0.classes.allSatisfy { $0.storage.count == 12 * 3 * 16 * 16 } })
    }

    private func rgb(_ cls: ImageClass, image: Int, y: Int, x: Int, size: Int) -> [UInt8] {
        let plane = size * size
        return (0..<3).map { cls.pixels[image * 3 * plane + $0 * plane + y * size + x] }
    }
}
