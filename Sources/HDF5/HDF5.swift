import CHDF5
import Foundation

// MARK: - The lock

/// The one lock around every libhdf5 call: the Debian build of libhdf5 is not thread-safe.
private let hdf5Lock = NSRecursiveLock()

/// Turns off libhdf5's printing of its error stack, once, so damaged files give our errors, not stderr noise.
private let silenceErrorStack: Void = {
    _ = H5Eset_auto2(chdf5_e_default(), nil, nil)
}()

/// Runs `body` holding the HDF5 lock, watched by the watchdog (`ProgressMonitor.hdf5`) and the crash
/// guard (`CrashGuard`) as a call on `path` (nil: the file of an enclosing call).
@inline(__always)
func withHDF5<T>(_ path: String? = nil, _ body: () throws -> T) rethrows -> T {
    hdf5Lock.lock()
    defer { hdf5Lock.unlock() }
    _ = silenceErrorStack
    let monitor = ProgressMonitor.hdf5
    let previous = monitor.enter(path)
    CrashGuard.enter(path)
    defer {
        CrashGuard.leave()
        monitor.leave(previous)
    }
    return try body()
}

// MARK: - Element types

/// The type of the values a dataset or attribute holds, as far as callers need to check it.
public struct ElementType: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case integer, float, string, variableLength, other }

    public var kind: Kind
    /// Bytes per value (for variable-length data, per value of the base type).
    public var size: Int
    public var isSigned: Bool
    /// For variable-length data: the kind of the elements of each sequence.
    public var baseKind: Kind?

    public init(kind: Kind, size: Int, isSigned: Bool = false, baseKind: Kind? = nil) {
        self.kind = kind
        self.size = size
        self.isSigned = isSigned
        self.baseKind = baseKind
    }

    public static let uint8 = ElementType(kind: .integer, size: 1)
    public static let int32 = ElementType(kind: .integer, size: 4, isSigned: true)
    public static let int64 = ElementType(kind: .integer, size: 8, isSigned: true)
    public static let float32 = ElementType(kind: .float, size: 4, isSigned: true)
    public static let float64 = ElementType(kind: .float, size: 8, isSigned: true)
    /// Variable-length sequences of uint8 (h5py's `special_dtype(vlen=np.uint8)`).
    public static let variableLengthUInt8 = ElementType(kind: .variableLength, size: 1, baseKind: .integer)

    public var isNumeric: Bool { kind == .integer || kind == .float }

    public var description: String {
        switch kind {
        case .integer: return "\(isSigned ? "int" : "uint")\(size * 8)"
        case .float: return "float\(size * 8)"
        case .string: return "string"
        case .variableLength:
            let base = ElementType(kind: baseKind ?? .other, size: size, isSigned: isSigned)
            return "variable-length \(base)"
        case .other: return "an unsupported type"
        }
    }

    /// Describes an HDF5 datatype id (inside `withHDF5`).
    init(typeID: hid_t) {
        let cls = H5Tget_class(typeID)
        let size = Int(H5Tget_size(typeID))
        if cls == H5T_INTEGER {
            self.init(kind: .integer, size: size, isSigned: H5Tget_sign(typeID) != H5T_SGN_NONE)
        } else if cls == H5T_FLOAT {
            self.init(kind: .float, size: size, isSigned: true)
        } else if cls == H5T_STRING {
            self.init(kind: .string, size: size)
        } else if cls == H5T_VLEN {
            let base = H5Tget_super(typeID)
            defer { if base >= 0 { _ = H5Tclose(base) } }
            if base < 0 {
                self.init(kind: .variableLength, size: 0, baseKind: .other)
            } else {
                let inner = ElementType(typeID: base)
                self.init(kind: .variableLength, size: inner.size, isSigned: inner.isSigned, baseKind: inner.kind)
            }
        } else {
            self.init(kind: .other, size: size)
        }
    }
}

/// A Swift number type that maps to a native HDF5 type, for reading and writing datasets and attributes.
public protocol HDF5Scalar {
    /// The matching element type (the file type written).
    static var elementType: ElementType { get }
    init()
}

extension UInt8: HDF5Scalar { public static var elementType: ElementType { .uint8 } }
extension Int32: HDF5Scalar { public static var elementType: ElementType { .int32 } }
extension Int64: HDF5Scalar { public static var elementType: ElementType { .int64 } }
extension Float: HDF5Scalar { public static var elementType: ElementType { .float32 } }
extension Double: HDF5Scalar { public static var elementType: ElementType { .float64 } }

