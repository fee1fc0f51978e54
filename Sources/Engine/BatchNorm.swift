import Foundation

/// Batch normalisation with batch statistics (training mode), fused, and its gradients.
///
/// The forward pass and the first-order backward pass are fused kernels. When gradients are taken with
/// `createGraph`, the backward pass is recorded as operations with rules of their own
/// (`batchNormGradientGraph`: the same values), so second-order gradients flow through batch statistics exactly.
public struct BatchNormResult {
    /// The normalised, scaled and shifted output.
    public let output: Tensor
    /// Per-channel batch mean and biased variance (constants), for running statistics.
    public let mean: [Float]
    public let variance: [Float]
}

extension Tensor {
    /// Per-channel statistics layout: x is [N, C] or [N, C, H, W]; returns (outer N, C, inner H·W).
    private var channelLayout: (Int, Int, Int) {
        precondition(rank == 2 || rank == 4, "batch norm needs [N, C] or [N, C, H, W], got \(shape)")
        return (shape[0], shape[1], rank == 4 ? shape[2] * shape[3] : 1)
    }

    /// Shape for broadcasting a per-channel vector against this tensor: [1, C] or [1, C, 1, 1].
    func channelShape(_ c: Int) -> [Int] { rank == 4 ? [1, c, 1, 1] : [1, c] }

    /// Batch normalisation with the batch's own statistics: γ · (x − μ) / √(σ² + ε) + β, with μ and σ²
    /// (biased) over every axis but the channel axis 1.
    public static func batchNorm(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor, epsilon: Float = 1e-5) -> BatchNormResult {
        let (n, c, inner) = x.channelLayout
        precondition(gamma.shape == [c] && beta.shape == [c], "batch norm: γ and β must be [\(c)]")
        let (mean, variance, invstd) = x.withPointer { batchMoments($0, n: n, c: c, inner: inner, epsilon: epsilon) }
        let (gammaValues, betaValues) = (gamma.scalars, beta.scalars)
        let out = x.withPointer { px in
            makeScalars(x.count) { po in
                for ch in 0..<c {
                    let a = gammaValues[ch] * invstd[ch], bshift = betaValues[ch] - mean[ch] * a
                    for b in 0..<n {
                        let p = px + (b * c + ch) * inner, o = po + (b * c + ch) * inner
                        for k in 0..<inner { o[k] = p[k] * a + bshift }
                    }
                }
            }
        }
        let output = record("batchNorm", x.shape, out, inputs: [x, gamma, beta]) { g, _ in
            if GradMode.isEnabled {
                return batchNormGradientGraph(g, x, gamma, mean: mean, invstd: invstd, epsilon: epsilon)
            }
            return batchNormGradientKernel(g, x, gamma, mean: mean, invstd: invstd)
        }
        return BatchNormResult(output: output, mean: mean, variance: variance)
    }

    /// The fused first-order backward pass: dx = γ·ι/M · (M·g − Σg − x̂·Σ(g·x̂)), dγ = Σ g·x̂, dβ = Σ g.
    private static func batchNormGradientKernel(_ g: Tensor, _ x: Tensor, _ gamma: Tensor,
                                                mean: [Float], invstd: [Float]) -> [Tensor?] {
        let values = batchNormGradientValues(g, x, gamma, mean: mean, invstd: invstd)
        let c = x.shape[1]
        return [Tensor(shape: x.shape, scalars: values.dx), Tensor(shape: [c], scalars: values.dgamma),
                Tensor(shape: [c], scalars: values.dbeta)]
    }

    /// Batch normalisation with given (running) statistics: γ · (x − μ) / √(σ² + ε) + β.
    public static func batchNorm(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor, mean: [Float],
                                 variance: [Float], epsilon: Float = 1e-5) -> Tensor {
        let c = x.shape[1]
        let cs = x.channelShape(c)
        let inv = variance.map { 1 / ($0 + epsilon).squareRoot() }
        let mu = Tensor(shape: cs, scalars: mean)
        return (x - mu) * Tensor(shape: cs, scalars: inv) * gamma.reshaped(cs) + beta.reshaped(cs)
    }
}
