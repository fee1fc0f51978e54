import Foundation
import XCTest
@testable import FewShotData
@testable import HDF5

/// Files whose structures were damaged (bytes patched in place) give errors naming the file, the object
/// and the problem; before these checks they aborted on allocation, crashed or hung inside libhdf5.
final class CorruptFileTests: XCTestCase {
    // MARK: - Helpers

    /// Little-endian bytes of 64-bit numbers (how HDF5 stores dimensions and lengths).
    private func le64(_ values: [UInt64]) -> [UInt8] {
        values.flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    }

    /// Replaces every occurrence of `old` with `new` (same length) in the file; returns how many.
    @discardableResult
    private func patch(_ path: String, _ old: [UInt8], _ new: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var count = 0
        var index = 0
        while index + old.count <= bytes.count {
            if bytes[index..<(index + old.count)].elementsEqual(old) {
                bytes.replaceSubrange(index..<(index + old.count), with: new)
                count += 1
                index += old.count
            } else {
                index += 1
            }
        }
        XCTAssertGreaterThan(count, 0, "pattern not found in \(path)", file: file, line: line)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return count
    }

    private func withMemoryBudget<T>(_ bytes: Int, _ body: () throws -> T) rethrows -> T {
        let saved = ReadLimits.memoryBudget
        ReadLimits.memoryBudget = bytes
        defer { ReadLimits.memoryBudget = saved }
        return try body()
    }

    // MARK: - Declared sizes