extension HDF5Scalar {
    /// The native memory type id (inside `withHDF5`).
    static var nativeTypeID: hid_t {
        switch elementType {
        case .uint8: return chdf5_t_native_uint8()
        case .int32: return chdf5_t_native_int32()
        case .int64: return chdf5_t_native_int64()
        case .float32: return chdf5_t_native_float()
        default: return chdf5_t_native_double()
        }
    }
}

// MARK: - File

/// An open HDF5 file; closed by `close()` or when released.
public final class File {
    /// How to open a file.
    public enum Mode: Sendable {
        /// Open an existing file for reading.
        case readOnly
        /// Open an existing file for reading and writing.
        case readWrite
        /// Create the file, replacing any file already at the path.
        case create
    }

    public let path: String
    let id: hid_t
    private(set) var isClosed = false
    private var heap: GlobalHeap?

    /// Opens or creates the file at `path`; a missing file, or one that is not HDF5, is an `HDF5Error`.
    public init(_ path: String, mode: Mode = .readOnly) throws {
        self.path = path
        let id: hid_t = try withHDF5(path) {
            let fapl = H5Pcreate(chdf5_p_file_access())
            guard fapl >= 0 else { throw HDF5Error.callFailed(function: "H5Pcreate", file: path, name: "/") }
            defer { _ = H5Pclose(fapl) }
            // Closing the file closes every object still open in it, so `close()` really closes.
            _ = H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG)
            switch mode {
            case .create:
                let id = H5Fcreate(path, chdf5_f_acc_trunc(), chdf5_p_default(), fapl)
                guard id >= 0 else {
                    throw HDF5Error.cannotOpen(path: path, reason: "cannot create the file (does its folder exist, and is it writable?)")
                }
                return id
            case .readOnly, .readWrite:
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    throw HDF5Error.fileNotFound(path)
                }
                guard !isDirectory.boolValue else {
                    throw HDF5Error.cannotOpen(path: path, reason: "it is a folder, not a file")
                }
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw HDF5Error.cannotOpen(path: path, reason: "permission denied")
                }
                guard H5Fis_hdf5(path) > 0 else { throw HDF5Error.notHDF5(path) }
                let flags = mode == .readOnly ? chdf5_f_acc_rdonly() : chdf5_f_acc_rdwr()
                let id = H5Fopen(path, flags, fapl)
                guard id >= 0 else { throw HDF5Error.notHDF5(path) }
                return id
            }
        }
        self.id = id
    }

    deinit {
        if !isClosed { withHDF5 { _ = H5Fclose(id) } }
    }

    /// Whether `path` names a readable HDF5 file (false for a missing, random or truncated file).
    public static func isHDF5(_ path: String) -> Bool {
        (try? File(path)) != nil
    }

    /// Flushes and closes the file (and every object open in it); later use of its objects throws.
    public func close() throws {
        try withHDF5(path) {
            guard !isClosed else { return }
            isClosed = true
            guard H5Fclose(id) >= 0 else { throw HDF5Error.callFailed(function: "H5Fclose", file: path, name: "/") }
        }
    }

    /// The root group `/`.
    public func root() throws -> Group {
        try withHDF5(path) {
            try checkOpen("/")
            let gid = H5Gopen2(id, "/", chdf5_p_default())
            guard gid >= 0 else { throw HDF5Error.callFailed(function: "H5Gopen2", file: path, name: "/") }
            return Group(file: self, id: gid, name: "/")
        }
    }

    func checkOpen(_ name: String) throws {
        if isClosed { throw HDF5Error.cannotOpen(path: path, reason: "the file was closed before reading '\(name)'") }
    }

    /// The file's size in bytes (inside `withHDF5`).
    func size() throws -> Int {
        var size: hsize_t = 0
        guard H5Fget_filesize(id, &size) >= 0 else { throw HDF5Error.callFailed(function: "H5Fget_filesize", file: path, name: "/") }
        return Int(clamping: size)
    }

    /// The checker of the file's global heap, made on first use (inside `withHDF5`).
    func globalHeap() throws -> GlobalHeap {
        if let heap { return heap }
        try checkOpen("/")
        let made = try GlobalHeap(fileID: id, path: path)
        heap = made
        return made
    }

    /// Bytes of one stored variable-length sequence in this file.
    func sequenceSize() throws -> Int { try globalHeap().sequenceSize }

    // Conveniences that act on the root group.

    /// The group at `path` (e.g. `images_background/Latin`).
    public func group(_ path: String) throws -> Group { try root().group(path) }
    /// The dataset at `path`.
    public func dataset(_ path: String) throws -> Dataset { try root().dataset(path) }
    /// Whether an object exists at `path`.
    public func exists(_ path: String) throws -> Bool { try root().exists(path) }
    /// The members of the root group.
    public func members() throws -> [Member] { try root().members() }
    /// Creates the group at `path` and any missing groups above it (an existing group is returned).
    @discardableResult
    public func createGroup(_ path: String) throws -> Group { try root().createGroup(path) }
}

