import COpenBLAS

/// The process's allocator, as the engine sets it up (`BLAS.configured` keeps freed buffers up to 32 MiB, and up to
/// 512 MiB of free heap, for reuse by the next step).
public enum Allocator {
    /// Gives the allocator's free pages back to the kernel (glibc's `malloc_trim(0)`, every arena): what earlier
    /// work freed but the heap kept stops counting as resident memory. Values are untouched; the next allocations
    /// fault their pages in again.
    public static func returnFreedMemory() {
        cengine_return_freed_memory()
    }
}

/// Makes a float array of `count` values written by `body` (no zero-fill first).
@inline(__always)
func makeScalars(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let base = buffer.baseAddress, count > 0 {
            cengine_advise_huge_pages(base, buffer.count * MemoryLayout<Float>.stride)
            body(base)
        }
        initialized = count
    }
}

/// A zero-filled float array of `count` values, then `body` writes into it.
@inline(__always)
func makeZeroedScalars(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    makeScalars(count) { p in
        p.initialize(repeating: 0, count: count)
        body(p)
    }
}

extension Tensor {
    /// Reads the values through a pointer.
    @inline(__always)
    func withPointer<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
        scalars.withUnsafeBufferPointer { body($0.baseAddress ?? UnsafePointer(bitPattern: 16)!) }
    }
}

/// Row-major strides of a shape.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// The broadcast shape of two shapes (NumPy rules), or nil when they do not broadcast.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Strides of `shape` read as if broadcast to `target` (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let strides = contiguousStrides(shape)
    let offset = target.count - shape.count
    return (0..<target.count).map { i in
        i < offset || shape[i - offset] == 1 ? 0 : strides[i - offset]
    }
}
