import CHDF5

/// Reads and writes the attributes of one open object (a group or a dataset).
public struct Attributes {
    let file: File
    let id: hid_t
    let name: String

    private func label(_ attribute: String) -> String { "\(name)@\(attribute)" }

    func has(_ attribute: String) throws -> Bool {
        try withHDF5(file.path) {
            try file.checkOpen(label(attribute))
            let found = H5Aexists(id, attribute)
            guard found >= 0 else { throw HDF5Error.callFailed(function: "H5Aexists", file: file.path, name: label(attribute)) }
            return found > 0
        }
    }

    func names() throws -> [String] {
        try withHDF5(file.path) {
            try file.checkOpen(name)
            var info = H5O_info_t()
            guard H5Oget_info2(id, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Oget_info", file: file.path, name: name)
            }
            var result: [String] = []
            for index in 0..<info.num_attrs {
                ProgressMonitor.hdf5.beat()
                let length = H5Aget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, chdf5_p_default())
                guard length >= 0 else { throw HDF5Error.callFailed(function: "H5Aget_name_by_idx", file: file.path, name: name) }
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                _ = H5Aget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, chdf5_p_default())
                result.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return result
        }
    }

    /// Opens the attribute and checks it holds exactly one value; returns (attribute, type) ids to close.
    private func openSingle(_ attribute: String) throws -> (hid_t, hid_t) {
        guard try has(attribute) else { throw HDF5Error.noSuchObject(file: file.path, name: label(attribute)) }
        let aid = H5Aopen(id, attribute, chdf5_p_default())
        guard aid >= 0 else { throw HDF5Error.callFailed(function: "H5Aopen", file: file.path, name: label(attribute)) }
        let space = H5Aget_space(aid)
        let points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1
        if space >= 0 { _ = H5Sclose(space) }
        guard points == 1 else {
            _ = H5Aclose(aid)
            throw HDF5Error.badShape(file: file.path, name: label(attribute), reason: "expected a single value, found \(points)")
        }
        let type = H5Aget_type(aid)
        guard type >= 0 else {
            _ = H5Aclose(aid)
            throw HDF5Error.callFailed(function: "H5Aget_type", file: file.path, name: label(attribute))
        }
        return (aid, type)
    }

    func string(_ attribute: String) throws -> String {
        try withHDF5(file.path) {
            let (aid, type) = try openSingle(attribute)
            defer { _ = H5Tclose(type); _ = H5Aclose(aid) }
            let stored = ElementType(typeID: type)
            guard stored.kind == .string else {
                throw HDF5Error.wrongType(file: file.path, name: label(attribute), expected: "a string", actual: "\(stored)")
            }
            if H5Tis_variable_str(type) > 0 {
                try checkStoredString(aid, attribute)
                let memType = H5Tcopy(chdf5_t_c_s1())
                defer { _ = H5Tclose(memType) }
                _ = H5Tset_size(memType, chdf5_variable())
                _ = H5Tset_cset(memType, H5Tget_cset(type))
                var pointer: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(aid, memType, &pointer) >= 0 else {
                    throw HDF5Error.callFailed(function: "H5Aread", file: file.path, name: label(attribute))
                }
                guard let pointer else { return "" }
                defer { _ = H5free_memory(pointer) }
                return String(cString: pointer)
            }
            let size = Int(H5Tget_size(type))
            guard size <= (try file.size()) else {
                throw HDF5Error.tooLarge(file: file.path, name: label(attribute),
                                         reason: "declares a string of \(size) bytes, more than the file holds")
            }
            let memType = H5Tcopy(type)
            defer { _ = H5Tclose(memType) }
            var buffer = [UInt8](repeating: 0, count: size + 1)
            guard buffer.withUnsafeMutableBytes({ H5Aread(aid, memType, $0.baseAddress) }) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Aread", file: file.path, name: label(attribute))
            }
            var bytes = Array(buffer.prefix(size))
            if let end = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<end]) }
            if H5Tget_strpad(type) == H5T_STR_SPACEPAD {
                while bytes.last == 0x20 { bytes.removeLast() }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Checks the stored form of the variable-length string attribute `aid` against the global heap, so that
    /// reading it cannot send libhdf5 out of bounds or into a loop (see `GlobalHeap`).
    private func checkStoredString(_ aid: hid_t, _ attribute: String) throws {
        let heap = try file.globalHeap()
        let memType = try RawSequences.memoryType(size: heap.sequenceSize, file: file.path, name: label(attribute))
        defer { _ = H5Tclose(memType) }
        var bytes = [UInt8](repeating: 0, count: heap.sequenceSize)
        guard bytes.withUnsafeMutableBytes({ H5Aread(aid, memType, $0.baseAddress) }) >= 0 else {
            throw HDF5Error.callFailed(function: "H5Aread", file: file.path, name: label(attribute))
        }
        try heap.check(heap.decode(bytes, count: 1)[0], baseSize: 1, name: label(attribute), element: "the string")
    }

    func double(_ attribute: String) throws -> Double {
        try withHDF5(file.path) {
            let (aid, type) = try openSingle(attribute)
            defer { _ = H5Tclose(type); _ = H5Aclose(aid) }
            let stored = ElementType(typeID: type)
            guard stored.isNumeric else {
                throw HDF5Error.wrongType(file: file.path, name: label(attribute), expected: "a number", actual: "\(stored)")
            }
            var value: Double = 0
            guard H5Aread(aid, chdf5_t_native_double(), &value) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Aread", file: file.path, name: label(attribute))
            }
            return value
        }
    }

    func int(_ attribute: String) throws -> Int {
        try withHDF5(file.path) {
            let (aid, type) = try openSingle(attribute)
            defer { _ = H5Tclose(type); _ = H5Aclose(aid) }
            let stored = ElementType(typeID: type)
            if stored.kind == .float {
                let value = try double(attribute)
                guard value.rounded() == value, let int = Int(exactly: value) else {
                    throw HDF5Error.wrongType(file: file.path, name: label(attribute), expected: "an integer", actual: "\(value)")
                }
                return int
            }
            guard stored.kind == .integer else {
                throw HDF5Error.wrongType(file: file.path, name: label(attribute), expected: "an integer", actual: "\(stored)")
            }
            var value: Int64 = 0
            guard H5Aread(aid, chdf5_t_native_int64(), &value) >= 0 else {
                throw HDF5Error.callFailed(function: "H5Aread", file: file.path, name: label(attribute))
            }
            return Int(value)
        }
    }

    private func replace(_ attribute: String, type: hid_t, write: (hid_t) -> herr_t) throws {
        try withHDF5(file.path) {
            if try has(attribute) { _ = H5Adelete(id, attribute) }
            let space = H5Screate(H5S_SCALAR)
            guard space >= 0 else { throw HDF5Error.callFailed(function: "H5Screate", file: file.path, name: label(attribute)) }
            defer { _ = H5Sclose(space) }
            let aid = H5Acreate2(id, attribute, type, space, chdf5_p_default(), chdf5_p_default())
            guard aid >= 0 else { throw HDF5Error.callFailed(function: "H5Acreate2", file: file.path, name: label(attribute)) }
            defer { _ = H5Aclose(aid) }
            guard write(aid) >= 0 else { throw HDF5Error.callFailed(function: "H5Awrite", file: file.path, name: label(attribute)) }
        }
    }

    func set(_ attribute: String, _ value: String) throws {
        try withHDF5(file.path) {
            let type = H5Tcopy(chdf5_t_c_s1())
            guard type >= 0 else { throw HDF5Error.callFailed(function: "H5Tcopy", file: file.path, name: label(attribute)) }
            defer { _ = H5Tclose(type) }
            _ = H5Tset_size(type, chdf5_variable())
            _ = H5Tset_cset(type, H5T_CSET_UTF8)
            try value.withCString { cString in
                try replace(attribute, type: type) { aid in
                    var pointer: UnsafePointer<CChar>? = cString
                    return H5Awrite(aid, type, &pointer)
                }
            }
        }
    }

    func set(_ attribute: String, _ value: Int) throws {
        try withHDF5(file.path) {
            var v = Int64(value)
            try replace(attribute, type: chdf5_t_std_i64le()) { H5Awrite($0, chdf5_t_native_int64(), &v) }
        }
    }

    func set(_ attribute: String, _ value: Double) throws {
        try withHDF5(file.path) {
            var v = value
            try replace(attribute, type: chdf5_t_ieee_f64le()) { H5Awrite($0, chdf5_t_native_double(), &v) }
        }
    }
}