// MARK: - Members

/// One link in a group: its name and what it points to.
public struct Member: Equatable, Sendable {
    public enum Kind: Sendable { case group, dataset, other }
    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

// MARK: - Group

/// An open group of an HDF5 file.
public final class Group {
    public let file: File
    /// The path of the group inside the file.
    public let name: String
    let id: hid_t

    init(file: File, id: hid_t, name: String) {
        self.file = file
        self.id = id
        self.name = name
    }

    deinit {
        withHDF5 { if !file.isClosed { _ = H5Oclose(id) } }
    }

    func childPath(_ path: String) -> String {
        name == "/" ? "/" + path : name + "/" + path
    }

    /// Whether an object (group, dataset) exists at the relative `path`.
    public func exists(_ path: String) throws -> Bool {
        try withHDF5(file.path) {
            try file.checkOpen(childPath(path))
            let parts = path.split(separator: "/", omittingEmptySubsequences: true)
            guard !parts.isEmpty else { return true }
            var prefix = ""
            for part in parts {
                prefix += prefix.isEmpty ? String(part) : "/" + part
                let found = H5Lexists(id, prefix, chdf5_p_default())
                if found < 0 {
                    throw HDF5Error.callFailed(function: "H5Lexists", file: file.path, name: childPath(prefix))
                }
                if found == 0 { return false }
            }
            // A link may dangle: check that it can be opened.
            let oid = H5Oopen(id, path, chdf5_p_default())
            if oid < 0 { return false }
            _ = H5Oclose(oid)
            return true
        }
    }

    /// Opens the object at `path`, checking it is of the H5I type `kind`.
    private func open(_ path: String, as kind: H5I_type_t, kindName: String) throws -> hid_t {
        try withHDF5(file.path) {
            guard try exists(path) else { throw HDF5Error.noSuchObject(file: file.path, name: childPath(path)) }
            let oid = H5Oopen(id, path, chdf5_p_default())
            guard oid >= 0 else { throw HDF5Error.callFailed(function: "H5Oopen", file: file.path, name: childPath(path)) }
            guard H5Iget_type(oid) == kind else {
                _ = H5Oclose(oid)
                throw HDF5Error.wrongKind(file: file.path, name: childPath(path), expected: kindName)
            }
            return oid
        }
    }

    /// The group at the relative `path`.
    public func group(_ path: String) throws -> Group {
        try withHDF5(file.path) {
            let oid = try open(path, as: H5I_GROUP, kindName: "a group")
            return Group(file: file, id: oid, name: childPath(path))
        }
    }

    /// The dataset at the relative `path`.
    public func dataset(_ path: String) throws -> Dataset {
        try withHDF5(file.path) {
            let oid = try open(path, as: H5I_DATASET, kindName: "a dataset")
            return Dataset(file: file, id: oid, name: childPath(path))
        }
    }

