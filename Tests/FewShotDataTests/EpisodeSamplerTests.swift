import Foundation
import XCTest
@testable import FewShotData

final class EpisodeSamplerTests: XCTestCase {
    static let shape = ImageShape(channels: 2, height: 3, width: 4)

    /// A split whose images say who they are: byte 0 is the class index, byte 1 the image index, the rest
    /// a pattern of both.
    static func makeSplit(name: String = "train", classes: Int = 10, images: Int = 8,
                          smallClass: (index: Int, images: Int)? = nil) -> Split {
        Split(name: name, classes: (0..<classes).map { c in
            let count = smallClass?.index == c ? smallClass!.images : images
            var pixels: [UInt8] = []
            for i in 0..<count {
                pixels += [UInt8(c), UInt8(i)]
                pixels += (2..<shape.count).map { p in UInt8((c * 37 + i * 11 + p * 5) % 256) }
            }
            return ImageClass(name: "class-\(c)", count: count, pixels: pixels)
        })
    }

    static func byte(_ value: Float) -> Int { Int((value * 255).rounded()) }

    func sampler(ways: Int = 5, shots: Int = 2, queries: Int = 3, normalization: Normalization = .none,
                 seed: UInt64 = 42, split: Split = makeSplit()) throws -> EpisodeSampler {
        try EpisodeSampler(split: split, imageShape: Self.shape,
                           settings: EpisodeSettings(ways: ways, shots: shots, queriesPerClass: queries,
                                                     normalization: normalization),
                           seed: seed)
    }

    // MARK: - Determinism

    func testEpisodeIsAPureFunctionOfSeedSplitSettingsAndIndex() throws {
        let a = try sampler(), b = try sampler()
        for index in [0, 1, 17, 1_000_000] {
            XCTAssertEqual(a.episode(index), a.episode(index))
            XCTAssertEqual(a.episode(index), b.episode(index), "two samplers agree on episode \(index)")
        }
        // Order of creation does not matter.
        let backwards = (0..<20).reversed().map { a.episode($0) }
        XCTAssertEqual(Array(backwards.reversed()), (0..<20).map { b.episode($0) })
    }