/// An HDF5 object with attributes (a group or a dataset): one implementation of attribute access for both.
public protocol AttributeHolder {
    var attributes: Attributes { get }
}

extension AttributeHolder {
    /// Whether the object has an attribute `name`.
    public func hasAttribute(_ name: String) throws -> Bool { try attributes.has(name) }
    /// The names of the object's attributes.
    public func attributeNames() throws -> [String] { try attributes.names() }
    /// A string attribute (fixed or variable length).
    public func stringAttribute(_ name: String) throws -> String { try attributes.string(name) }
    /// A numeric attribute as an integer (a float attribute must hold a whole number).
    public func intAttribute(_ name: String) throws -> Int { try attributes.int(name) }
    /// A numeric attribute as a double.
    public func doubleAttribute(_ name: String) throws -> Double { try attributes.double(name) }
    /// Writes (or replaces) a variable-length UTF-8 string attribute.
    public func setAttribute(_ name: String, _ value: String) throws { try attributes.set(name, value) }
    /// Writes (or replaces) an int64 attribute.
    public func setAttribute(_ name: String, _ value: Int) throws { try attributes.set(name, value) }
    /// Writes (or replaces) a float64 attribute.
    public func setAttribute(_ name: String, _ value: Double) throws { try attributes.set(name, value) }
}

extension Group: AttributeHolder {}
extension Dataset: AttributeHolder {}