    /// The links in this group, in name order, each marked group, dataset or other.
    public func members() throws -> [Member] {
        try withHDF5(file.path) {
            try file.checkOpen(name)
            var info = H5G_info_t()
            guard H5Gget_info(id, &info) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Gget_info", file: file.path, name: name)
            }
            var result: [Member] = []
            for index in 0..<info.nlinks {
                ProgressMonitor.hdf5.beat()
                let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, chdf5_p_default())
                guard length >= 0 else {
                    throw HDF5Error.callFailed(function: "H5Lget_name_by_idx", file: file.path, name: name)
                }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                _ = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, chdf5_p_default())
                let memberName = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                var kind = Member.Kind.other
                let oid = H5Oopen(id, memberName, chdf5_p_default())
                if oid >= 0 {
                    let type = H5Iget_type(oid)
                    if type == H5I_GROUP { kind = .group } else if type == H5I_DATASET { kind = .dataset }
                    _ = H5Oclose(oid)
                }
                result.append(Member(name: memberName, kind: kind))
            }
            return result
        }
    }

    /// Creates the group at the relative `path` and any missing groups above it; an existing group is returned.
    @discardableResult
    public func createGroup(_ path: String) throws -> Group {
        try withHDF5(file.path) {
            if try exists(path) { return try group(path) }
            let lcpl = H5Pcreate(chdf5_p_link_create())
            guard lcpl >= 0 else { throw HDF5Error.callFailed(function: "H5Pcreate", file: file.path, name: childPath(path)) }
            defer { _ = H5Pclose(lcpl) }
            _ = H5Pset_create_intermediate_group(lcpl, 1)
            let gid = H5Gcreate2(id, path, lcpl, chdf5_p_default(), chdf5_p_default())
            guard gid >= 0 else { throw HDF5Error.callFailed(function: "H5Gcreate2", file: file.path, name: childPath(path)) }
            return Group(file: file, id: gid, name: childPath(path))
        }
    }

    /// Writes a dataset of `shape` (row-major values) at the relative `path`, creating groups above it.
    ///
    /// `gzipLevel` (0...9) stores it in gzip-compressed chunks of one row of the first axis (h5py's
    /// `compression="gzip"`); nil stores it contiguous.
    @discardableResult
    public func createDataset<T: HDF5Scalar>(_ path: String, shape: [Int], values: [T], gzipLevel: Int? = nil) throws -> Dataset {
        try withHDF5(file.path) {
            try file.checkOpen(childPath(path))
            let dsName = childPath(path)
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw HDF5Error.badShape(file: file.path, name: dsName, reason: "negative dimension in \(shape)")
            }
            let count = ReadLimits.product(shape)
            guard count == values.count else {
                throw HDF5Error.badShape(file: file.path, name: dsName, reason: "shape \(shape) needs "
                                         + (count.map { "\($0) values" } ?? "more values than can be addressed") + ", got \(values.count)")
            }
            let space = try makeSpace(shape: shape, name: dsName)
            defer { _ = H5Sclose(space) }
            let dcpl = try makeChunkedProperties(shape: shape, gzipLevel: gzipLevel, name: dsName)
            defer { _ = H5Pclose(dcpl) }
            let lcpl = H5Pcreate(chdf5_p_link_create())
            defer { if lcpl >= 0 { _ = H5Pclose(lcpl) } }
            _ = H5Pset_create_intermediate_group(lcpl, 1)
            let did = H5Dcreate2(id, path, T.nativeTypeID, space, lcpl, dcpl, chdf5_p_default())
            guard did >= 0 else { throw HDF5Error.callFailed(function: "H5Dcreate2", file: file.path, name: dsName) }
            let dataset = Dataset(file: file, id: did, name: dsName)
            if !values.isEmpty {
                let status = values.withUnsafeBytes {
                    H5Dwrite(did, T.nativeTypeID, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                }
                guard status >= 0 else { throw HDF5Error.callFailed(function: "H5Dwrite", file: file.path, name: dsName) }
            }
            return dataset
        }
    }

    /// Writes a one-dimensional dataset of variable-length uint8 sequences (h5py's `special_dtype(vlen=np.uint8)`).
    @discardableResult
    public func createVariableLengthDataset(_ path: String, values: [[UInt8]], gzipLevel: Int? = nil) throws -> Dataset {
        try withHDF5(file.path) {
            let dsName = childPath(path)
            try file.checkOpen(dsName)
            let space = try makeSpace(shape: [values.count], name: dsName)
            defer { _ = H5Sclose(space) }
            let dcpl = try makeChunkedProperties(shape: [values.count], gzipLevel: gzipLevel, name: dsName)
            defer { _ = H5Pclose(dcpl) }
            let vtype = H5Tvlen_create(chdf5_t_native_uint8())
            guard vtype >= 0 else { throw HDF5Error.callFailed(function: "H5Tvlen_create", file: file.path, name: dsName) }
            defer { _ = H5Tclose(vtype) }
            let lcpl = H5Pcreate(chdf5_p_link_create())
            defer { if lcpl >= 0 { _ = H5Pclose(lcpl) } }
            _ = H5Pset_create_intermediate_group(lcpl, 1)
            let did = H5Dcreate2(id, path, vtype, space, lcpl, dcpl, chdf5_p_default())
            guard did >= 0 else { throw HDF5Error.callFailed(function: "H5Dcreate2", file: file.path, name: dsName) }
            let dataset = Dataset(file: file, id: did, name: dsName)
            guard !values.isEmpty else { return dataset }
            // One contiguous buffer; each hvl_t points into it.
            let flat = values.flatMap { $0 }
            let status: herr_t = flat.withUnsafeBufferPointer { buffer in
                var offset = 0
                var sequences: [hvl_t] = []
                sequences.reserveCapacity(values.count)
                let base = UnsafeMutableRawPointer(mutating: buffer.baseAddress)
                for value in values {
                    sequences.append(hvl_t(len: value.count, p: value.isEmpty ? nil : base.map { $0 + offset }))
                    offset += value.count
                }
                return sequences.withUnsafeBytes {
                    H5Dwrite(did, vtype, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), $0.baseAddress)
                }
            }
            guard status >= 0 else { throw HDF5Error.callFailed(function: "H5Dwrite", file: file.path, name: dsName) }
            return dataset
        }
    }

    private func makeSpace(shape: [Int], name: String) throws -> hid_t {
        let space: hid_t
        if shape.isEmpty {
            space = H5Screate(H5S_SCALAR)
        } else {
            let dims = shape.map { hsize_t($0) }
            space = H5Screate_simple(Int32(dims.count), dims, nil)
        }
        guard space >= 0 else { throw HDF5Error.callFailed(function: "H5Screate", file: file.path, name: name) }
        return space
    }

    private func makeChunkedProperties(shape: [Int], gzipLevel: Int?, name: String) throws -> hid_t {
        let dcpl = H5Pcreate(chdf5_p_dataset_create())
        guard dcpl >= 0 else { throw HDF5Error.callFailed(function: "H5Pcreate", file: file.path, name: name) }
        if let level = gzipLevel, !shape.isEmpty {
            var chunk = shape.map { hsize_t(max($0, 1)) }
            if shape.count == 1 {
                chunk[0] = hsize_t(min(max(shape[0], 1), 1 << 16))
            } else {
                chunk[0] = 1
            }
            guard H5Pset_chunk(dcpl, Int32(chunk.count), chunk) >= 0,
                  H5Pset_deflate(dcpl, UInt32(min(max(level, 0), 9))) >= 0 else {
                _ = H5Pclose(dcpl)
                throw HDF5Error.callFailed(function: "H5Pset_deflate", file: file.path, name: name)
            }
        }
        return dcpl
    }

    /// The group's attributes (the reading and writing methods come from `AttributeHolder`).
    public var attributes: Attributes { Attributes(file: file, id: id, name: name) }
}

