import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches the calls into libhdf5 and reports one that makes no progress for too long.
///
/// The backstop for a corrupt file that sends libhdf5 into an endless loop despite the checks made before
/// each read (see `GlobalHeap`): every `withHDF5` entry and exit is a heartbeat, and long reads are split into
/// slabs (each slab a heartbeat). When a libhdf5 call is in progress and no heartbeat came for `limit`
/// seconds, `onStall` runs with the file being read. The process-wide monitor (`ProgressMonitor.hdf5`) prints
/// `Error: reading <file>: libhdf5 made no progress for N s; the file is likely corrupt` on standard error
/// and ends the process with `_exit(1)`: a thread stuck inside libhdf5 cannot be unwound, and the global
/// HDF5 lock it holds would block every later call. `METABENCH_HDF5_TIMEOUT` sets N (seconds, default 60;
/// 0 turns the watchdog off).
final class ProgressMonitor: @unchecked Sendable {
    /// Seconds without a heartbeat, while a call is in progress, before `onStall` runs.
    let limit: Double
    private let onStall: @Sendable (_ path: String?, _ limit: Double) -> Void
    private let lock = NSLock()
    private var depth = 0
    private var lastBeat = ProgressMonitor.now()
    private var path: String?
    private var started = false
    private var stopped = false

    init(limit: Double, onStall: @escaping @Sendable (_ path: String?, _ limit: Double) -> Void) {
        self.limit = limit
        self.onStall = onStall
    }

    /// The monitor of every libhdf5 call in this process.
    static let hdf5: ProgressMonitor = {
        let text = ProcessInfo.processInfo.environment["METABENCH_HDF5_TIMEOUT"] ?? ""
        let limit = Double(text).flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } ?? 60
        return ProgressMonitor(limit: limit) { path, limit in
            let seconds = limit.rounded() == limit ? String(Int(limit)) : String(limit)
            let message = "Error: reading \(path ?? "an HDF5 file"): libhdf5 made no progress for \(seconds) s; "
                + "the file is likely corrupt\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(1)
        }
    }()

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Marks the start of a call on `path` (nil keeps the file of an enclosing call); returns what `leave` restores.
    func enter(_ path: String?) -> String? {
        guard limit > 0 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if !started { startLocked() }
        let previous = self.path
        if let path { self.path = path }
        depth += 1
        lastBeat = Self.now()
        return previous
    }

    /// Marks the end of the call that `enter` began.
    func leave(_ previous: String?) {
        guard limit > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        depth -= 1
        path = depth == 0 ? nil : (previous ?? path)
        lastBeat = Self.now()
    }

    /// Records progress inside a long call (a loop over members, slabs, heap collections).
    func beat() {
        guard limit > 0 else { return }
        lock.lock()
        lastBeat = Self.now()
        lock.unlock()
    }

    /// Stops the watching thread (for monitors made in tests).
    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    private func startLocked() {
        started = true
        let interval = min(max(limit / 4, 0.01), 1)
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: interval)
                lock.lock()
                if stopped { lock.unlock(); return }
                let stalled = depth > 0 && Double(Self.now() &- lastBeat) / 1e9 > limit
                let stalledPath = path
                if stalled { stopped = true }
                lock.unlock()
                if stalled {
                    onStall(stalledPath, limit)
                    return
                }
            }
        }
        thread.name = "hdf5-watchdog"
        thread.start()
    }
}
