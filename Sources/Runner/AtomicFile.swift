import FewShotData
import Foundation

/// Writes the runner's files so that a reader never sees half of one (through `AtomicWrite`: a temporary
/// file beside the target, renamed into place, removed on any failure), creating the folder when needed.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "cannot create folder \(folder): \(error.localizedDescription)")
        }
        do {
            try AtomicWrite.data(data, to: path)
        } catch let error as AtomicWriteError {
            throw RunnerError.cannotWrite(path: path, reason: error.reason)
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    /// JSON with sorted keys, pretty-printed, so stored results diff well.
    public static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "cannot encode JSON: \(error)")
        }
        try write(data + Data("\n".utf8), to: path)
    }

    /// Deletes the temporaries that killed processes left in `folder` and its direct subfolders; returns their
    /// paths. Call it while holding the folder's `OutputLock`.
    @discardableResult
    public static func removeStaleTemporaries(in folder: String) -> [String] {
        AtomicWrite.removeStaleTemporaries(in: folder)
    }
}