// MARK: - Dataset

/// An open dataset of an HDF5 file.
///
/// Every read checks the sizes the file declares before allocating (see `ReadLimits`), reads large
/// datasets in slabs (each a heartbeat for the watchdog, see `ProgressMonitor`), and checks the global heap
/// behind variable-length data before libhdf5 follows it (see `GlobalHeap`).
public final class Dataset {
    public let file: File
    /// The path of the dataset inside the file.
    public let name: String
    let id: hid_t

    /// The most one libhdf5 read call is asked for; larger reads are split along the first axis.
    nonisolated(unsafe) static var slabBytes = 64 << 20

    init(file: File, id: hid_t, name: String) {
        self.file = file
        self.id = id
        self.name = name
    }

    deinit {
        withHDF5 { if !file.isClosed { _ = H5Oclose(id) } }
    }

    /// The dimensions of the dataset ([] for a scalar).
    public func shape() throws -> [Int] {
        try withHDF5(file.path) {
            try file.checkOpen(name)
            let space = H5Dget_space(id)
            guard space >= 0 else { throw HDF5Error.callFailed(function: "H5Dget_space", file: file.path, name: name) }
            defer { _ = H5Sclose(space) }
            let rank = H5Sget_simple_extent_ndims(space)
            guard rank >= 0 else { throw HDF5Error.callFailed(function: "H5Sget_simple_extent_ndims", file: file.path, name: name) }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            if rank > 0 {
                guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else {
                    throw HDF5Error.callFailed(function: "H5Sget_simple_extent_dims", file: file.path, name: name)
                }
            }
            return try dims.map { dim in
                guard let value = Int(exactly: dim) else {
                    throw HDF5Error.tooLarge(file: file.path, name: name, reason: "declares a dimension of \(dim)")
                }
                return value
            }
        }
    }

