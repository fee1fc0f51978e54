import Foundation
import HDF5
import XCTest

final class HDF5Tests: XCTestCase {
    func testDatasetRoundTrips() throws {
        let path = try makeTemporaryFolder(self) + "/round.h5"
        let bytes = (0..<120).map { UInt8($0 * 2 % 256) }
        let floats: [Float] = [0, -1.5, .pi, .greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0]
        let longs: [Int64] = [.min, -1, 0, 1, .max, 42]
        let ints: [Int32] = [.min, 0, .max]
        do {
            let file = try File(path, mode: .create)
            try file.root().createDataset("a/b/bytes", shape: [2, 3, 4, 5], values: bytes)
            try file.root().createDataset("floats", shape: [2, 3], values: floats, gzipLevel: 4)
            try file.root().createDataset("longs", shape: [6], values: longs, gzipLevel: 9)
            try file.root().createDataset("ints", shape: [3], values: ints)
            try file.root().createDataset("chunked", shape: [2, 3, 4, 5], values: bytes, gzipLevel: 4)
            try file.root().createDataset("empty", shape: [0, 3], values: [Float]())
            try file.close()
        }
        let file = try File(path)
        let ds = try file.dataset("a/b/bytes")
        XCTAssertEqual(try ds.shape(), [2, 3, 4, 5])
        XCTAssertEqual(try ds.elementType(), .uint8)
        XCTAssertEqual(try ds.read(as: UInt8.self), bytes)
        XCTAssertEqual(try file.dataset("chunked").read(as: UInt8.self), bytes)
        let readFloats: [Float] = try file.dataset("floats").read()
        XCTAssertEqual(readFloats.map(\.bitPattern), floats.map(\.bitPattern))
        XCTAssertEqual(try file.dataset("floats").elementType(), .float32)
        XCTAssertEqual(try file.dataset("longs").read(as: Int64.self), longs)
        XCTAssertEqual(try file.dataset("longs").elementType(), .int64)
        XCTAssertEqual(try file.dataset("ints").read(as: Int32.self), ints)
        XCTAssertEqual(try file.dataset("ints").elementType(), .int32)
        XCTAssertEqual(try file.dataset("empty").shape(), [0, 3])
        XCTAssertEqual(try file.dataset("empty").read(as: Float.self), [])
        // libhdf5 converts on read: uint8 read as float.
        XCTAssertEqual(try ds.read(as: Float.self).prefix(3), [0, 2, 4])
    }

    func testGroupsMembersAndAttributes() throws {
        let path = try makeTemporaryFolder(self) + "/groups.h5"
        do {
            let file = try File(path, mode: .create)
            let root = try file.root()
            try root.setAttribute("layout", "test-v1")
            try root.setAttribute("count", 7)
            try root.setAttribute("scale", 0.25)
            let group = try file.createGroup("x/y/z")
            try group.setAttribute("name", "zed ünïcode")
            try group.createDataset("d", shape: [1], values: [UInt8(3)]).setAttribute("class_name", "c")
            try file.createGroup("x/w")
            XCTAssertEqual(try file.createGroup("x/y").name, "/x/y") // existing group is returned
            try file.close()
        }
        let file = try File(path, mode: .readOnly)
        let root = try file.root()
        XCTAssertEqual(try root.stringAttribute("layout"), "test-v1")
        XCTAssertEqual(try root.intAttribute("count"), 7)
        XCTAssertEqual(try root.doubleAttribute("scale"), 0.25)
        XCTAssertEqual(try root.doubleAttribute("count"), 7)
        XCTAssertEqual(Set(try root.attributeNames()), ["layout", "count", "scale"])
        XCTAssertFalse(try root.hasAttribute("nope"))
        XCTAssertEqual(try file.members(), [Member(name: "x", kind: .group)])
        XCTAssertEqual(try file.group("x").members(), [Member(name: "w", kind: .group), Member(name: "y", kind: .group)])
        XCTAssertEqual(try file.group("x/y/z").members(), [Member(name: "d", kind: .dataset)])
        XCTAssertEqual(try file.group("x/y/z").stringAttribute("name"), "zed ünïcode")
        XCTAssertEqual(try file.dataset("x/y/z/d").stringAttribute("class_name"), "c")
        XCTAssertTrue(try file.exists("x/y/z/d"))
        XCTAssertFalse(try file.exists("x/q/z"))

        XCTAssertEqual(thrownError(try file.group("x/q")) as? HDF5Error, .noSuchObject(file: path, name: "/x/q"))
        XCTAssertEqual(thrownError(try file.dataset("x/y")) as? HDF5Error, .wrongKind(file: path, name: "/x/y", expected: "a dataset"))
        XCTAssertEqual(thrownError(try root.intAttribute("layout")) as? HDF5Error,
                       .wrongType(file: path, name: "/@layout", expected: "an integer", actual: "string"))
        XCTAssertEqual(thrownError(try root.stringAttribute("missing")) as? HDF5Error, .noSuchObject(file: path, name: "/@missing"))
        XCTAssertEqual(thrownError(try root.createDataset("bad", shape: [2, 2], values: [UInt8(1)])) as? HDF5Error,
                       .badShape(file: path, name: "/bad", reason: "shape [2, 2] needs 4 values, got 1"))
    }

