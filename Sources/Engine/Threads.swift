// STUB — the engine's thread control; implemented with the engine.

/// How many threads the engine computes with (BLAS threads or parallel tasks, never both at once).
public enum ComputeThreads {
    /// The thread count in use.
    public static var count: Int { 1 }
    /// Sets the thread count (1 or more).
    public static func set(_ count: Int) {}
}