    /// The stored element type.
    public func elementType() throws -> ElementType {
        try withHDF5(file.path) {
            try file.checkOpen(name)
            let type = H5Dget_type(id)
            guard type >= 0 else { throw HDF5Error.callFailed(function: "H5Dget_type", file: file.path, name: name) }
            defer { _ = H5Tclose(type) }
            return ElementType(typeID: type)
        }
    }

    /// Reads every value, row-major, converted to `T` by libhdf5 (the stored type must be numeric).
    ///
    /// Throws `tooLarge` when the declared shape overflows, exceeds what the file can hold, or exceeds
    /// `ReadLimits.memoryBudget`. Specialized for the built-in scalars (generic code would fill the array with
    /// one value-witness call per value: 1.7% of a short MAML evaluation run, all in loading the dataset).
    @_specialize(where T == UInt8)
    @_specialize(where T == Int32)
    @_specialize(where T == Int64)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func read<T: HDF5Scalar>(as type: T.Type = T.self) throws -> [T] {
        try withHDF5(file.path) {
            let stored = try elementType()
            guard stored.isNumeric else {
                throw HDF5Error.wrongType(file: file.path, name: name, expected: "\(T.elementType)", actual: "\(stored)")
            }
            let dims = try shape()
            let count = try checkedCount(dims, type: stored, memoryElementSize: MemoryLayout<T>.stride)
            var values = [T](repeating: T(), count: count)
            guard count > 0 else { return values }
            try values.withUnsafeMutableBytes { buffer in
                try readSlabs(dims: dims, memoryType: T.nativeTypeID, memoryElementSize: MemoryLayout<T>.stride,
                              into: buffer.baseAddress!)
            }
            return values
        }
    }

    /// Reads a one-dimensional dataset of variable-length uint8 sequences (h5py's `special_dtype(vlen=np.uint8)`).
    ///
    /// The sequences are first read in their stored form and checked against the global heap
    /// (`GlobalHeap`); a damaged heap is a `damaged` error, never a libhdf5 read of it.
    public func readVariableLengthBytes() throws -> [[UInt8]] {
        try withHDF5(file.path) {
            let stored = try elementType()
            guard stored.kind == .variableLength, stored.baseKind == .integer, stored.size == 1 else {
                throw HDF5Error.wrongType(file: file.path, name: name, expected: "\(ElementType.variableLengthUInt8)",
                                          actual: "\(stored)")
            }
            let shape = try shape()
            guard shape.count == 1 else {
                throw HDF5Error.badShape(file: file.path, name: name, reason: "expected one dimension, found shape \(shape)")
            }
            guard shape[0] > 0 else { return [] }
            let sequences = try storedSequences(count: shape[0])
            let heap = try file.globalHeap()
            var total = 0
            for (index, sequence) in sequences.enumerated() {
                try heap.check(sequence, baseSize: 1, name: name, element: "sequence \(index)")
                if sequence.collection != 0 { total = ReadLimits.sum([total, sequence.length]) ?? Int.max }
            }
            guard total <= ReadLimits.memoryBudget else {
                throw HDF5Error.tooLarge(file: file.path, name: name, reason: "its sequences hold \(ReadLimits.byteCount(total)), "
                                         + "more than \(ReadLimits.memoryBudgetDescription)")
            }
            let memType = H5Tvlen_create(chdf5_t_native_uint8())
            guard memType >= 0 else { throw HDF5Error.callFailed(function: "H5Tvlen_create", file: file.path, name: name) }
            defer { _ = H5Tclose(memType) }
            // In slabs of at most `slabBytes` of sequence data, each one a heartbeat.
            var result: [[UInt8]] = []
            result.reserveCapacity(sequences.count)
            var first = 0
            while first < sequences.count {
                var end = first + 1, bytes = sequences[first].length
                while end < sequences.count, bytes + sequences[end].length <= Self.slabBytes {
                    bytes += sequences[end].length
                    end += 1
                }
                let slab = try readSequences(first..<end, memoryType: memType)
                for (offset, values) in slab.enumerated() {
                    let sequence = sequences[first + offset]
                    guard values.count == (sequence.collection == 0 ? 0 : sequence.length) else {
                        throw HDF5Error.damaged(file: file.path, name: name, reason: "sequence \(first + offset) "
                                                + "read back as \(values.count) values, expected \(sequence.length)")
                    }
                }
                result += slab
                first = end
            }
            return result
        }
    }

