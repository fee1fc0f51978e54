import Foundation
import HDF5
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Replaces files all at once: the new content goes to a temporary file beside the target, renamed over it
/// when complete, so a reader never sees half a file. The one place that names temporaries
/// (`.NAME.tmp-PID-RANDOM`), removes them on failure and sweeps those a killed process left behind.
public enum AtomicWrite {
    /// Runs `body` with a fresh temporary path beside `path`, then renames that file to `path`. On any
    /// failure (`body` throws, the rename fails) the temporary is removed and the error rethrown; a failed
    /// rename throws `AtomicWriteError`.
    public static func replace(_ path: String, _ body: (_ temporary: String) throws -> Void) throws {
        let temporary = temporaryPath(for: path)
        do {
            try body(temporary)
            guard rename(temporary, path) == 0 else {
                throw AtomicWriteError(path: path, reason: "cannot move the finished file into place: \(errorText())")
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Writes `data` to `path` through a temporary file; the folder must exist.
    public static func data(_ data: Data, to path: String) throws {
        try replace(path) { temporary in
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard descriptor >= 0 else { throw AtomicWriteError(path: path, reason: errorText()) }
            var written = 0
            let failure: String? = data.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return nil }
                while written < bytes.count {
                    let count = write(descriptor, base + written, bytes.count - written)
                    if count < 0 {
                        if errno == EINTR { continue }
                        return errorText()
                    }
                    written += count
                }
                return nil
            }
            let closed = close(descriptor) == 0 ? nil : errorText()
            if let reason = failure ?? closed { throw AtomicWriteError(path: path, reason: reason) }
        }
    }

    /// A temporary path beside `path`, named `.NAME.tmp-PID-RANDOM`.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))").path
    }

    /// The process id in a temporary's file name, or nil when `name` is not one of this type's temporaries.
    public static func writerProcess(ofTemporary name: String) -> pid_t? {
        guard name.hasPrefix("."), let marker = name.range(of: ".tmp-", options: .backwards),
              marker.lowerBound > name.index(after: name.startIndex) else { return nil }
        let parts = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let pid = pid_t(parts[0]), pid > 0, UInt32(parts[1]) != nil else { return nil }
        return pid
    }

    /// Whether process `pid` exists (it may belong to another user).
    public static func processIsAlive(_ pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno != ESRCH
    }

    /// Deletes the temporaries in `folder` and its direct subfolders (symbolic links are not followed)
    /// whose writing process no longer exists, and returns their paths. Call it only while no other process can
    /// be writing there (a process id may have been reused, which only keeps a stale file).
    @discardableResult
    public static func removeStaleTemporaries(in folder: String) -> [String] {
        var removed: [String] = []
        sweep(folder, depth: 0, removed: &removed)
        return removed
    }

    private static func sweep(_ folder: String, depth: Int, removed: inout [String]) {
        guard depth < 2, let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names.sorted() {
            let path = (folder as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                sweep(path, depth: depth + 1, removed: &removed)
            case S_IFREG:
                if let pid = writerProcess(ofTemporary: name), !processIsAlive(pid), unlink(path) == 0 {
                    removed.append(path)
                }
            default:
                continue
            }
        }
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }

    /// Writes an HDF5 file at `path` through a temporary file; the folder must exist.
    static func hdf5(to path: String, _ body: (File) throws -> Void) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard LayoutIO.folderExists(folder) else { throw DataError.missingPath(folder) }
        do {
            try replace(path) { temporary in
                try LayoutIO.mapHDF5Errors {
                    let file = try File(temporary, mode: .create)
                    try body(file)
                    try file.close()
                }
            }
        } catch let error as AtomicWriteError {
            throw DataError.hdf5("\(error)")
        }
    }
}

/// A file that could not be written or moved into place, with the system's reason.
public struct AtomicWriteError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public var description: String { "\(path): \(reason)" }
}
