import Foundation

/// The bounds every read checks before it allocates memory sized by what a file declares.
///
/// A file states its own sizes (dimensions, string lengths, sequence lengths); one flipped byte can turn
/// 20×105×105 into 20×105×2³⁰. Before allocating, a read checks that the declared size (a) does not
/// overflow, (b) fits in what the file can hold — the file's size for uncompressed data, the stored size
/// times `maximumCompressionRatio` for compressed data — and (c) fits in `memoryBudget`.
public enum ReadLimits {
    /// The most a deflate stream can expand: 1032 output bytes per input byte (zlib's theoretical limit).
    public static let maximumCompressionRatio = 1032

    /// The most one read may allocate, and the most a whole dataset may take in memory: half of the
    /// physical memory (at least 1 GiB).
    nonisolated(unsafe) public static var memoryBudget: Int = defaultMemoryBudget

    /// Half of the physical memory, at least 1 GiB.
    public static var defaultMemoryBudget: Int {
        let physical = ProcessInfo.processInfo.physicalMemory
        return Int(clamping: max(physical / 2, 1 << 30))
    }

    /// How the budget is described in messages.
    public static var memoryBudgetDescription: String {
        "the memory budget of \(byteCount(memoryBudget))"
            + (memoryBudget == defaultMemoryBudget ? " (half of the physical memory)" : "")
    }

    /// `bytes` for people: "812 bytes", "3.4 MiB", "96.0 GiB".
    public static func byteCount(_ bytes: Int) -> String {
        if bytes < 1024 { return "\(bytes) bytes" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f %@", value, units[unit])
    }

    /// The product of `factors`, or nil when it overflows (0 when any factor is 0; nil for a negative factor).
    public static func product(_ factors: [Int]) -> Int? {
        guard factors.allSatisfy({ $0 >= 0 }) else { return nil }
        if factors.contains(0) { return 0 }
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            result = next
        }
        return result
    }

    /// The sum of `terms`, or nil when it overflows.
    public static func sum(_ terms: [Int]) -> Int? {
        var result = 0
        for term in terms {
            let (next, overflow) = result.addingReportingOverflow(term)
            if overflow { return nil }
            result = next
        }
        return result
    }
}