    /// The dataset's attributes (the reading and writing methods come from `AttributeHolder`).
    public var attributes: Attributes { Attributes(file: file, id: id, name: name) }

    // MARK: Checked reading

    /// The number of values of `dims`, after checking that they fit in what the file holds and in the memory
    /// budget when read as `memoryElementSize`-byte values.
    func checkedCount(_ dims: [Int], type: ElementType, memoryElementSize: Int) throws -> Int {
        let shapeText = "(" + dims.map(String.init).joined(separator: ", ") + ")"
        guard let count = ReadLimits.product(dims) else {
            throw HDF5Error.tooLarge(file: file.path, name: name, reason: "declares shape \(shapeText), too many values to address")
        }
        guard count > 0 else { return 0 }
        let fileElementSize = max(type.kind == .variableLength ? try file.sequenceSize() : type.size, 1)
        guard let fileBytes = ReadLimits.product([count, fileElementSize]),
              let memoryBytes = ReadLimits.product([count, memoryElementSize]) else {
            throw HDF5Error.tooLarge(file: file.path, name: name, reason: "declares shape \(shapeText) of \(type), too many bytes to address")
        }
        let (limit, why) = try storageLimit()
        guard fileBytes <= limit else {
            throw HDF5Error.tooLarge(file: file.path, name: name, reason: "declares shape \(shapeText) of \(type) "
                                     + "(\(ReadLimits.byteCount(fileBytes))), but \(why)")
        }
        guard memoryBytes <= ReadLimits.memoryBudget else {
            throw HDF5Error.tooLarge(file: file.path, name: name, reason: "declares shape \(shapeText) of \(type), which needs "
                                     + "\(ReadLimits.byteCount(memoryBytes)) in memory, more than \(ReadLimits.memoryBudgetDescription)")
        }
        return count
    }

    /// The most bytes the dataset's storage can yield, and why: the file's size for uncompressed storage, the
    /// stored size × `ReadLimits.maximumCompressionRatio` for filtered chunks.
    private func storageLimit() throws -> (Int, String) {
        let dcpl = H5Dget_create_plist(id)
        guard dcpl >= 0 else { throw HDF5Error.callFailed(function: "H5Dget_create_plist", file: file.path, name: name) }
        defer { _ = H5Pclose(dcpl) }
        let layout = H5Pget_layout(dcpl)
        guard layout == H5D_COMPACT || layout == H5D_CONTIGUOUS || layout == H5D_CHUNKED else {
            if layout == H5D_VIRTUAL {
                throw HDF5Error.unsupported(file: file.path, name: name, reason: "a virtual dataset (its values live in other files)")
            }
            throw HDF5Error.callFailed(function: "H5Pget_layout", file: file.path, name: name)
        }
        guard H5Pget_external_count(dcpl) <= 0 else {
            throw HDF5Error.unsupported(file: file.path, name: name, reason: "its values are stored in external files")
        }
        let fileSize = try file.size()
        let filters = H5Pget_nfilters(dcpl)
        guard layout == H5D_CHUNKED, filters > 0 else {
            return (fileSize, "the file holds only \(ReadLimits.byteCount(fileSize))")
        }
        var deflateBound = true
        for index in 0..<UInt32(filters) {
            var flags: UInt32 = 0, valueCount = 0, config: UInt32 = 0
            var filterName = [CChar](repeating: 0, count: 64)
            let filter = H5Pget_filter2(dcpl, index, &flags, &valueCount, nil, filterName.count, &filterName, &config)
            // N-bit and scale-offset packing can shrink data past deflate's bound; only the memory budget applies.
            if filter == H5Z_FILTER_NBIT || filter == H5Z_FILTER_SCALEOFFSET { deflateBound = false }
        }
        guard deflateBound else { return (Int.max, "") }
        let stored = Int(clamping: H5Dget_storage_size(id))
        let limit = ReadLimits.product([stored, ReadLimits.maximumCompressionRatio]) ?? Int.max
        return (limit, "it stores \(ReadLimits.byteCount(stored)) compressed, and deflate expands data at most "
                + "\(ReadLimits.maximumCompressionRatio)-fold (\(ReadLimits.byteCount(limit)))")
    }