    func testEpisodesCanBeMadeConcurrently() throws {
        let s = try sampler()
        let sequential = (0..<32).map { s.episode($0) }
        let lock = NSLock()
        var concurrent = [Episode?](repeating: nil, count: 32)
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            let episode = s.episode(i)
            lock.lock(); concurrent[i] = episode; lock.unlock()
        }
        XCTAssertEqual(concurrent.map { $0! }, sequential)
    }

    func testDifferentIndexSeedOrSplitGivesADifferentEpisode() throws {
        let s = try sampler()
        XCTAssertNotEqual(s.episode(0), s.episode(1))
        XCTAssertNotEqual(s.episode(5), try sampler(seed: 43).episode(5))
        XCTAssertNotEqual(s.episode(5), try sampler(split: Self.makeSplit(name: "val")).episode(5))
        let distinct = Set((0..<50).map { s.episode($0).classIndices })
        XCTAssertGreaterThan(distinct.count, 40)
    }

    func testMetaBatchIsConsecutiveEpisodes() throws {
        let s = try sampler()
        XCTAssertEqual(s.metaBatch(3, size: 4), (12..<16).map { s.episode($0) })
    }

    // MARK: - Content

    func testLabelsAreClassMajor() throws {
        let episode = try sampler(ways: 4, shots: 2, queries: 3).episode(9)
        XCTAssertEqual(episode.ways, 4)
        XCTAssertEqual(episode.shots, 2)
        XCTAssertEqual(episode.queriesPerClass, 3)
        XCTAssertEqual(episode.support.labels, [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(episode.query.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
        XCTAssertEqual(episode.support.shape, Self.shape)
        XCTAssertEqual(episode.query.shape, Self.shape)
        XCTAssertEqual(episode.support.pixels.count, 8 * Self.shape.count)
        XCTAssertEqual(episode.query.pixels.count, 12 * Self.shape.count)
    }

    func testImagesAreDistinctAndComeFromTheirLabelsClass() throws {
        let split = Self.makeSplit()
        let s = try sampler(ways: 5, shots: 2, queries: 3, split: split)
        let size = Self.shape.count
        for index in 0..<100 {
            let episode = s.episode(index)
            XCTAssertEqual(Set(episode.classIndices).count, 5, "classes are distinct")
            XCTAssertTrue(episode.classIndices.allSatisfy { (0..<10).contains($0) })
            var seen = Set<[Int]>()
            for set in [episode.support, episode.query] {
                XCTAssertTrue(set.pixels.allSatisfy { (0...1).contains($0) }, "pixels in [0, 1]")
                for n in 0..<set.count {
                    let pixels = set.pixels[(n * size)..<((n + 1) * size)]
                    let c = Self.byte(pixels[pixels.startIndex]), i = Self.byte(pixels[pixels.startIndex + 1])
                    XCTAssertEqual(c, episode.classIndices[set.labels[n]])
                    XCTAssertTrue(seen.insert([c, i]).inserted, "image \(i) of class \(c) drawn twice")
                    // Every value is exactly its byte / 255.
                    let bytes = split.classes[c].pixels[(i * size)..<((i + 1) * size)]
                    XCTAssertEqual(Array(pixels), bytes.map { Float($0) / 255 })
                }
            }
        }
    }

    func testLabelOrderIsRandom() throws {
        let s = try sampler()
        let sorted = (0..<50).filter { s.episode($0).classIndices == s.episode($0).classIndices.sorted() }
        XCTAssertLessThan(sorted.count, 10)
    }

    func testEveryClassAndImageIsReached() throws {
        let s = try sampler(ways: 2, shots: 1, queries: 1)
        var classes = Set<Int>(), images = Set<Int>()
        for index in 0..<300 {
            let episode = s.episode(index)
            classes.formUnion(episode.classIndices)
            images.insert(Self.byte(episode.support.pixels[1]))
        }
        XCTAssertEqual(classes, Set(0..<10))
        XCTAssertEqual(images, Set(0..<8))
    }

    func testMeanStdNormalisation() throws {
        let normalization = Normalization.meanStd(mean: [0.5, 0.25], std: [0.5, 2])
        let plain = try sampler().episode(4)
        let normalised = try sampler(normalization: normalization).episode(4)
        XCTAssertEqual(plain.classIndices, normalised.classIndices, "normalisation does not change the draw")
        let plane = Self.shape.height * Self.shape.width
        // Byte 0 of the first support image is its class index c: channel 0 gives (c / 255 - 0.5) / 0.5.
        let c = Float(plain.classIndices[0])
        XCTAssertEqual(normalised.support.pixels[0], (c / 255 - 0.5) / 0.5, accuracy: 1e-6)
        // Every value of channel 0 is (x - 0.5) / 0.5, of channel 1 (x - 0.25) / 2.
        for n in 0..<plain.query.count {
            for p in 0..<(2 * plane) {
                let k = n * Self.shape.count + p
                let expected = p < plane ? (plain.query.pixels[k] - 0.5) / 0.5 : (plain.query.pixels[k] - 0.25) / 2
                XCTAssertEqual(normalised.query.pixels[k], expected, accuracy: 1e-6)
            }
        }
        // A hand-checked value: byte 255 in channel 1 is (1 - 0.25) / 2 = 0.375.
        let white = Split(name: "white", classes: (0..<2).map {
            ImageClass(name: "w\($0)", count: 2, pixels: [UInt8](repeating: 255, count: 2 * Self.shape.count))
        })
        let episode = try sampler(ways: 2, shots: 1, queries: 1, normalization: normalization, split: white).episode(0)
        XCTAssertEqual(episode.support.pixels[plane], 0.375)
        XCTAssertEqual(episode.support.pixels[0], 1)
    }

    // MARK: - Errors

    func assertThrows(_ expected: DataError, message: String, file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? DataError, expected, file: file, line: line)
            XCTAssertEqual((error as? DataError)?.description, message, file: file, line: line)
        }
    }

    func testInvalidSettingsThrow() {
        assertThrows(.invalidEpisodeSettings("ways must be at least 2 (got 1)"),
                     message: "invalid episode settings: ways must be at least 2 (got 1)") {
            _ = try sampler(ways: 1)
        }
        assertThrows(.invalidEpisodeSettings("shots must be at least 1 (got 0)"),
                     message: "invalid episode settings: shots must be at least 1 (got 0)") {
            _ = try sampler(shots: 0)
        }
        assertThrows(.invalidEpisodeSettings("queries per class must be at least 1 (got 0)"),
                     message: "invalid episode settings: queries per class must be at least 1 (got 0)") {
            _ = try sampler(queries: 0)
        }
    }

    func testTooManyWaysThrows() {
        assertThrows(.notEnoughClasses(split: "train", ways: 11, available: 10),
                     message: "11-way episodes need 11 classes, but split 'train' has only 10") {
            _ = try sampler(ways: 11)
        }
    }

    func testTooManyShotsAndQueriesNamesTheClass() {
        assertThrows(.notEnoughImages(split: "train", className: "class-0", needed: 9, available: 8),
                     message: "episodes need 9 images per class (shots + queries), but class 'class-0' of split 'train' has only 8") {
            _ = try sampler(shots: 5, queries: 4)
        }
        let split = Self.makeSplit(smallClass: (index: 6, images: 4))
        assertThrows(.notEnoughImages(split: "train", className: "class-6", needed: 5, available: 4),
                     message: "episodes need 5 images per class (shots + queries), but class 'class-6' of split 'train' has only 4") {
            _ = try sampler(shots: 1, queries: 4, split: split)
        }
        XCTAssertNoThrow(try sampler(shots: 1, queries: 3, split: split))
    }

    func testBadNormalisationThrows() {
        assertThrows(.invalidEpisodeSettings("normalisation has 1 means and 1 standard deviations, but the images have 2 channels"),
                     message: "invalid episode settings: normalisation has 1 means and 1 standard deviations, but the images have 2 channels") {
            _ = try sampler(normalization: .meanStd(mean: [0.5], std: [0.5]))
        }
        assertThrows(.invalidEpisodeSettings("normalisation standard deviation 0.0 of channel 1 must be positive"),
                     message: "invalid episode settings: normalisation standard deviation 0.0 of channel 1 must be positive") {
            _ = try sampler(normalization: .meanStd(mean: [0.5, 0.5], std: [0.5, 0]))
        }
        XCTAssertThrowsError(try sampler(normalization: .meanStd(mean: [0.5, 0.5], std: [-1, 1])))
        XCTAssertThrowsError(try sampler(normalization: .meanStd(mean: [.nan, 0.5], std: [1, 1])))
    }

    func testPixelsNotMatchingTheShapeThrow() {
        let split = Split(name: "train", classes: [
            ImageClass(name: "ok", count: 2, pixels: [UInt8](repeating: 0, count: 2 * Self.shape.count)),
            ImageClass(name: "short", count: 2, pixels: [UInt8](repeating: 0, count: 2 * Self.shape.count - 1)),
        ])
        XCTAssertThrowsError(try sampler(ways: 2, shots: 1, queries: 1, split: split)) { error in
            XCTAssertTrue("\(error)".contains("'short'"), "\(error)")
        }
    }

    // MARK: - Classification batches

    func classification(seed: UInt64 = 1, split: Split = makeSplit(),
                        normalization: Normalization = .none) throws -> ClassificationSampler {
        try ClassificationSampler(split: split, imageShape: Self.shape, normalization: normalization, seed: seed)
    }

    func testClassificationBatchesAreDeterministicAndLabelled() throws {
        let split = Self.makeSplit()
        let a = try classification(split: split), b = try classification(split: split)
        XCTAssertEqual(a.batch(3, size: 16), b.batch(3, size: 16))
        XCTAssertNotEqual(a.batch(3, size: 16), a.batch(4, size: 16))
        XCTAssertNotEqual(a.batch(3, size: 16), try classification(seed: 2, split: split).batch(3, size: 16))
        let size = Self.shape.count
        for iteration in 0..<20 {
            let batch = a.batch(iteration, size: 16)
            XCTAssertEqual(batch.count, 16)
            XCTAssertEqual(batch.shape, Self.shape)
            XCTAssertEqual(batch.pixels.count, 16 * size)
            XCTAssertTrue(batch.pixels.allSatisfy { (0...1).contains($0) })
            for n in 0..<16 {
                XCTAssertTrue((0..<10).contains(batch.labels[n]))
                XCTAssertEqual(Self.byte(batch.pixels[n * size]), batch.labels[n], "label is the split class")
            }
        }
    }

    func testClassificationDrawsOverAllImages() throws {
        // Class 3 holds 1 image, the others 8: it is drawn about 1/73 of the time.
        let split = Self.makeSplit(smallClass: (index: 3, images: 1))
        let batch = try classification(split: split).batch(0, size: 7300)
        var counts = [Int](repeating: 0, count: 10)
        for label in batch.labels { counts[label] += 1 }
        XCTAssertTrue((40...170).contains(counts[3]), "\(counts)")
        for c in 0..<10 where c != 3 { XCTAssertTrue((650...950).contains(counts[c]), "\(counts)") }
        let images = Set((0..<batch.count).map { [batch.labels[$0], Self.byte(batch.pixels[$0 * Self.shape.count + 1])] })
        XCTAssertEqual(images.count, 73, "every image is drawn")
    }

    func testClassificationEdgeCases() throws {
        let s = try classification()
        XCTAssertEqual(s.batch(0, size: 1).count, 1)
        XCTAssertEqual(s.batch(0, size: 0).count, 0)
        XCTAssertEqual(s.batch(-5, size: 3), s.batch(-5, size: 3))
        let normalised = try classification(normalization: .meanStd(mean: [0, 0], std: [2, 2])).batch(2, size: 5)
        XCTAssertEqual(normalised.pixels, s.batch(2, size: 5).pixels.map { $0 / 2 })
        XCTAssertThrowsError(try classification(split: Split(name: "empty", classes: []))) { error in
            XCTAssertTrue("\(error)".contains("'empty'"), "\(error)")
        }
        XCTAssertThrowsError(try classification(normalization: .meanStd(mean: [0], std: [1])))
    }
}
