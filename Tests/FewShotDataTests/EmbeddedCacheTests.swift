import Foundation
import HDF5
import XCTest
@testable import FewShotData

/// The cached embedded dataset is trusted only when its pixels have the digest fixed in the code.
final class EmbeddedCacheTests: XCTestCase {
    func testContentDigestIsTheGeneratorsDigest() {
        let digest = EmbeddedDataset.digest(EmbeddedDatasetTests.dataset)
        XCTAssertEqual(digest, EmbeddedDataset.contentDigest,
                       "the generator's output has digest 0x\(String(digest, radix: 16, uppercase: true)); if the generator "
                       + "changed on purpose, update contentDigest and cacheFileName")
    }

    func testDigestSeesOnePixelNameAndCount() {
        let dataset = FewShotDataset(name: "d", layout: "x", imageShape: ImageShape(channels: 1, height: 2, width: 2), splits: [
            Split(name: "train", classes: [ImageClass(name: "a", count: 1, pixels: [1, 2, 3, 4])]),
        ])
        var pixel = dataset, name = dataset, split = dataset
        pixel.splits[0].classes[0].pixels[3] ^= 1
        name.splits[0].classes[0].name = "b"
        split.splits[0].name = "test"
        let digests = [dataset, pixel, name, split].map(EmbeddedDataset.digest)
        XCTAssertEqual(Set(digests).count, 4, "\(digests)")
    }

    func testAlteredCacheIsRegeneratedWithAWarning() throws {
        let folder = try makeTemporaryFolder(self)
        let previous = ProcessInfo.processInfo.environment["METABENCH_CACHE"]
        setenv("METABENCH_CACHE", folder, 1)
        defer {
            if let previous { setenv("METABENCH_CACHE", previous, 1) } else { unsetenv("METABENCH_CACHE") }
        }
        let path = folder + "/" + EmbeddedDataset.cacheFileName

        // A first load writes the cache, silently.
        let (first, firstWarnings) = try capturingStandardError { try EmbeddedDataset.load() }
        XCTAssertEqual(firstWarnings, "")
        XCTAssertEqual(EmbeddedDataset.digest(first), EmbeddedDataset.contentDigest)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))

        // One pixel altered in a valid file of the right shape: regenerated, with one warning line.
        var altered = EmbeddedDatasetTests.dataset
        altered.splits[1].classes[7].pixels[300] ^= 0x40
        try MetaBenchLayout.write(altered, to: path)
        XCTAssertNotEqual(EmbeddedDataset.digest(try MetaBenchLayout.read(path)), EmbeddedDataset.contentDigest)
        let (again, warnings) = try capturingStandardError { try EmbeddedDataset.load() }
        XCTAssertEqual(EmbeddedDataset.digest(again), EmbeddedDataset.contentDigest)
        XCTAssertEqual(warnings, "warning: \(path) does not hold the embedded dataset's pixels (checksum mismatch); regenerating it\n")
        // The file on disk is the right one again, and a third load is silent.
        XCTAssertEqual(EmbeddedDataset.digest(try MetaBenchLayout.read(path)), EmbeddedDataset.contentDigest)
        XCTAssertEqual(try capturingStandardError { try EmbeddedDataset.load() }.1, "")

        // A damaged (truncated) cache is regenerated too.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: path))
        let (third, damagedWarnings) = try capturingStandardError { try EmbeddedDataset.load() }
        XCTAssertEqual(EmbeddedDataset.digest(third), EmbeddedDataset.contentDigest)
        XCTAssertTrue(damagedWarnings.hasPrefix("warning: \(path) cannot be read ("), damagedWarnings)
        XCTAssertEqual(damagedWarnings.filter { $0 == "\n" }.count, 1)
    }

    /// Runs `body` with standard error sent to a file; returns its result and what it wrote there.
    private func capturingStandardError<T>(_ body: () throws -> T) throws -> (T, String) {
        let path = try makeTemporaryFolder(self) + "/stderr.txt"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let capture = open(path, O_WRONLY)
        let saved = dup(2)
        fflush(stderr)
        dup2(capture, 2)
        let result: T
        do {
            result = try body()
        } catch {
            dup2(saved, 2)
            close(saved)
            close(capture)
            throw error
        }
        fflush(stderr)
        dup2(saved, 2)
        close(saved)
        close(capture)
        return (result, try String(contentsOfFile: path, encoding: .utf8))
    }
}
