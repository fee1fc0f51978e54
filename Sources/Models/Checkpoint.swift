import Engine
import Foundation
import HDF5

/// A checkpoint problem, naming the file and, where there is one, the tensor.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// No file at the path.
    case fileNotFound(String)
    /// The file exists but is not a MetaBench checkpoint (not HDF5, or no `metabench_checkpoint` attribute).
    case notACheckpoint(path: String, reason: String)
    /// A checkpoint of a format version this build does not read.
    case unsupportedVersion(path: String, version: String)
    /// A tensor name that cannot be stored (empty, or an empty or `.` path component).
    case invalidName(String)
    /// A stored tensor that cannot be read back as float32 values.
    case badTensor(path: String, name: String, reason: String)
    /// The file could not be written or moved into place.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such checkpoint file"
        case .notACheckpoint(let path, let reason):
            return "\(path): not a MetaBench checkpoint (\(reason))"
        case .unsupportedVersion(let path, let version):
            return "\(path): checkpoint format '\(version)' is not supported (this build reads '\(Checkpoint.formatVersion)')"
        case .invalidName(let name):
            return "cannot store a tensor named '\(name)' in a checkpoint (names are '/'-separated paths of non-empty parts)"
        case .badTensor(let path, let name, let reason):
            return "\(path): tensor '\(name)': \(reason)"
        case .writeFailed(let path, let reason):
            return "\(path): cannot write the checkpoint: \(reason)"
        }
    }
}

/// Named tensors in an HDF5 file: a learner's meta-trained state, its optimiser's state, metadata.
///
/// Layout (format `v1`): one float32 dataset per tensor, with the tensor's shape (a rank-0 tensor is a
/// scalar dataset, a `[1]` tensor a one-element dataset, so shapes round-trip exactly). A name's `/`s
/// make nested groups and its last part, dots kept, names the dataset: `model/block1.conv.weight` is the
/// dataset `block1.conv.weight` in the group `model`. The root group carries the attribute
/// `metabench_checkpoint = "v1"` and one string attribute per metadata entry. h5py reads it as
/// `f["model"]["block1.conv.weight"][()]`.
public enum Checkpoint {
    /// The value of the root attribute `metabench_checkpoint` this build writes and reads.
    public static let formatVersion = "v1"
    /// The root attribute that marks a file as a checkpoint.
    public static let markerAttribute = "metabench_checkpoint"

    /// Writes `state` to `path` through a temporary file in the same folder, renamed into place when
    /// complete, so a crash never leaves a half-written checkpoint at `path`.
    public static func save(_ state: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
        for name in state.keys { try validate(name) }
        if metadata[markerAttribute] != nil {
            throw CheckpointError.writeFailed(path: path, reason: "metadata may not use the reserved key '\(markerAttribute)'")
        }
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CheckpointError.writeFailed(path: path, reason: "folder \(folder) does not exist")
        }
        let temporary = (folder as NSString).appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            do {
                let file = try File(temporary, mode: .create)
                let root = try file.root()
                try root.setAttribute(markerAttribute, formatVersion)
                for key in metadata.keys.sorted() { try root.setAttribute(key, metadata[key]!) }
                for name in state.keys.sorted() {
                    let tensor = state[name]!
                    try root.createDataset(name, shape: tensor.shape, values: tensor.scalars)
                }
                try file.close()
            } catch let error as HDF5Error {
                throw CheckpointError.writeFailed(path: path, reason: "\(error)")
            }
            guard rename(temporary, path) == 0 else {
                throw CheckpointError.writeFailed(path: path, reason: "cannot move the finished file into place (errno \(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// The named tensors of the checkpoint at `path`.
    public static func load(_ path: String) throws -> [String: Tensor] {
        let file = try open(path)
        var state: [String: Tensor] = [:]
        do {
            try collect(try file.root(), prefix: "", path: path, into: &state)
        } catch let error as HDF5Error {
            throw CheckpointError.notACheckpoint(path: path, reason: "\(error)")
        }
        return state
    }

    /// The metadata attributes of the checkpoint at `path` (the format marker left out).
    public static func metadata(_ path: String) throws -> [String: String] {
        let file = try open(path)
        do {
            let root = try file.root()
            var out: [String: String] = [:]
            for name in try root.attributeNames() where name != markerAttribute {
                out[name] = try root.stringAttribute(name)
            }
            return out
        } catch let error as HDF5Error {
            throw CheckpointError.notACheckpoint(path: path, reason: "\(error)")
        }
    }

    /// Opens `path` and checks the format marker.
    private static func open(_ path: String) throws -> File {
        let file: File
        do {
            file = try File(path, mode: .readOnly)
        } catch HDF5Error.fileNotFound {
            throw CheckpointError.fileNotFound(path)
        } catch HDF5Error.notHDF5 {
            throw CheckpointError.notACheckpoint(path: path, reason: "not an HDF5 file")
        } catch {
            throw CheckpointError.notACheckpoint(path: path, reason: "\(error)")
        }
        let version: String
        do {
            let root = try file.root()
            guard try root.hasAttribute(markerAttribute) else {
                throw CheckpointError.notACheckpoint(path: path, reason: "no '\(markerAttribute)' attribute on the root group")
            }
            version = try root.stringAttribute(markerAttribute)
        } catch let error as HDF5Error {
            throw CheckpointError.notACheckpoint(path: path, reason: "\(error)")
        }
        guard version == formatVersion else { throw CheckpointError.unsupportedVersion(path: path, version: version) }
        return file
    }

    private static func collect(_ group: Group, prefix: String, path: String, into state: inout [String: Tensor]) throws {
        for member in try group.members() {
            let name = prefix + member.name
            switch member.kind {
            case .group:
                try collect(try group.group(member.name), prefix: name + "/", path: path, into: &state)
            case .dataset:
                let dataset = try group.dataset(member.name)
                let type = try dataset.elementType()
                guard type == .float32 else {
                    throw CheckpointError.badTensor(path: path, name: name, reason: "holds \(type), expected float32")
                }
                let shape = try dataset.shape()
                state[name] = Tensor(shape: shape, scalars: try dataset.read(as: Float.self))
            case .other:
                throw CheckpointError.badTensor(path: path, name: name, reason: "is neither a group nor a dataset")
            }
        }
    }

    private static func validate(_ name: String) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw CheckpointError.invalidName(name)
        }
    }
}
