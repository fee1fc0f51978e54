import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What can go wrong running a suite or reading results, each naming the problem for the user.
public enum RunnerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case dataset(file: String, line: Int?, message: String)
    case unknownLearnerSelection(String, labels: [String])
    case cannotWrite(path: String, reason: String)
    case noResults(path: String, reason: String)
    case invalidLogits(learner: String, expected: [Int], got: [Int])
    case invalidOption(String)

    public var description: String {
        switch self {
        case .dataset(let file, let line, let message):
            return "\(file)\(line.map { ":\($0)" } ?? ""): dataset: \(message)"
        case .unknownLearnerSelection(let name, let labels):
            return "--only \(name): no learner of the suite has that label or name (the suite has: \(labels.joined(separator: ", ")))"
        case .cannotWrite(let path, let reason):
            return "cannot write \(path): \(reason)"
        case .noResults(let path, let reason):
            return "\(path): \(reason)"
        case .invalidLogits(let learner, let expected, let got):
            return "learner '\(learner)' returned logits of shape \(got), expected \(expected) (queries × ways)"
        case .invalidOption(let message):
            return message
        }
    }

    public var errorDescription: String? { description }
}

/// Writes files so that a reader never sees half of one: a temporary file in the same folder, then rename.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "cannot create folder \(folder): \(error.localizedDescription)")
        }
        let temporary = (folder as NSString).appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw RunnerError.cannotWrite(path: path, reason: "cannot create a file in \(folder)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw RunnerError.cannotWrite(path: path, reason: reason)
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
}

/// Resident memory of this process, from /proc/self/statm (Linux); nil elsewhere.
public enum ResidentMemory {
    public static func currentBytes() -> Int? {
        guard let fd = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(fd) }
        var size = 0, resident = 0
        guard fscanf_statm(fd, &size, &resident) else { return nil }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private static func fscanf_statm(_ file: UnsafeMutablePointer<FILE>, _ size: inout Int, _ resident: inout Int) -> Bool {
        var buffer = [CChar](repeating: 0, count: 128)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
        let fields = String(cString: buffer).split(separator: " ")
        guard fields.count >= 2, let s = Int(fields[0]), let r = Int(fields[1]) else { return false }
        size = s
        resident = r
        return true
    }
}

/// Keeps the largest resident memory seen while it runs: a background thread samples every 10 ms, and
/// callers may sample at points of their own.
public final class PeakMemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak: Int?
    private var running = true
    private var thread: Thread?

    public init(interval: TimeInterval = 0.01) {
        sample()
        let thread = Thread { [weak self] in
            while let self, self.isRunning {
                self.sample()
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread.stackSize = 64 * 1024
        self.thread = thread
        thread.start()
    }

    private var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        return running
    }

    public func sample() {
        guard let bytes = ResidentMemory.currentBytes() else { return }
        lock.lock()
        peak = max(peak ?? 0, bytes)
        lock.unlock()
    }

    /// Stops sampling and returns the peak (nil where /proc is not available).
    public func stop() -> Int? {
        sample()
        lock.lock(); defer { lock.unlock() }
        running = false
        return peak
    }

    deinit {
        lock.lock()
        running = false
        lock.unlock()
    }
}
