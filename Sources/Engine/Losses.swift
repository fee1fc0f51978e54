import Foundation

/// Log-softmax, cross-entropy, distances and similarities.
extension Tensor {
    /// log softmax along the last axis of a 2-D tensor [rows × classes].
    public func logSoftmax() -> Tensor {
        precondition(rank == 2, "logSoftmax needs [rows × classes], got \(shape)")
        let rows = shape[0], cols = shape[1]
        let out = withPointer { px in
            makeScalars(count) { po in
                for r in 0..<rows {
                    let x = px + r * cols, o = po + r * cols
                    var mx = -Float.infinity
                    for j in 0..<cols { mx = Swift.max(mx, x[j]) }
                    var s: Float = 0
                    for j in 0..<cols { s += Foundation.exp(x[j] - mx) }
                    let logSum = Foundation.log(s)
                    for j in 0..<cols { o[j] = (x[j] - mx) - logSum }
                }
            }
        }
        // d/dx: g − softmax · Σg, with softmax = exp(y).
        return record("logSoftmax", shape, out, inputs: [self]) { g, y in
            [g - y.exp() * g.sum(axes: [1], keepDims: true)]
        }
    }

    /// Softmax along the last axis of a 2-D tensor.
    public func softmax() -> Tensor { logSoftmax().exp() }

    /// Mean negative log-likelihood of `labels` under log-probabilities [rows × classes].
    public func nllLoss(labels: [Int]) -> Tensor {
        precondition(rank == 2 && labels.count == shape[0], "nllLoss: \(labels.count) labels for \(shape)")
        let rows = shape[0], cols = shape[1]
        precondition(labels.allSatisfy { $0 >= 0 && $0 < cols }, "nllLoss: label out of 0..<\(cols)")
        var total: Float = 0
        withPointer { p in for (r, l) in labels.enumerated() { total -= p[r * cols + l] } }
        var pick = [Float](repeating: 0, count: count)
        for (r, l) in labels.enumerated() { pick[r * cols + l] = -1 / Float(rows) }
        let pickTensor = Tensor(shape: shape, scalars: pick)
        return record("nll", [], [total / Float(rows)], inputs: [self]) { g, _ in [g * pickTensor] }
    }

    /// Cross-entropy of `labels` for logits [rows × classes] (mean over rows).
    public static func crossEntropy(logits: Tensor, labels: [Int]) -> Tensor {
        logits.logSoftmax().nllLoss(labels: labels)
    }

    /// Squared Euclidean distances between the rows of a [n × d] and b [m × d]: [n × m].
    public static func pairwiseSquaredDistances(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[1],
                     "pairwise distances need [n × d] and [m × d], got \(a.shape) and \(b.shape)")
        let aa = a.squared().sum(axes: [1], keepDims: true)                 // [n, 1]
        let bb = b.squared().sum(axes: [1], keepDims: true).reshaped([1, b.shape[0]])  // [1, m]
        return aa + bb - matmul(a, b, transposeB: true).scaled(by: 2)
    }

    /// Rows scaled to unit Euclidean norm: x / √(Σx² + ε).
    public func rowNormalized(epsilon: Float = 1e-8) -> Tensor {
        self * squared().sum(axes: [1], keepDims: true).shifted(by: epsilon).pow(-0.5)
    }

    /// Cosine similarities between the rows of a [n × d] and b [m × d]: [n × m].
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, epsilon: Float = 1e-8) -> Tensor {
        matmul(a.rowNormalized(epsilon: epsilon), b.rowNormalized(epsilon: epsilon), transposeB: true)
    }

    /// Index of the largest value in each row of a 2-D tensor.
    public func argmaxRows() -> [Int] {
        precondition(rank == 2, "argmaxRows needs a 2-D tensor")
        let cols = shape[1]
        return (0..<shape[0]).map { r in
            var best = 0
            for j in 1..<Swift.max(cols, 1) where scalars[r * cols + j] > scalars[r * cols + best] { best = j }
            return best
        }
    }
}
