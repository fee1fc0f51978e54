import CHDF5
import Foundation

/// One variable-length value as the file stores it: a length and the global heap object holding the values.
struct StoredSequence: Equatable {
    /// Number of base-type values (characters for a string).
    var length: Int
    /// Address of the heap collection, relative to the file's base address; 0 for a null value.
    var collection: UInt64
    /// Index of the object in its collection.
    var object: Int
}

/// Checks the global heap collections that variable-length values (vlen sequences, vlen strings) point
/// into, before libhdf5 reads them.
///
/// libhdf5 1.10 trusts these structures. A free-space object of size 0 makes its collection parser loop
/// forever (the next object starts where this one began); an object that overruns its collection, an
/// object index past the last object, or an object larger than the sequence that points at it makes
/// `H5HG_read` copy out of bounds. So every stored sequence is read first in its raw form (through the
/// conversion `RawSequences` registers), every collection it points into is parsed here exactly as
/// libhdf5 parses it but with every bound checked, and each sequence must point at an existing object of
/// exactly its length. Only then does libhdf5 read the values.
///
/// Global heap collection format (HDF5 file format specification, "Global Heap"): "GCOL", version 1,
/// 3 reserved bytes, the collection size (a length field); then objects, each an index (2 bytes), a
/// reference count (2), 4 reserved bytes, a size (a length field) and the data padded to 8 bytes; index 0
/// is the free space, whose size includes its header. Numbers are little-endian.
final class GlobalHeap {
    let path: String
    let fileSize: Int
    /// Where address 0 is in the file (after a user block).
    let base: Int
    let addressSize: Int
    let lengthSize: Int
    /// Bytes of one stored sequence: length (4), collection address, object index (4).
    var sequenceSize: Int { 4 + addressSize + 4 }
    private var collections: [UInt64: [Int: Int]] = [:]
    private var handle: FileHandle?

    /// Reads the file's address and length sizes, base address and size (inside `withHDF5`).
    init(fileID: hid_t, path: String) throws {
        self.path = path
        var size: hsize_t = 0
        guard H5Fget_filesize(fileID, &size) >= 0 else {
            throw HDF5Error.callFailed(function: "H5Fget_filesize", file: path, name: "/")
        }
        let fcpl = H5Fget_create_plist(fileID)
        guard fcpl >= 0 else { throw HDF5Error.callFailed(function: "H5Fget_create_plist", file: path, name: "/") }
        defer { _ = H5Pclose(fcpl) }
        var addressSize = 0, lengthSize = 0
        var userBlock: hsize_t = 0
        guard H5Pget_sizes(fcpl, &addressSize, &lengthSize) >= 0, H5Pget_userblock(fcpl, &userBlock) >= 0 else {
            throw HDF5Error.callFailed(function: "H5Pget_sizes", file: path, name: "/")
        }
        guard (2...8).contains(addressSize), (2...8).contains(lengthSize),
              let fileSize = Int(exactly: size), let base = Int(exactly: userBlock) else {
            throw HDF5Error.damaged(file: path, name: "/", reason: "unusable superblock sizes (addresses of \(addressSize) bytes, lengths of \(lengthSize) bytes)")
        }
        self.fileSize = fileSize
        self.base = base
        self.addressSize = addressSize
        self.lengthSize = lengthSize
    }

    deinit { try? handle?.close() }

    /// Decodes `count` stored sequences from `bytes`.
    func decode(_ bytes: [UInt8], count: Int) -> [StoredSequence] {
        (0..<count).map { i in
            let at = i * sequenceSize
            return StoredSequence(length: Int(Self.littleEndian(bytes, at, 4)),
                                  collection: Self.littleEndian(bytes, at + 4, addressSize),
                                  object: Int(Self.littleEndian(bytes, at + 4 + addressSize, 4)))
        }
    }

    /// Checks that `sequence` (element `element` of `name`, values of `baseSize` bytes) points at an object
    /// of exactly its size in a sound collection.
    func check(_ sequence: StoredSequence, baseSize: Int, name: String, element: String) throws {
        guard sequence.collection != 0 else { return }  // a null sequence: libhdf5 reads nothing
        let objects = try collection(at: sequence.collection, name: name)
        guard sequence.object > 0, let size = objects[sequence.object] else {
            throw HDF5Error.damaged(file: path, name: name, reason: "\(element) points to object \(sequence.object) of the "
                                    + "global heap collection at address \(sequence.collection), which holds no such object")
        }
        guard let expected = ReadLimits.product([sequence.length, baseSize]), size == expected else {
            throw HDF5Error.damaged(file: path, name: name, reason: "\(element) is \(sequence.length) values long, but its "
                                    + "global heap object holds \(size) bytes")
        }
    }