    func testDimensionLargerThanTheFileIsAnError() throws {
        let path = try makeTemporaryFolder(self) + "/contiguous.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("d", shape: [7, 11, 13], values: [UInt8](repeating: 9, count: 1001))
            try file.close()
        }
        try patch(path, le64([7, 11, 13]), le64([7, 1 << 40, 13]))
        let file = try File(path)
        XCTAssertEqual(try file.dataset("d").shape(), [7, 1 << 40, 13])
        guard case .tooLarge(let name, let object, let reason)? = thrownError(try file.dataset("d").read(as: UInt8.self)) as? HDF5Error else {
            return XCTFail("expected tooLarge")
        }
        XCTAssertEqual(name, path)
        XCTAssertEqual(object, "/d")
        XCTAssertTrue(reason.hasPrefix("declares shape (7, 1099511627776, 13) of uint8 (91.0 TiB), but the file holds only "), reason)
        // Read as float: the same check, on the stored size.
        XCTAssertNotNil(thrownError(try file.dataset("d").read(as: Float.self)) as? HDF5Error)
    }

    func testDimensionBeyondWhatDeflateCanExpandIsAnError() throws {
        let path = try makeTemporaryFolder(self) + "/gzip.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("d", shape: [7, 11, 13], values: [UInt8](repeating: 0, count: 1001), gzipLevel: 9)
            try file.close()
        }
        // 70 000 rows of 143 bytes (10 MB) from a few hundred stored bytes: more than 1032-fold.
        try patch(path, le64([7, 11, 13]), le64([70_000, 11, 13]))
        let error = thrownError(try File(path).dataset("d").read(as: UInt8.self)) as? HDF5Error
        guard case .tooLarge(_, "/d", let reason)? = error else { return XCTFail("expected tooLarge, got \(String(describing: error))") }
        XCTAssertTrue(reason.hasPrefix("declares shape (70000, 11, 13) of uint8 (9.5 MiB), but it stores "), reason)
        XCTAssertTrue(reason.contains("compressed, and deflate expands data at most 1032-fold"), reason)
    }

    func testDimensionProductOverflowIsAnError() throws {
        let path = try makeTemporaryFolder(self) + "/overflow.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("d", shape: [7, 11, 13], values: [UInt8](repeating: 1, count: 1001))
            try file.close()
        }
        try patch(path, le64([7, 11, 13]), le64([1 << 40, 1 << 40, 13]))
        let error = thrownError(try File(path).dataset("d").read(as: UInt8.self)) as? HDF5Error
        XCTAssertEqual(error, .tooLarge(file: path, name: "/d", reason: "declares shape (1099511627776, 1099511627776, 13), too many values to address"))
    }

    func testReadsBeyondTheMemoryBudgetAreErrors() throws {
        let path = try makeTemporaryFolder(self) + "/budget.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("d", shape: [7, 11, 13], values: [UInt8](repeating: 1, count: 1001))
            try file.close()
        }
        let file = try File(path)
        try withMemoryBudget(1000) {
            XCTAssertEqual(thrownError(try file.dataset("d").read(as: UInt8.self)) as? HDF5Error,
                           .tooLarge(file: path, name: "/d", reason: "declares shape (7, 11, 13) of uint8, which needs 1001 bytes in memory, "
                                     + "more than the memory budget of 1000 bytes"))
        }
        XCTAssertEqual(try file.dataset("d").read(as: UInt8.self).count, 1001)
        XCTAssertTrue(ReadLimits.memoryBudgetDescription.hasSuffix("(half of the physical memory)"))
        XCTAssertGreaterThanOrEqual(ReadLimits.defaultMemoryBudget, 1 << 30)
    }

    func testReadsInSlabsGiveTheSameValues() throws {
        let path = try makeTemporaryFolder(self) + "/slabs.h5"
        let values = (0..<(37 * 5 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 97) }
        let sequences = (0..<23).map { Array(values.prefix($0 * 7)) }
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("contiguous", shape: [37, 5, 3], values: values)
            try file.root().createDataset("chunked", shape: [37, 5, 3], values: values, gzipLevel: 1)
            try file.root().createVariableLengthDataset("sequences", values: sequences)
            try file.close()
        }
        let saved = Dataset.slabBytes
        defer { Dataset.slabBytes = saved }
        for slab in [1, 60, 61, 100, 1 << 20] {
            Dataset.slabBytes = slab
            let file = try File(path)
            XCTAssertEqual(try file.dataset("contiguous").read(as: UInt8.self), values, "slabs of \(slab) bytes")
            XCTAssertEqual(try file.dataset("chunked").read(as: Float.self), values.map(Float.init), "slabs of \(slab) bytes")
            XCTAssertEqual(try file.dataset("sequences").readVariableLengthBytes(), sequences, "slabs of \(slab) bytes")
        }
    }

    func testLoaderNamesTheFileAndDataset() throws {
        let folder = try makeTemporaryFolder(self)
        do {
            let file = try File(folder + "/train_data.hdf5", mode: .create)
            try file.root().createDataset("datasets/n1", shape: [2, 8, 8, 3], values: [UInt8](repeating: 5, count: 384))
            try file.close()
        }
        try writeJSON(["n1"], to: folder + "/train_labels.json")
        try patch(folder + "/train_data.hdf5", le64([2, 8, 8, 3]), le64([40_000, 8, 8, 3]))
        let error = thrownError(try DatasetLoader.load(folder)) as? DataError
        guard case .hdf5(let message)? = error else { return XCTFail("expected an hdf5 error, got \(String(describing: error))") }
        XCTAssertTrue(message.hasPrefix("\(folder)/train_data.hdf5: '/datasets/n1': declares shape (40000, 8, 8, 3) of uint8 (7.3 MiB), "
                                        + "but the file holds only "), message)

        // An image side grown past the per-image limit is caught before reading, naming the images' shape.
        try patch(folder + "/train_data.hdf5", le64([40_000, 8, 8, 3]), le64([2, 8, 1 << 40, 3]))
        XCTAssertEqual(thrownError(try DatasetLoader.load(folder)) as? DataError,
                       .badDataset(file: folder + "/train_data.hdf5", dataset: "datasets/n1",
                                   reason: "images of 3×8×1099511627776 are larger than the limit of 268435456 values per image"))

        // Many images of an acceptable size, past the memory budget.
        try patch(folder + "/train_data.hdf5", le64([2, 8, 1 << 40, 3]), le64([1 << 40, 8, 8, 3]))
        guard case .tooLarge(let file, let reason)? = thrownError(try DatasetLoader.load(folder)) as? DataError else {
            return XCTFail("expected tooLarge")
        }
        XCTAssertEqual(file, folder + "/train_data.hdf5")
        XCTAssertTrue(reason.hasPrefix("dataset 'datasets/n1': the classes read up to it need 192.0 TiB, more than the memory budget of "), reason)
    }

    // MARK: - Global heap (variable-length data)

    /// A file with a variable-length dataset and a string attribute, and the offset of its global heap collection.
    private func variableLengthFile() throws -> (path: String, collection: Int, bytes: [UInt8]) {
        let path = try makeTemporaryFolder(self) + "/vlen.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().createVariableLengthDataset("datasets/c", values: [[1, 2, 3], [4, 5, 6, 7, 8]])
            try file.close()
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let signature = Array("GCOL".utf8)
        let collection = try XCTUnwrap((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual(signature) })
        return (path, collection, bytes)
    }

    /// Writes `bytes` with the 8 bytes at `offset` set to `value`.
    private func write(_ bytes: [UInt8], to path: String, setting offset: Int, to value: UInt64) throws {
        var copy = bytes
        copy.replaceSubrange(offset..<(offset + 8), with: le64([value]))
        try Data(copy).write(to: URL(fileURLWithPath: path))
    }

    private func damage(_ path: String) -> String? {
        guard case .damaged(let file, let name, let reason)? = thrownError(try File(path).dataset("datasets/c").readVariableLengthBytes()) as? HDF5Error else {
            XCTFail("expected damaged")
            return nil
        }
        XCTAssertEqual(file, path)
        XCTAssertEqual(name, "/datasets/c")
        return reason
    }

    func testGlobalHeapChecks() throws {
        let (path, collection, bytes) = try variableLengthFile()
        XCTAssertEqual(try File(path).dataset("datasets/c").readVariableLengthBytes(), [[1, 2, 3], [4, 5, 6, 7, 8]])
        // Objects: header (16 bytes), then index 1 (16 + 8 bytes), index 2 (16 + 8), then free space.
        let first = collection + 16, second = first + 24, free = second + 24
        XCTAssertEqual(bytes[first], 1)
        XCTAssertEqual(bytes[second], 2)
        XCTAssertEqual(bytes[free], 0)

        // The free-space object of size 0: libhdf5 would parse the collection forever.
        try write(bytes, to: path, setting: free + 8, to: 0)
        XCTAssertEqual(damage(path), "the global heap collection at address \(collection) has an empty free-space object at offset 64 "
                       + "(libhdf5 would parse it forever)")
        // An object larger than its collection: libhdf5 would copy past it.
        try write(bytes, to: path, setting: first + 8, to: 1 << 40)
        XCTAssertEqual(damage(path)?.hasPrefix("the global heap collection at address \(collection) has object 1 at offset 16 declaring 1099511627776 bytes"), true)
        // An object that overruns the collection.
        try write(bytes, to: path, setting: second + 8, to: 4070)
        XCTAssertEqual(damage(path)?.contains("has object 2 at offset 40 overrunning the collection's"), true)
        // An object shorter than the sequence pointing at it (5 → 4: the same padding).
        try write(bytes, to: path, setting: second + 8, to: 4)
        XCTAssertEqual(damage(path), "sequence 1 is 5 values long, but its global heap object holds 4 bytes")
        // An object renumbered: the sequence points at an object that is not there.
        var renumbered = bytes
        renumbered[first] = 9
        try Data(renumbered).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(damage(path), "sequence 0 points to object 1 of the global heap collection at address \(collection), which holds no such object")
        // A damaged signature, and a collection size past the end of the file.
        var signature = bytes
        signature[collection + 3] = UInt8(ascii: "X")
        try Data(signature).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(damage(path), "the global heap collection at address \(collection) has no GCOL signature")
        try write(bytes, to: path, setting: collection + 8, to: 1 << 33)
        XCTAssertEqual(damage(path), "the global heap collection at address \(collection) declares 8589934592 bytes, more than the file holds")
    }

    func testVariableLengthStringAttributeIsChecked() throws {
        let path = try makeTemporaryFolder(self) + "/attribute.h5"
        do {
            let file = try File(path, mode: .create)
            try file.root().setAttribute("metabench_layout", "metabench-fewshot-v1")
            try file.close()
        }
        XCTAssertEqual(try File(path).root().stringAttribute("metabench_layout"), "metabench-fewshot-v1")
        // The string's heap object: its size (20) changed to 0x1000 (past the collection).
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let signature = Array("GCOL".utf8)
        let collection = try XCTUnwrap((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual(signature) })
        try write(bytes, to: path, setting: collection + 16 + 8, to: 0x1000)
        let error = thrownError(try File(path).root().stringAttribute("metabench_layout")) as? HDF5Error
        guard case .damaged(path, "/@metabench_layout", let reason)? = error else { return XCTFail("expected damaged, got \(String(describing: error))") }
        XCTAssertTrue(reason.contains("overrunning the collection"), reason)
        // Through the loader: the layout attribute of a MetaBench file.
        XCTAssertEqual((thrownError(try DatasetLoader.load(path)) as? DataError)?.description.hasPrefix("\(path): '/@metabench_layout': damaged file: "), true)
    }

    func testTieredImageNetFixtureWithAnEmptyFreeSpaceObject() throws {
        // The hang found by the fault campaign: one bit of the free-space object's size flipped (16 → 0).
        let folder = try makeTemporaryFolder(self)
        let source = try SharedData.path("layout-fixtures/tieredimagenet")
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: folder + "/" + name)
        }
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder + "/train_data.hdf5")))
        XCTAssertEqual(bytes[39072 + 36416], 0, "object index 0 (free space)")
        XCTAssertEqual(bytes[39072 + 36416 + 8], 16)
        bytes[39072 + 36416 + 8] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: folder + "/train_data.hdf5"))
        let start = Date()
        let error = thrownError(try DatasetLoader.load(folder)) as? DataError
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertEqual(error, .hdf5("\(folder)/train_data.hdf5: '/datasets/train_class_00': damaged file: the global heap collection "
                                    + "at address 39072 has an empty free-space object at offset 36416 (libhdf5 would parse it forever)"))
    }
}
