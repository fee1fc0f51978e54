/// Matrix products through OpenBLAS sgemm, and their gradients.
extension Tensor {
    /// op(A) · op(B) for 2-D tensors; op transposes when asked.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let k2 = transposeB ? b.shape[1] : b.shape[0], n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == k2, "matmul: inner dimensions differ (\(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : ""))")
        let out = a.withPointer { pa in
            b.withPointer { pb in
                makeScalars(m * n) { pc in
                    // Large products: rows of C in a fixed number of parts, run on several threads when
                    // there are. The parts do not depend on the thread count because OpenBLAS's result for
                    // a row can depend on how the rows are split (its edge kernels), and results must not.
                    let parts = m * n * k >= (1 << 21) && m >= 64 ? Swift.min(matmulParts, m / 32) : 1
                    let rows = (m + parts - 1) / parts
                    ComputeThreads.forEach(parts, work: Int.max) { part in
                        let first = part * rows, count = Swift.min(rows, m - first)
                        if count <= 0 { return }
                        BLAS.sgemm(transA: transposeA, transB: transposeB, m: count, n: n, k: k,
                                   a: transposeA ? pa + first : pa + first * a.shape[1], lda: a.shape[1],
                                   b: pb, ldb: b.shape[1], c: pc + first * n, ldc: n)
                    }
                }
            }
        }
        return record("matmul", [m, n], out, inputs: [a, b]) { g, _ in
            let ga: Tensor?, gb: Tensor?
            switch (transposeA, transposeB) {
            case (false, false):
                ga = a.requiresGrad ? matmul(g, b, transposeB: true) : nil
                gb = b.requiresGrad ? matmul(a, g, transposeA: true) : nil
            case (true, false):
                ga = a.requiresGrad ? matmul(b, g, transposeB: true) : nil
                gb = b.requiresGrad ? matmul(a, g) : nil
            case (false, true):
                ga = a.requiresGrad ? matmul(g, b) : nil
                gb = b.requiresGrad ? matmul(g, a, transposeA: true) : nil
            case (true, true):
                ga = a.requiresGrad ? matmul(b, g, transposeA: true, transposeB: true) : nil
                gb = b.requiresGrad ? matmul(g, a, transposeA: true, transposeB: true) : nil
            }
            return [ga, gb]
        }
    }
}

/// Row parts of a large product (the default thread count, so stored results made with it are unchanged).
let matmulParts = 2

/// x · Wᵀ + b for x [n × in], W [out × in], b [out] (PyTorch's `Linear` convention).
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let y = Tensor.matmul(x, weight, transposeB: true)
    guard let bias else { return y }
    return y + bias
}