    /// The objects (index → size) of the collection at `address`, parsed and checked once per file.
    private func collection(at address: UInt64, name: String) throws -> [Int: Int] {
        if let known = collections[address] { return known }
        func damaged(_ reason: String) -> HDF5Error {
            HDF5Error.damaged(file: path, name: name, reason: "the global heap collection at address \(address) \(reason)")
        }
        let headerSize = 8 + lengthSize
        guard let relative = Int(exactly: address), let start = ReadLimits.sum([base, relative]),
              let headerEnd = ReadLimits.sum([start, headerSize]), headerEnd <= fileSize else {
            throw damaged("is beyond the end of the file (\(fileSize) bytes)")
        }
        let header = try read(at: start, count: headerSize)
        guard header.prefix(4).elementsEqual("GCOL".utf8) else { throw damaged("has no GCOL signature") }
        guard header[4] == 1 else { throw damaged("has version \(header[4]), expected 1") }
        let declared = Self.littleEndian(header, 8, lengthSize)
        guard let size = Int(exactly: declared), size >= headerSize,
              let end = ReadLimits.sum([start, size]), end <= fileSize else {
            throw damaged("declares \(declared) bytes, more than the file holds")
        }
        guard size <= ReadLimits.memoryBudget else {
            throw damaged("declares \(ReadLimits.byteCount(size)), more than \(ReadLimits.memoryBudgetDescription)")
        }
        let bytes = try read(at: start, count: size)
        // libhdf5's parse (H5HG__cache_heap_deserialize), with every step checked.
        let objectHeaderSize = 8 + lengthSize
        var objects: [Int: Int] = [:]
        var offset = headerSize
        while offset < size {
            if offset + objectHeaderSize > size { break }  // too small for an object: free space
            let index = Int(Self.littleEndian(bytes, offset, 2))
            let stored = Self.littleEndian(bytes, offset + 8, lengthSize)
            guard let objectSize = Int(exactly: stored), objectSize <= size else {
                throw damaged("has object \(index) at offset \(offset) declaring \(stored) bytes, more than the collection's \(size)")
            }
            let need = index > 0 ? objectHeaderSize + (objectSize + 7) / 8 * 8 : objectSize
            guard need > 0 else {
                throw damaged("has an empty free-space object at offset \(offset) (libhdf5 would parse it forever)")
            }
            guard offset + need <= size else {
                throw damaged("has object \(index) at offset \(offset) overrunning the collection's \(size) bytes")
            }
            if index > 0 { objects[index] = objectSize }
            offset += need
        }
        collections[address] = objects
        ProgressMonitor.hdf5.beat()
        return objects
    }

    private func read(at offset: Int, count: Int) throws -> [UInt8] {
        do {
            if handle == nil { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) }
            guard let handle else { throw CocoaError(.fileReadUnknown) }
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else { throw CocoaError(.fileReadTooLarge) }
            return [UInt8](data)
        } catch {
            throw HDF5Error.cannotOpen(path: path, reason: "cannot read \(count) bytes at offset \(offset)")
        }
    }

    /// The little-endian unsigned number of `size` (≤ 8) bytes at `offset`.
    static func littleEndian(_ bytes: [UInt8], _ offset: Int, _ size: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in (0..<size).reversed() { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }
}

// MARK: - Raw sequences

/// Reading variable-length values in their stored form (length, heap collection, object index), without
/// libhdf5 following them into the global heap.
///
/// libhdf5 has no call for this, so a conversion function is registered from any variable-length type to an
/// opaque type tagged `tag`: libhdf5 hands a conversion the values as stored, and since both types have the
/// same size the function leaves the bytes as they are.
enum RawSequences {
    static let tag = "metabench: stored variable-length sequence"

    /// Registers the conversion once (inside `withHDF5`); false when libhdf5 refused it.
    static let registered: Bool = {
        let source = H5Tvlen_create(chdf5_t_native_uint8())
        let target = H5Tcreate(H5T_OPAQUE, 16)
        defer {
            if source >= 0 { _ = H5Tclose(source) }
            if target >= 0 { _ = H5Tclose(target) }
        }
        guard source >= 0, target >= 0, H5Tset_tag(target, tag) >= 0 else { return false }
        return H5Tregister(H5T_PERS_SOFT, "metabench_stored_sequences", source, target, convert) >= 0
    }()

    /// The memory type that receives stored sequences of `size` bytes (close it after use).
    static func memoryType(size: Int, file: String, name: String) throws -> hid_t {
        guard registered else { throw HDF5Error.callFailed(function: "H5Tregister", file: file, name: name) }
        let type = H5Tcreate(H5T_OPAQUE, size)
        guard type >= 0 else { throw HDF5Error.callFailed(function: "H5Tcreate", file: file, name: name) }
        guard H5Tset_tag(type, tag) >= 0 else {
            _ = H5Tclose(type)
            throw HDF5Error.callFailed(function: "H5Tset_tag", file: file, name: name)
        }
        return type
    }

    /// The conversion: accepts only a variable-length source and a `tag`ged opaque target of the same size,
    /// and converts by leaving the stored bytes in place.
    private static let convert: H5T_conv_t = { source, target, cdata, _, _, _, _, _, _ in
        guard let cdata else { return -1 }
        switch cdata.pointee.command {
        case H5T_CONV_INIT:
            let sourceClass = H5Tget_class(source)
            guard sourceClass == H5T_VLEN || (sourceClass == H5T_STRING && H5Tis_variable_str(source) > 0),
                  H5Tget_class(target) == H5T_OPAQUE, H5Tget_size(source) == H5Tget_size(target),
                  let name = H5Tget_tag(target) else { return -1 }
            defer { _ = H5free_memory(name) }
            guard String(cString: name) == tag else { return -1 }
            cdata.pointee.need_bkg = H5T_BKG_NO
            return 0
        default:
            return 0
        }
    }
}
