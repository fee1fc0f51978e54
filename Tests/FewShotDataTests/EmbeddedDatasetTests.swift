import Foundation
import XCTest
@testable import FewShotData

final class EmbeddedDatasetTests: XCTestCase {
    /// Generated once for the whole class.
    static let dataset = EmbeddedDataset.generate()

    private func image(_ imageClass: ImageClass, _ index: Int) -> ArraySlice<UInt8> {
        let size = EmbeddedDataset.imageShape.count
        return imageClass.pixels[(index * size)..<((index + 1) * size)]
    }

    private func distance(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Double {
        var sum = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) / 255 - Double(y) / 255
            sum += d * d
        }
        return sum.squareRoot()
    }

    func testShapeNamesAndSplits() throws {
        let dataset = Self.dataset
        XCTAssertEqual(dataset.name, "embedded-glyphs")
        XCTAssertEqual(dataset.layout, "metabench-fewshot-v1")
        XCTAssertEqual(dataset.imageShape, ImageShape(channels: 1, height: 28, width: 28))
        XCTAssertEqual(dataset.splits.map(\.name), ["train", "val", "test"])
        XCTAssertEqual(dataset.splits.map(\.classes.count), [200, 50, 50])
        var names = Set<String>()
        for split in dataset.splits {
            XCTAssertEqual(split.imagesPerClass, 20...20)
            for imageClass in split.classes {
                XCTAssertEqual(imageClass.pixels.count, 20 * 28 * 28)
                names.insert(imageClass.name)
            }
        }
        XCTAssertEqual(names.count, 300, "class names are unique")
        XCTAssertEqual(try dataset.split(named: "test").classes.first?.name, "glyph-250")
    }

    func testGenerationIsDeterministic() {
        let again = EmbeddedDataset.generate()
        XCTAssertEqual(again.splits.map(\.name), Self.dataset.splits.map(\.name))
        for (a, b) in zip(again.splits, Self.dataset.splits) {
            XCTAssertEqual(a.classes.map(\.name), b.classes.map(\.name))
            XCTAssertTrue(zip(a.classes, b.classes).allSatisfy { $0.pixels == $1.pixels }, "split \(a.name)")
        }
    }

    func testRenderGlyphGivesTheDatasetImage() throws {
        let test = try Self.dataset.split(named: "test")
        XCTAssertEqual(EmbeddedDataset.renderGlyph(classIndex: 250, writer: 3)[...], image(test.classes[0], 3))
        let train = try Self.dataset.split(named: "train")
        XCTAssertEqual(EmbeddedDataset.renderGlyph(classIndex: 17, writer: 19)[...], image(train.classes[17], 19))
    }

    func testImagesAreNeitherBlankNorFilled() {
        var fractions: [Double] = []
        for split in Self.dataset.splits {
            for imageClass in split.classes {
                for i in 0..<imageClass.count {
                    let stroke = image(imageClass, i).filter { $0 >= 128 }.count
                    fractions.append(Double(stroke) / Double(28 * 28))
                }
            }
        }
        let mean = fractions.reduce(0, +) / Double(fractions.count)
        print("stroke fraction: min \(fractions.min()!), mean \(mean), max \(fractions.max()!)")
        XCTAssertGreaterThanOrEqual(fractions.min()!, 0.03)
        XCTAssertLessThanOrEqual(fractions.max()!, 0.40)
        XCTAssertTrue((0.05...0.30).contains(mean), "mean stroke fraction \(mean)")
        // Antialiased edges: some pixels lie strictly between background and stroke.
        let grey = Self.dataset.splits[0].classes[0].pixels.filter { $0 > 0 && $0 < 255 }.count
        XCTAssertGreaterThan(grey, 0)
    }

    func testWritersJitterButClassesStayApart() {
        let classes = Self.dataset.splits.flatMap(\.classes)
        var within = 0.0, withinCount = 0.0, across = 0.0, acrossCount = 0.0
        for (c, imageClass) in classes.enumerated() {
            for i in stride(from: 0, to: imageClass.count - 1, by: 2) {
                let d = distance(image(imageClass, i), image(imageClass, i + 1))
                XCTAssertGreaterThan(d, 0, "two writers of \(imageClass.name) draw identical images")
                within += d
                withinCount += 1
            }
            let other = classes[(c + 1) % classes.count]
            for i in stride(from: 0, to: imageClass.count, by: 2) {
                across += distance(image(imageClass, i), image(other, i + 1))
                acrossCount += 1
            }
        }
        within /= withinCount
        across /= acrossCount
        XCTAssertLessThan(within, 0.85 * across, "mean L2 within a class \(within), across classes \(across)")
    }

    /// 5-way 1-shot nearest neighbour on raw pixels over 100 test episodes: well above chance (0.2),
    /// below perfect.
    func testNearestNeighbourBeatsChanceButIsNotTrivial() throws {
        let sampler = try EpisodeSampler(split: Self.dataset.split(named: "test"),
                                         imageShape: EmbeddedDataset.imageShape,
                                         settings: EpisodeSettings(ways: 5, shots: 1, queriesPerClass: 5),
                                         seed: 7)
        let size = EmbeddedDataset.imageShape.count
        var correct = 0, total = 0
        for index in 0..<100 {
            let episode = sampler.episode(index)
            for q in 0..<episode.query.count {
                let query = episode.query.pixels[(q * size)..<((q + 1) * size)]
                var best = -1, bestDistance = Float.infinity
                for s in 0..<episode.support.count {
                    let support = episode.support.pixels[(s * size)..<((s + 1) * size)]
                    var d: Float = 0
                    for (x, y) in zip(query, support) { d += (x - y) * (x - y) }
                    if d < bestDistance { bestDistance = d; best = episode.support.labels[s] }
                }
                if best == episode.query.labels[q] { correct += 1 }
                total += 1
            }
        }
        let accuracy = Double(correct) / Double(total)
        print("embedded-glyphs 5-way 1-shot nearest-neighbour accuracy on raw pixels: \(accuracy)")
        XCTAssertGreaterThan(accuracy, 0.35)
        XCTAssertLessThan(accuracy, 0.99)
    }

    func testCacheDirectory() {
        XCTAssertEqual(EmbeddedDataset.cacheDirectory(environment: ["METABENCH_CACHE": "/c", "XDG_CACHE_HOME": "/x",
                                                                    "HOME": "/h"]), "/c")
        XCTAssertEqual(EmbeddedDataset.cacheDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]),
                       "/x/metabench")
        XCTAssertEqual(EmbeddedDataset.cacheDirectory(environment: ["HOME": "/h"]), "/h/.cache/metabench")
    }

    /// Writes a montage (rows: classes, columns: writers) as a PGM file to look at by eye, when
    /// `METABENCH_GLYPH_MONTAGE` names a path.
    func testWriteMontageWhenAsked() throws {
        guard let path = ProcessInfo.processInfo.environment["METABENCH_GLYPH_MONTAGE"] else {
            throw XCTSkip("set METABENCH_GLYPH_MONTAGE=/tmp/glyphs.pgm to write a montage")
        }
        let rows = 16, columns = 10, cell = 30
        var canvas = [UInt8](repeating: 64, count: rows * cell * columns * cell)
        let classes = Self.dataset.splits.flatMap(\.classes)
        for r in 0..<rows {
            let imageClass = classes[r * 7]
            for c in 0..<columns {
                let pixels = Array(image(imageClass, c))
                for y in 0..<28 {
                    for x in 0..<28 {
                        canvas[(r * cell + 1 + y) * columns * cell + c * cell + 1 + x] = pixels[y * 28 + x]
                    }
                }
            }
        }
        let header = Array("P5\n\(columns * cell) \(rows * cell)\n255\n".utf8)
        try Data(header + canvas).write(to: URL(fileURLWithPath: path))
    }
}