    /// Reads the whole dataset into `buffer` as `memoryType`, in slabs of whole rows of the first axis of at
    /// most `slabBytes` each (every slab a watchdog heartbeat). `dims` was checked by `checkedCount`.
    private func readSlabs(dims: [Int], memoryType: hid_t, memoryElementSize: Int, into buffer: UnsafeMutableRawPointer) throws {
        let rowValues = ReadLimits.product(Array(dims.dropFirst())) ?? 0
        let rowBytes = max(rowValues * memoryElementSize, 1)
        let rowsPerSlab = max(Self.slabBytes / rowBytes, 1)
        guard let rows = dims.first, rows > rowsPerSlab else {
            guard H5Dread(id, memoryType, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), buffer) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Dread", file: file.path, name: name)
            }
            return
        }
        let fileSpace = H5Dget_space(id)
        guard fileSpace >= 0 else { throw HDF5Error.callFailed(function: "H5Dget_space", file: file.path, name: name) }
        defer { _ = H5Sclose(fileSpace) }
        var start = [hsize_t](repeating: 0, count: dims.count)
        var count = dims.map { hsize_t($0) }
        for first in stride(from: 0, to: rows, by: rowsPerSlab) {
            try withHDF5(file.path) {
                start[0] = hsize_t(first)
                count[0] = hsize_t(min(rowsPerSlab, rows - first))
                guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, count, nil) >= 0 else {
                    throw HDF5Error.callFailed(function: "H5Sselect_hyperslab", file: file.path, name: name)
                }
                let memorySpace = H5Screate_simple(Int32(count.count), count, nil)
                guard memorySpace >= 0 else { throw HDF5Error.callFailed(function: "H5Screate_simple", file: file.path, name: name) }
                defer { _ = H5Sclose(memorySpace) }
                let target = buffer + first * rowValues * memoryElementSize
                guard H5Dread(id, memoryType, memorySpace, fileSpace, chdf5_p_default(), target) >= 0 else {
                    throw HDF5Error.callFailed(function: "H5Dread", file: file.path, name: name)
                }
            }
        }
    }

    /// The `count` sequences of a one-dimensional variable-length dataset in their stored form.
    private func storedSequences(count: Int) throws -> [StoredSequence] {
        let heap = try file.globalHeap()
        let size = heap.sequenceSize
        let total = try checkedCount([count], type: try elementType(), memoryElementSize: size)
        let memType = try RawSequences.memoryType(size: size, file: file.path, name: name)
        defer { _ = H5Tclose(memType) }
        var bytes = [UInt8](repeating: 0, count: total * size)
        try bytes.withUnsafeMutableBytes { buffer in
            try readSlabs(dims: [count], memoryType: memType, memoryElementSize: size, into: buffer.baseAddress!)
        }
        return heap.decode(bytes, count: total)
    }

    /// Reads the variable-length sequences `range` (already checked against the heap) as byte arrays.
    private func readSequences(_ range: Range<Int>, memoryType: hid_t) throws -> [[UInt8]] {
        try withHDF5(file.path) {
            let fileSpace = H5Dget_space(id)
            guard fileSpace >= 0 else { throw HDF5Error.callFailed(function: "H5Dget_space", file: file.path, name: name) }
            defer { _ = H5Sclose(fileSpace) }
            var start = [hsize_t(range.lowerBound)], count = [hsize_t(range.count)]
            let memorySpace = H5Screate_simple(1, count, nil)
            guard memorySpace >= 0 else { throw HDF5Error.callFailed(function: "H5Screate_simple", file: file.path, name: name) }
            defer { _ = H5Sclose(memorySpace) }
            guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Sselect_hyperslab", file: file.path, name: name)
            }
            var sequences = [hvl_t](repeating: hvl_t(len: 0, p: nil), count: range.count)
            defer {
                _ = sequences.withUnsafeMutableBytes {
                    H5Dvlen_reclaim(memoryType, memorySpace, chdf5_p_default(), $0.baseAddress)
                }
            }
            let status = sequences.withUnsafeMutableBytes {
                H5Dread(id, memoryType, memorySpace, fileSpace, chdf5_p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw HDF5Error.callFailed(function: "H5Dread", file: file.path, name: name) }
            return sequences.map { sequence -> [UInt8] in
                guard sequence.len > 0, let p = sequence.p else { return [] }
                return Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: sequence.len))
            }
        }
    }
}
