import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive claim on an output folder, so that two bench processes never write into the same one:
/// a non-blocking `flock` on `<folder>/.bench.lock`, holding the owner's pid, host and start time for the
/// other's error message. The kernel drops the lock when its process dies, so a killed run leaves nothing
/// to clean up; a clean release deletes the file.
///
/// `flock` locks belong to an open file description, so a second `acquire` in the same process fails too.
/// The holder deletes the file while still holding the lock, and whoever locks checks afterwards that the
/// path still names the file it locked (else it retries), so deleting never lets two owners in.
public final class OutputLock {
    /// What the owner wrote into the lock file.
    public struct Holder: Equatable, Sendable {
        public var pid: Int32
        public var host: String
        public var since: String
    }

    public static let fileName = ".bench.lock"

    public let folder: String
    public let path: String
    /// Whether this is a shared claim (shards of one suite writing their own cells side by side).
    public let shared: Bool
    private var descriptor: Int32

    private init(folder: String, path: String, descriptor: Int32, shared: Bool) {
        self.folder = folder
        self.path = path
        self.descriptor = descriptor
        self.shared = shared
    }

    /// Creates `folder` when needed and locks it; throws `RunnerError.outputBusy` when another process
    /// (or another `OutputLock` of this one) holds it, `RunnerError.cannotWrite` when it cannot be locked.
    public static func acquire(folder: String) throws -> OutputLock {
        try acquire(folder: folder, fileName: fileName, shared: false) { RunnerError.outputBusy(folder: folder, holder: $0) }
    }

    /// Locks `<folder>/<fileName>`: exclusively, or `shared` with other shared holders (never with an exclusive
    /// one); `busy` makes the error when the lock is held.
    public static func acquire(folder: String, fileName: String, shared: Bool,
                               busy: (Holder?) -> RunnerError) throws -> OutputLock {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RunnerError.cannotWrite(path: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let path = (folder as NSString).appendingPathComponent(fileName)
        for _ in 0..<16 {
            let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw RunnerError.cannotWrite(path: path, reason: "cannot open the lock file: \(errorText())")
            }
            var locked: Int32
            repeat { locked = flock(descriptor, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) } while locked != 0 && errno == EINTR
            if locked != 0 {
                let isBusy = errno == EWOULDBLOCK
                let reason = errorText()
                let holder = isBusy ? readHolder(descriptor) : nil
                close(descriptor)
                if isBusy { throw busy(holder) }
                throw RunnerError.cannotWrite(path: path, reason: "cannot lock the file: \(reason)")
            }
            // The previous owner may have deleted the file between our open and our lock: then retry.
            var opened = stat(), named = stat()
            guard fstat(descriptor, &opened) == 0, stat(path, &named) == 0,
                  opened.st_dev == named.st_dev, opened.st_ino == named.st_ino else {
                close(descriptor)
                continue
            }
            let lock = OutputLock(folder: folder, path: path, descriptor: descriptor, shared: shared)
            lock.writeHolder()
            return lock
        }
        throw RunnerError.cannotWrite(path: path, reason: "the lock file keeps being replaced by other processes")
    }

    /// Deletes the lock file (an exclusive holder only: shared holders may remain) and unlocks; calling it
    /// again does nothing.
    public func release() {
        guard descriptor >= 0 else { return }
        if !shared { unlink(path) }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    private func writeHolder() {
        let holder = Holder(pid: getpid(), host: Self.hostName(),
                            since: ISO8601DateFormatter().string(from: Date()))
        let text = "pid=\(holder.pid)\nhost=\(holder.host)\nsince=\(holder.since)\n"
        // The information is only for messages: a failed write leaves the lock valid.
        guard ftruncate(descriptor, 0) == 0 else { return }
        _ = text.utf8CString.withUnsafeBufferPointer { buffer in
            pwrite(descriptor, buffer.baseAddress, buffer.count - 1, 0)
        }
    }

    /// The owner's details from the first kilobyte of the lock file; nil when it holds none (it may be
    /// empty for an instant, or left over with anything in it).
    static func readHolder(_ descriptor: Int32) -> Holder? {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return parseHolder(String(decoding: buffer.prefix(count), as: UTF8.self))
    }

    static func parseHolder(_ text: String) -> Holder? {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), pid > 0,
              let host = fields["host"], !host.isEmpty, let since = fields["since"], !since.isEmpty else { return nil }
        return Holder(pid: pid, host: host, since: since)
    }

    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown host" }
        let name = String(cString: buffer)
        return name.isEmpty ? "unknown host" : name
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }
}
