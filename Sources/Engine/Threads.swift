import Foundation

/// How many threads the engine computes with: tasks of a meta-batch or episodes in parallel, or the parts
/// of one large operation (convolution chunks, channels, rows of a matrix product). OpenBLAS itself runs
/// single-threaded, so there is never more than one level of threads.
public enum ComputeThreads {
    private static let lock = NSLock()
    /// Set on threads running a `map` body.
    private static let insideKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    nonisolated(unsafe) private static var _count: Int = min(2, ProcessInfo.processInfo.activeProcessorCount)

    /// The thread count in use (2 or the machine's cores, whichever is fewer, unless set).
    public static var count: Int {
        lock.lock(); defer { lock.unlock() }
        return _count
    }

    /// Sets the thread count (values below 1 count as 1).
    public static func set(_ count: Int) {
        lock.lock()
        _count = max(1, count)
        lock.unlock()
        _ = BLAS.configured  // the engine's process settings (kernels, heap), before any work
    }

    /// Runs `body(i)` for i in 0..<n on up to `count` threads; results are returned in index order, so
    /// what follows is independent of scheduling. Inside, further `map`/`forEach` calls run in order.
    public static func map<T>(_ n: Int, _ body: (Int) throws -> T) rethrows -> [T] {
        let threads = min(count, n)
        // Inside a parallel region already (a nested map): run in order on this thread.
        if threads <= 1 || pthread_getspecific(insideKey) != nil { return try (0..<n).map(body) }
        _ = BLAS.configured
        var results = [Result<T, Error>?](repeating: nil, count: n)
        let resultsLock = NSLock()
        // Each thread takes the next index when it is free, so unequal items even out (a body writes only its
        // own index's results, so which thread ran it changes nothing).
        var next = 0
        var busy: UInt64 = 0  // nanoseconds in `body`, summed over the threads
        let start = DispatchTime.now().uptimeNanoseconds
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                pthread_setspecific(insideKey, UnsafeRawPointer(bitPattern: 1))
                defer { pthread_setspecific(insideKey, nil) }
                while true {
                    resultsLock.lock()
                    let i = next
                    next += 1
                    resultsLock.unlock()
                    if i >= n { break }
                    let itemStart = DispatchTime.now().uptimeNanoseconds
                    let r = Result { try body(i) }
                    let itemTime = DispatchTime.now().uptimeNanoseconds &- itemStart
                    resultsLock.lock(); results[i] = r; busy &+= itemTime; resultsLock.unlock()
                }
            }
        }
        let wall = DispatchTime.now().uptimeNanoseconds &- start
        regionLock.lock()
        regions.count += 1
        regions.wallNanoseconds &+= wall
        regions.busyNanoseconds &+= busy
        regions.capacityNanoseconds &+= wall &* UInt64(threads)
        regionLock.unlock()
        return try results.map { try $0!.get() }
    }

    /// Totals over the parallel regions (`map` calls that ran on more than one thread) since the process
    /// started or `resetRegionTotals()`: how much of a step runs in parallel, and how long its threads wait
    /// inside those regions (for `Benchmarks/Probe`; nothing else reads them).
    public struct RegionTotals: Sendable, Equatable {
        /// Parallel regions run.
        public var count = 0
        /// Wall-clock time inside them (the calling thread's, from start to return).
        public var wallNanoseconds: UInt64 = 0
        /// Time the threads spent in the regions' items, summed over the threads.
        public var busyNanoseconds: UInt64 = 0
        /// Each region's wall-clock time times its threads: busy + waiting.
        public var capacityNanoseconds: UInt64 = 0
    }

    private static let regionLock = NSLock()
    nonisolated(unsafe) private static var regions = RegionTotals()

    /// The region totals so far.
    public static var regionTotals: RegionTotals {
        regionLock.lock(); defer { regionLock.unlock() }
        return regions
    }

    /// Starts the region totals again from zero.
    public static func resetRegionTotals() {
        regionLock.lock()
        regions = RegionTotals()
        regionLock.unlock()
    }
}

extension ComputeThreads {
    /// Work (in scalars touched) below which an operation stays on one thread: a parallel region costs
    /// tens of microseconds.
    static let parallelThreshold = 1 << 17

    /// Runs `body(i)` for i in 0..<count, in parallel when the operation is large (`work` scalars), more
    /// than one thread is configured and no parallel region is running already. Each i must write its
    /// own part of the output, so the result is the same whichever thread runs it.
    @inline(__always)
    static func forEach(_ count: Int, work: Int, _ body: (Int) -> Void) {
        if count <= 1 || work < parallelThreshold {
            for i in 0..<count { body(i) }
            return
        }
        _ = map(count) { body($0) }
    }

    /// Runs `body` on contiguous ranges that together cover 0..<count in order, in parallel like `forEach`
    /// (a few ranges per thread): for many small items in memory order, such as the planes of an NCHW
    /// tensor, where a task per item would cost more than the item. Each range must write its own part.
    static func forEachRange(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        let parts = Swift.min(count, 4 * ComputeThreads.count)
        if parts <= 1 || work < parallelThreshold {
            body(0..<count)
            return
        }
        _ = map(parts) { part in body((part * count / parts)..<((part + 1) * count / parts)) }
    }
}