    func testVariableLengthBytesRoundTrip() throws {
        let path = try makeTemporaryFolder(self) + "/vlen.h5"
        let values: [[UInt8]] = [[1, 2, 3], [], [255], Array(repeating: 7, count: 1000)]
        do {
            let file = try File(path, mode: .create)
            try file.root().createVariableLengthDataset("datasets/c", values: values)
            try file.close()
        }
        let file = try File(path)
        XCTAssertEqual(try file.dataset("datasets/c").elementType(), .variableLengthUInt8)
        XCTAssertEqual(try file.dataset("datasets/c").readVariableLengthBytes(), values)
        // A vlen dataset is not numeric, and a numeric one is not vlen.
        XCTAssertEqual(thrownError(try file.dataset("datasets/c").read(as: UInt8.self)) as? HDF5Error,
                       .wrongType(file: path, name: "/datasets/c", expected: "uint8", actual: "variable-length uint8"))
    }

    func testReadsStringAttributesWrittenByH5py() throws {
        // tieredImageNet's fixture was written by h5py: variable-length UTF-8 string attributes.
        let file = try File(try SharedData.path("layout-fixtures/tieredimagenet/train_data.hdf5"))
        let ds = try file.dataset("datasets/train_class_00")
        XCTAssertEqual(try ds.stringAttribute("label_general"), "general_0")
        XCTAssertEqual(try ds.stringAttribute("label_specific"), "train_class_00")
        XCTAssertEqual(try ds.shape(), [10])
        let pngs = try ds.readVariableLengthBytes()
        XCTAssertEqual(pngs.count, 10)
        XCTAssertEqual(Array(pngs[0].prefix(4)), [0x89, 0x50, 0x4E, 0x47])
    }

    func testReadsGzipChunkedDatasetWrittenByH5py() throws {
        let file = try File(try SharedData.path("omniglot-small/data.hdf5"))
        let ds = try file.dataset("images_background/Balinese/character01")
        XCTAssertEqual(try ds.shape(), [20, 105, 105])
        let pixels: [UInt8] = try ds.read()
        XCTAssertEqual(sum(pixels), 5_012_790)
        XCTAssertEqual(try file.members().map(\.name), ["images_background"])
    }

    func testMissingRandomAndTruncatedFiles() throws {
        let folder = try makeTemporaryFolder(self)
        XCTAssertEqual(thrownError(try File(folder + "/missing.h5")) as? HDF5Error, .fileNotFound(folder + "/missing.h5"))
        XCTAssertFalse(File.isHDF5(folder + "/missing.h5"))

        let random = folder + "/random.h5"
        var generator = SystemRandomNumberGenerator()
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: random))
        XCTAssertEqual(thrownError(try File(random)) as? HDF5Error, .notHDF5(random))
        XCTAssertFalse(File.isHDF5(random))

        let empty = folder + "/empty.h5"
        FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertEqual(thrownError(try File(empty)) as? HDF5Error, .notHDF5(empty))

        let truncated = folder + "/truncated.h5"
        let real = try Data(contentsOf: URL(fileURLWithPath: try SharedData.path("layout-fixtures/miniimagenet/test_data.hdf5")))
        try real.prefix(real.count / 2).write(to: URL(fileURLWithPath: truncated))
        let error = thrownError(try File(truncated))
        XCTAssertEqual(error as? HDF5Error, .notHDF5(truncated))
        XCTAssertEqual("\(error.map { "\($0)" } ?? "")", "\(truncated): not an HDF5 file (or truncated or damaged)")

        XCTAssertEqual(thrownError(try File(folder)) as? HDF5Error, .cannotOpen(path: folder, reason: "it is a folder, not a file"))
        XCTAssertEqual(thrownError(try File(folder + "/no/such/folder/x.h5", mode: .create)) as? HDF5Error,
                       .cannotOpen(path: folder + "/no/such/folder/x.h5",
                                   reason: "cannot create the file (does its folder exist, and is it writable?)"))
    }

    func testClosedFileThrows() throws {
        let path = try makeTemporaryFolder(self) + "/closed.h5"
        let file = try File(path, mode: .create)
        let group = try file.createGroup("g")
        try file.close()
        XCTAssertNotNil(thrownError(try group.members()) as? HDF5Error)
        XCTAssertNotNil(thrownError(try file.root()) as? HDF5Error)
    }

    func testConcurrentReadsAreSerialised() throws {
        let path = try SharedData.path("omniglot-small/data.hdf5")
        let sums = UnsafeMutableBufferPointer<Int>.allocate(capacity: 8)
        defer { sums.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            let pixels: [UInt8] = (try? File(path).dataset("images_background/Balinese/character01").read()) ?? []
            sums[index] = sum(pixels)
        }
        XCTAssertEqual(Array(sums), Array(repeating: 5_012_790, count: 8))
    }
}
