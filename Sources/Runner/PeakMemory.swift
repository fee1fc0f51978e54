import Engine
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The kernel's record of this process's largest resident memory (Linux: `VmHWM` in /proc/self/status),
/// which, unlike sampling, misses no peak however short.
public enum PeakMemory {
    /// Resets the high-water mark to the current resident memory by writing "5" to /proc/self/clear_refs
    /// (Linux ≥ 4.0); false where that is not permitted or not available.
    public static func resetHighWater() -> Bool {
        guard let file = fopen("/proc/self/clear_refs", "w") else { return false }
        let written = fputs("5", file) >= 0
        let closed = fclose(file) == 0  // the kernel acts on the write, reported at the flush
        return written && closed
    }

    /// The high-water mark of resident memory in bytes (`VmHWM`); nil where /proc is not available.
    public static func highWaterBytes() -> Int? {
        // /proc files report size 0: read line by line.
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            guard text.hasPrefix("VmHWM:") else { continue }
            let fields = text.dropFirst("VmHWM:".count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            guard fields.count == 2, fields[1] == "kB", let kibibytes = Int(fields[0]),
                  kibibytes >= 0, kibibytes <= Int.max / 1024 else { return nil }
            return kibibytes * 1024
        }
        return nil
    }
}

/// Resident memory of this process now, from /proc/self/statm (Linux); nil elsewhere.
public enum ResidentMemory {
    public static func currentBytes() -> Int? {
        guard let file = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let fields = String(cString: line).split(separator: " ")
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard fields.count >= 2, let pages = Int(fields[1]), pages >= 0, pageSize > 0,
              pages <= Int.max / pageSize else { return nil }
        return pages * pageSize
    }
}

/// The peak resident memory of one stretch of work (a cell): create it at the start, `stop()` at the end.
///
/// It starts by giving the allocator's free pages back (`Allocator.returnFreedMemory`), so that memory an earlier
/// cell freed but glibc kept does not count in this one: without that, a cell's figure depended on the cells run
/// before it in the process. Where the kernel's high-water mark can be reset (`PeakMemory.resetHighWater`), the peak
/// is `VmHWM` at the end: exact. Otherwise it is `VmHWM` at the end if that grew meanwhile (the process's peak fell in
/// this stretch: still exact), else the largest resident memory seen by `sample()` calls, which misses
/// short peaks (`isExact` false).
public final class PeakMemorySampler {
    /// Whether `stop()`'s figure is the true peak of this stretch rather than a lower bound; meaningful
    /// after `stop()`.
    public private(set) var isExact = false
    private let resetWorked: Bool
    private let highWaterAtStart: Int?
    private var sampledPeak: Int?
    private var result: Int??

    /// Starts measuring; `resetHighWater` is injectable so tests can take the fallback path.
    public init(resetHighWater: () -> Bool = PeakMemory.resetHighWater) {
        Allocator.returnFreedMemory()
        resetWorked = resetHighWater()
        highWaterAtStart = resetWorked ? nil : PeakMemory.highWaterBytes()
        sample()
    }

    /// Records the resident memory now (needed only where the high-water mark cannot be reset).
    public func sample() {
        guard !resetWorked, result == nil, let bytes = ResidentMemory.currentBytes() else { return }
        sampledPeak = max(sampledPeak ?? 0, bytes)
    }

    /// The peak in bytes (nil where /proc is not available); later calls return the same figure.
    public func stop() -> Int? {
        if let result { return result }
        sample()
        let highWater = PeakMemory.highWaterBytes()
        let peak: Int?
        if resetWorked, let highWater {
            peak = highWater
            isExact = true
        } else if let highWater, let start = highWaterAtStart, highWater > start {
            peak = highWater
            isExact = true
        } else {
            peak = sampledPeak
            isExact = false
        }
        result = .some(peak)
        return peak
    }
}
