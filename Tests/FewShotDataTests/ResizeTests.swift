import Foundation
import XCTest
@testable import FewShotData
@testable import HDF5

/// The `resize` option: hand-computed values of each mode, float storage through rotations, the samplers,
/// the memory checks, the digest and the MetaBench writer, and the three modes on real Omniglot.
final class ResizeTests: XCTestCase {
    static let shape1x2 = ImageShape(channels: 1, height: 1, width: 2)
    static let shape1x4 = ImageShape(channels: 1, height: 1, width: 4)

    func resize(_ pixels: [UInt8], _ from: ImageShape, _ height: Int, _ width: Int, _ mode: ResizeMode) -> PixelStorage {
        ImageOps.resize(pixels, count: 1, from: from, toHeight: height, width: width, mode: mode)
    }

    func floats(_ storage: PixelStorage, file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        guard case .floats(let values) = storage else {
            XCTFail("expected floats, got \(storage)", file: file, line: line)
            return []
        }
        return values
    }

    func assertClose(_ actual: [Float], _ expected: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: accuracy, "value \(i)", file: file, line: line)
        }
    }

    // MARK: - Hand-computed values

    func testAreaKeepsTheAverageInFloatingPoint() {
        // 2×2 → 1×1: the mean of 255, 0, 0, 0 is 63.75: 0.25 as a float, 64 as a byte (rounded half up).
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        XCTAssertEqual(resize([255, 0, 0, 0], shape, 1, 1, .area), .floats([0.25]))
        XCTAssertEqual(resize([255, 0, 0, 0], shape, 1, 1, .areaUInt8), .bytes([64]))
        XCTAssertEqual(resize([0, 1, 0, 0], shape, 1, 1, .area), .floats([Float(0.25) / 255]))
        XCTAssertEqual(resize([0, 1, 0, 0], shape, 1, 1, .areaUInt8), .bytes([0]))
        // 4×4 → 2×2 averages 2×2 blocks exactly (weights ½): 2, 8, 100, 255 — the floats bytes k become, k / 255.
        let four = ImageShape(channels: 1, height: 4, width: 4)
        let pixels: [UInt8] = [0, 4, 8, 8, 4, 0, 8, 8, 100, 100, 255, 255, 100, 100, 255, 255]
        XCTAssertEqual(resize(pixels, four, 2, 2, .area), .floats([2, 8, 100, 255].map { Float($0) / 255 }))
        XCTAssertEqual(resize(pixels, four, 2, 2, .areaUInt8), .bytes([2, 8, 100, 255]))
        // 3×3 → 2×2 of the linear image 9r + 3c: each output is the value at its area's centroid,
        // (1/3, 1/3) → 4, (1/3, 5/3) → 8, (5/3, 1/3) → 16, (5/3, 5/3) → 20 (weights ⅔, ⅓ are not exact in float32).
        let three = ImageShape(channels: 1, height: 3, width: 3)
        let linear: [UInt8] = [0, 3, 6, 9, 12, 15, 18, 21, 24]
        assertClose(floats(resize(linear, three, 2, 2, .area)), [4, 8, 16, 20].map { Float($0) / 255 }, accuracy: 1e-7)
    }

    func testBilinearHandComputed() {
        // 1×4 → 1×2 (factor 2: triangle of half-width 2): output 0 is centred at 1, weights ¾, ¾, ¼ on pixels
        // 0, 1, 2 → 3/7, 3/7, 1/7; output 1 centred at 3: ¼, ¾, ¾ on pixels 1, 2, 3.
        // [0, 7, 14, 70] → (0·3 + 7·3 + 14) / 7 = 5 and (7 + 14·3 + 70·3) / 7 = 37 (area gives 3.5 and 42).
        let row: [UInt8] = [0, 7, 14, 70]
        assertClose(floats(resize(row, Self.shape1x4, 1, 2, .bilinear)), [5 / 255, 37 / 255], accuracy: 1e-7)
        assertClose(floats(resize(row, Self.shape1x4, 1, 2, .area)), [3.5 / 255, 42 / 255], accuracy: 1e-7)
        // Enlarging 1×2 → 1×4 is plain bilinear (align_corners=False): source x = (o + ½)/2 − ½ = −¼, ¼, ¾, 1¼,
        // edges repeated: 0, 25, 75, 100.
        assertClose(floats(resize([0, 100], Self.shape1x2, 1, 4, .bilinear)), [0, 25, 75, 100].map { Float($0) / 255 },
                    accuracy: 1e-7)
        // Rows and columns are not swapped: a 2×1 column to 4×1.
        let column = ImageShape(channels: 1, height: 2, width: 1)
        assertClose(floats(resize([0, 100], column, 4, 1, .bilinear)), [0, 25, 75, 100].map { Float($0) / 255 },
                    accuracy: 1e-7)
    }

    func testTriangleWeightsSumToOneAndWidenWhenShrinking() {
        for (source, target) in [(105, 28), (32, 20), (28, 84), (7, 3), (3, 7), (5, 5)] {
            for (o, taps) in ImageOps.triangleWeights(from: source, to: target).enumerated() {
                XCTAssertEqual(taps.reduce(0) { $0 + Double($1.weight) }, 1, accuracy: 1e-6, "\(source)→\(target) output \(o)")
                XCTAssertTrue(taps.allSatisfy { $0.weight > 0 && (0..<source).contains($0.index) })
            }
        }
        // 105 → 28: factor 3.75, so a triangle 7.5 pixels wide: 7 or 8 source pixels per output, 6 at the
        // edges (output 0 is centred at 1.875: pixels 0...5); enlarging reads at most 2.
        let counts = ImageOps.triangleWeights(from: 105, to: 28).map(\.count)
        XCTAssertEqual(counts.first, 6)
        XCTAssertEqual(counts.last, 6)
        XCTAssertTrue(counts.dropFirst().dropLast().allSatisfy { (7...8).contains($0) }, "\(counts)")
        XCTAssertTrue(ImageOps.triangleWeights(from: 28, to: 84).allSatisfy { (1...2).contains($0.count) })
        // Same size: the identity.
        XCTAssertTrue(ImageOps.triangleWeights(from: 5, to: 5).enumerated().allSatisfy { $1.count == 1 && $1[0].index == $0 })
    }

    func testNoResizeKeepsBytes() throws {
        let shape = ImageShape(channels: 1, height: 2, width: 2)
        for mode in ResizeMode.allCases {
            XCTAssertEqual(resize([1, 2, 3, 4], shape, 2, 2, mode), .bytes([1, 2, 3, 4]), "\(mode)")
        }
        let dataset = Self.tinyDataset()
        for mode in ResizeMode.allCases {
            // Already at the size, or no image size: bytes as read.
            for options in [LoadOptions(imageSize: 4, resize: mode), LoadOptions(resize: mode), LoadOptions(resize: mode, rotations: true)] {
                let loaded = try LayoutIO.apply(options, to: dataset)
                XCTAssertTrue(loaded.splits.flatMap(\.classes).allSatisfy { if case .bytes = $0.storage { return true } else { return false } },
                              "\(options)")
                XCTAssertEqual(loaded.splits[0].classes[0].pixels, dataset.splits[0].classes[0].pixels)
            }
        }
    }

    // MARK: - Float storage through the loader and the samplers

    /// Two classes of three 1×4×4 images with varied bytes.
    static func tinyDataset() -> FewShotDataset {
        let shape = ImageShape(channels: 1, height: 4, width: 4)
        let classes = (0..<2).map { c in
            ImageClass(name: "c\(c)", count: 3, pixels: (0..<3 * shape.count).map { UInt8(($0 * 37 + c * 101) % 256) })
        }
        return FewShotDataset(name: "tiny", layout: "test", imageShape: shape, splits: [Split(name: "train", classes: classes)])
    }

    func testRotationsOfFloatImages() throws {
        XCTAssertEqual(ImageOps.rotate(.floats([0.1, 0.2, 0.3, 0.4]), count: 1, shape: ImageShape(channels: 1, height: 2, width: 2),
                                       quarterTurns: 1),
                       .floats([0.2, 0.4, 0.1, 0.3]))
        let dataset = Self.tinyDataset()
        for mode in [ResizeMode.area, .bilinear] {
            let plain = try LayoutIO.apply(LoadOptions(imageSize: 2, resize: mode), to: dataset)
            let rotated = try LayoutIO.apply(LoadOptions(imageSize: 2, resize: mode, rotations: true), to: dataset)
            let classes = rotated.splits[0].classes
            XCTAssertEqual(classes.map(\.name), ["c0", "c1", "c0/rot90", "c1/rot90", "c0/rot180", "c1/rot180", "c0/rot270", "c1/rot270"])
            XCTAssertEqual(classes[0].storage, plain.splits[0].classes[0].storage)
            let original = floats(classes[0].storage), quarter = floats(classes[2].storage)
            XCTAssertEqual(original.count, 3 * 4)
            // Counter-clockwise: output (0, 0) is input (0, 1) of each image.
            for image in 0..<3 { XCTAssertEqual(quarter[image * 4], original[image * 4 + 1]) }
            XCTAssertEqual(ImageOps.rotate(classes[6].storage, count: 3, shape: rotated.imageShape, quarterTurns: 1), classes[0].storage)
        }
    }

    /// The same pixels held as bytes k and as floats k / 255 give identical episodes and batches, with and
    /// without normalisation.
    func testFloatAndByteStorageGiveTheSameTensors() throws {
        let shape = ImageShape(channels: 2, height: 3, width: 3)
        func split(floats: Bool) -> Split {
            Split(name: "train", classes: (0..<4).map { c in
                let bytes = (0..<5 * shape.count).map { UInt8(($0 * 53 + c * 29) % 256) }
                return ImageClass(name: "k\(c)", count: 5,
                                  storage: floats ? .floats(bytes.map { Float($0) / 255 }) : .bytes(bytes))
            })
        }
        for normalization in [Normalization.none, .meanStd(mean: [0.485, 0.456], std: [0.229, 0.224])] {
            let settings = EpisodeSettings(ways: 3, shots: 2, queriesPerClass: 2, normalization: normalization)
            let bytes = try EpisodeSampler(split: split(floats: false), imageShape: shape, settings: settings, seed: 9)
            let values = try EpisodeSampler(split: split(floats: true), imageShape: shape, settings: settings, seed: 9)
            for index in 0..<4 {
                let a = bytes.episode(index), b = values.episode(index)
                XCTAssertEqual(a.support.pixels.map(\.bitPattern), b.support.pixels.map(\.bitPattern), "\(normalization) episode \(index)")
                XCTAssertEqual(a.query.pixels.map(\.bitPattern), b.query.pixels.map(\.bitPattern))
            }
            let byteBatches = try ClassificationSampler(split: split(floats: false), imageShape: shape, normalization: normalization, seed: 3)
            let floatBatches = try ClassificationSampler(split: split(floats: true), imageShape: shape, normalization: normalization, seed: 3)
            XCTAssertEqual(byteBatches.batch(1, size: 7).pixels.map(\.bitPattern), floatBatches.batch(1, size: 7).pixels.map(\.bitPattern))
        }
        // A float that is not k / 255 is scaled by the same formula: (0.3 - 0.5) / 0.25.
        let one = Split(name: "train", classes: (0..<2).map {
            ImageClass(name: "f\($0)", count: 2, storage: .floats([Float](repeating: 0.3, count: 2 * 4)))
        })
        let tiny = ImageShape(channels: 1, height: 2, width: 2)
        let sampler = try EpisodeSampler(split: one, imageShape: tiny, settings: EpisodeSettings(
            ways: 2, shots: 1, queriesPerClass: 1, normalization: .meanStd(mean: [0.5], std: [0.25])), seed: 0)
        XCTAssertEqual(sampler.episode(0).support.pixels, [Float](repeating: (Float(0.3) - 0.5) / 0.25, count: 8))
    }

    func testFloatClassesOfTheWrongSizeAreAnError() {
        let split = Split(name: "train", classes: [
            ImageClass(name: "ok", count: 1, storage: .floats([0, 0, 0, 0])),
            ImageClass(name: "short", count: 1, storage: .floats([0, 0, 0])),
        ])
        XCTAssertThrowsError(try EpisodeSampler(split: split, imageShape: ImageShape(channels: 1, height: 2, width: 2),
                                                settings: EpisodeSettings(ways: 2, shots: 1, queriesPerClass: 1), seed: 0)) { error in
            XCTAssertEqual(error as? DataError, .invalidEpisodeSettings(
                "class 'short' of split 'train' holds 3 float values, but 1 images of 1×2×2 need 4"))
        }
    }

    func testDigestCoversFloatStorage() {
        var dataset = Self.tinyDataset()
        let bytes = EmbeddedDataset.digest(dataset)
        guard case .bytes(let pixels) = dataset.splits[0].classes[0].storage else { return XCTFail() }
        dataset.splits[0].classes[0].storage = .floats(pixels.map { Float($0) / 255 })
        let asFloats = EmbeddedDataset.digest(dataset)
        XCTAssertNotEqual(asFloats, bytes)
        guard case .floats(var values) = dataset.splits[0].classes[0].storage else { return XCTFail() }
        values[5] = values[5].nextUp
        dataset.splits[0].classes[0].storage = .floats(values)
        XCTAssertNotEqual(EmbeddedDataset.digest(dataset), asFloats, "one ulp of one value changes the digest")
    }

    func testMetaBenchLayoutRefusesFloatImages() throws {
        let folder = try makeTemporaryFolder(self)
        let resized = try LayoutIO.apply(LoadOptions(imageSize: 2, resize: .bilinear), to: Self.tinyDataset())
        XCTAssertEqual(thrownError(try MetaBenchLayout.write(resized, to: folder + "/floats.h5")) as? DataError,
                       .badDataset(file: folder + "/floats.h5", dataset: "train/c0",
                                   reason: "the images are held as floats (resized with resize area or bilinear), "
                                   + "but this layout stores uint8 pixels; resize with area-uint8 to write them"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/floats.h5"))
        // Bytes resized with area-uint8 are written and read back as they are.
        let bytes = try LayoutIO.apply(LoadOptions(imageSize: 2, resize: .areaUInt8), to: Self.tinyDataset())
        try MetaBenchLayout.write(bytes, to: folder + "/bytes.h5")
        XCTAssertEqual(try MetaBenchLayout.read(folder + "/bytes.h5").splits[0].classes.map(\.storage),
                       bytes.splits[0].classes.map(\.storage))
    }

    // MARK: - Memory

    func testFloatsCountFourBytesAgainstTheMemoryBudget() throws {
        let path = try SharedData.path("layout-fixtures/cifar100")
        let saved = ReadLimits.memoryBudget
        // 288 images × 3 × 64² = 3.4 MiB as bytes, 13.5 MiB as floats; with rotations 13.5 MiB and 54 MiB.
        ReadLimits.memoryBudget = 8 << 20
        defer { ReadLimits.memoryBudget = saved }
        XCTAssertEqual(try DatasetLoader.load(path, options: LoadOptions(imageSize: 64, resize: .areaUInt8)).imageShape.height, 64)
        for mode in [ResizeMode.area, .bilinear] {
            XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 64, resize: mode))) as? DataError,
                           .invalidOptions("image_size 64: 288 images of 3 channel(s) at 64×64 as 4-byte floats (resize \(mode.rawValue)) "
                                           + "need 13.5 MiB, more than the memory budget of 8.0 MiB"))
        }
        // 288 × 3 × 16² = 864 KiB as floats (fits); rotations hold four times that: 3.4 MiB (as bytes 864 KiB).
        ReadLimits.memoryBudget = 1 << 20
        XCTAssertEqual(try DatasetLoader.load(path, options: LoadOptions(imageSize: 16)).imageShape.height, 16)
        XCTAssertEqual(thrownError(try DatasetLoader.load(path, options: LoadOptions(imageSize: 16, rotations: true))) as? DataError,
                       .invalidOptions("image_size 16: 288 images of 3 channel(s) at 16×16 with rotations as 4-byte floats "
                                       + "(resize area) need 3.4 MiB, more than the memory budget of 1.0 MiB"))
        XCTAssertNoThrow(try DatasetLoader.load(path, options: LoadOptions(imageSize: 16, resize: .areaUInt8, rotations: true)))
        // Rotations of float images count four bytes per value in their own check too (images at their size
        // already pass the first check as bytes).
        let floats = try LayoutIO.apply(LoadOptions(imageSize: 2, resize: .area), to: Self.tinyDataset())
        ReadLimits.memoryBudget = 6 * 4 * 4 * 4 - 1
        XCTAssertEqual(thrownError(try LayoutIO.apply(LoadOptions(rotations: true), to: floats)) as? DataError,
                       .invalidOptions("rotations: 6 images of 1×2×2 and their three rotations as 4-byte floats need 384 bytes, "
                                       + "more than the memory budget of 383 bytes"))
        ReadLimits.memoryBudget = 6 * 4 * 4 * 4
        XCTAssertEqual(try LayoutIO.apply(LoadOptions(rotations: true), to: floats).splits[0].classes.count, 8)
    }

    // MARK: - Real Omniglot

    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/resize-reference.h5").path

    /// `area` and `area-uint8` of Omniglot's first training class against numpy's exact block means
    /// (`Reference/make_resize_reference.py`): the bytes are equal, the floats within 1e-6 (float32 sums of
    /// at most 5 × 5 taps of values ≤ 255, divided by 255: a few ulps of 1).
    func testAreaModesMatchNumpyOnOmniglot() throws {
        let path = try SharedData.path("omniglot-small")
        let file = try File(Self.reference)
        let expectedFloats: [Float] = try file.dataset("omniglot/area").read()
        let expectedBytes: [UInt8] = try file.dataset("omniglot/area_uint8").read()
        let area = try DatasetLoader.load(path, options: LoadOptions(imageSize: 28, resize: .area))
        let bytes = try DatasetLoader.load(path, options: LoadOptions(imageSize: 28, resize: .areaUInt8))
        XCTAssertEqual(bytes.splits[0].classes[0].storage, .bytes(expectedBytes))
        assertClose(floats(area.splits[0].classes[0].storage), expectedFloats, accuracy: 1e-6)
        // Over the whole dataset, area-uint8 is area rounded: never more than half a level apart.
        for (a, b) in zip(area.splits.flatMap(\.classes), bytes.splits.flatMap(\.classes)) {
            XCTAssertTrue(zip(floats(a.storage), b.pixels).allSatisfy { abs($0 * 255 - Float($1)) <= 0.5 + 1e-3 }, a.name)
        }
    }

    /// Each mode on datasets/omniglot-small at 28×28: episodes in [0, 1], different for each mode, with the
    /// same classes and images chosen.
    func testEpisodesOfEachModeOnOmniglot() throws {
        let path = try SharedData.path("omniglot-small")
        var episodes: [ResizeMode: Episode] = [:]
        for mode in ResizeMode.allCases {
            let dataset = try DatasetLoader.load(path, options: LoadOptions(imageSize: 28, resize: mode))
            XCTAssertEqual(dataset.imageShape, ImageShape(channels: 1, height: 28, width: 28))
            let sampler = try EpisodeSampler(split: try dataset.split(named: "test"), imageShape: dataset.imageShape,
                                             settings: EpisodeSettings(ways: 5, shots: 1, queriesPerClass: 2), seed: 4)
            let episode = sampler.episode(0)
            for set in [episode.support, episode.query] {
                XCTAssertTrue(set.pixels.allSatisfy { (0...1).contains($0) }, "\(mode)")
                XCTAssertTrue(set.pixels.contains { $0 > 0 && $0 < 1 }, "\(mode): antialiased grey levels")
            }
            episodes[mode] = episode
        }
        let area = episodes[.area]!, bilinear = episodes[.bilinear]!, bytes = episodes[.areaUInt8]!
        XCTAssertEqual(area.classIndices, bilinear.classIndices)
        XCTAssertEqual(area.classIndices, bytes.classIndices)
        XCTAssertNotEqual(area.support.pixels, bilinear.support.pixels)
        XCTAssertNotEqual(area.support.pixels, bytes.support.pixels)
        XCTAssertNotEqual(bilinear.support.pixels, bytes.support.pixels)
        // area-uint8 is area rounded to levels of 1/255; bilinear weighs the same neighbourhood differently,
        // but keeps the image's overall brightness.
        XCTAssertTrue(zip(area.support.pixels, bytes.support.pixels).allSatisfy { abs($0 - $1) <= 0.5 / 255 + 1e-6 })
        XCTAssertTrue(bytes.support.pixels.allSatisfy { Float(($0 * 255).rounded()) / 255 == $0 }, "area-uint8 gives levels k / 255")
        let mean = { (x: [Float]) in x.reduce(0, +) / Float(x.count) }
        XCTAssertEqual(mean(bilinear.support.pixels), mean(area.support.pixels), accuracy: 0.01)
    }
}
