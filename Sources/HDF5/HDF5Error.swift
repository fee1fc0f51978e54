/// What can go wrong with an HDF5 file; each case names the file and the object.
public enum HDF5Error: Error, Equatable, CustomStringConvertible {
    /// No file at the path.
    case fileNotFound(String)
    /// The file exists but is not an HDF5 file (or is truncated or damaged beyond opening).
    case notHDF5(String)
    /// The file could not be opened or created (permissions, damage).
    case cannotOpen(path: String, reason: String)
    /// No group, dataset or attribute of that name.
    case noSuchObject(file: String, name: String)
    /// The object exists but is not of the kind asked for (e.g. a dataset where a group was expected).
    case wrongKind(file: String, name: String, expected: String)
    /// The stored element type cannot be read as the type asked for.
    case wrongType(file: String, name: String, expected: String, actual: String)
    /// Values and shape disagree when writing, or a stored shape is unusable.
    case badShape(file: String, name: String, reason: String)
    /// A libhdf5 call failed.
    case callFailed(function: String, file: String, name: String)
    /// The object declares a size that cannot be read: it overflows, exceeds what the file can hold, or
    /// exceeds the memory budget (`ReadLimits`).
    case tooLarge(file: String, name: String, reason: String)
    /// The file's structures are inconsistent (found by the checks made before libhdf5 reads them).
    case damaged(file: String, name: String, reason: String)
    /// A valid HDF5 feature this reader does not support (virtual datasets, external storage).
    case unsupported(file: String, name: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file"
        case .notHDF5(let path):
            return "\(path): not an HDF5 file (or truncated or damaged)"
        case .cannotOpen(let path, let reason):
            return "\(path): cannot open: \(reason)"
        case .noSuchObject(let file, let name):
            return "\(file): no object named '\(name)'"
        case .wrongKind(let file, let name, let expected):
            return "\(file): '\(name)' is not \(expected)"
        case .wrongType(let file, let name, let expected, let actual):
            return "\(file): '\(name)' holds \(actual), expected \(expected)"
        case .badShape(let file, let name, let reason):
            return "\(file): '\(name)': \(reason)"
        case .callFailed(let function, let file, let name):
            return "\(file): '\(name)': \(function) failed (damaged file or unsupported feature)"
        case .tooLarge(let file, let name, let reason):
            return "\(file): '\(name)': \(reason)"
        case .damaged(let file, let name, let reason):
            return "\(file): '\(name)': damaged file: \(reason)"
        case .unsupported(let file, let name, let reason):
            return "\(file): '\(name)': not supported: \(reason)"
        }
    }
}
