import Foundation

/// Batch normalisation with batch statistics (training mode), fused, and its gradients.
///
/// The forward pass and the first-order backward pass are fused kernels. When gradients are taken with
/// `createGraph`, the backward pass is built from differentiable operations instead (the same formula),
/// so second-order gradients flow through batch statistics exactly.
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
                return batchNormGradientGraph(g, x, gamma, epsilon: epsilon)
            }
            return batchNormGradientKernel(g, x, gamma, mean: mean, invstd: invstd)
        }
        return BatchNormResult(output: output, mean: mean, variance: variance)
    }

    /// The fused first-order backward pass: dx = γ·ι/M · (M·g − Σg − x̂·Σ(g·x̂)), dγ = Σ g·x̂, dβ = Σ g.
    private static func batchNormGradientKernel(_ g: Tensor, _ x: Tensor, _ gamma: Tensor,
                                                mean: [Float], invstd: [Float]) -> [Tensor?] {
        let (n, c, inner) = x.channelLayout
        let m = Float(n * inner)
        var dgamma = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
        let dx = x.withPointer { px in
            g.withPointer { pg in
                makeScalars(x.count) { po in
                    for ch in 0..<c {
                        let mu = mean[ch], inv = invstd[ch]
                        var sg = 0.0, sgx = 0.0
                        for b in 0..<n {
                            let (t1, t2) = vectorSumAndCenteredDot(pg + (b * c + ch) * inner, px + (b * c + ch) * inner, inner, mean: mu)
                            sg += Double(t1); sgx += Double(t2)
                        }
                        let sumG = Float(sg), sumGX = Float(sgx) * inv
                        dgamma[ch] = sumGX; dbeta[ch] = sumG
                        let a = gamma.scalars[ch] * inv / m
                        let meanG = sumG, scaleX = sumGX * inv
                        for b in 0..<n {
                            let p = px + (b * c + ch) * inner, q = pg + (b * c + ch) * inner
                            let o = po + (b * c + ch) * inner
                            for k in 0..<inner { o[k] = a * (m * q[k] - meanG - (p[k] - mu) * scaleX) }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx), Tensor(shape: [c], scalars: dgamma), Tensor(shape: [c], scalars: dbeta)]
    }

    /// The same gradient built from differentiable operations (for `createGraph`).
    static func batchNormGradientGraph(_ g: Tensor, _ x: Tensor, _ gamma: Tensor, epsilon: Float) -> [Tensor?] {
        let c = x.shape[1]
        let axes = x.rank == 4 ? [0, 2, 3] : [0]
        let cs = x.channelShape(c)
        let mu = x.mean(axes: axes, keepDims: true)
        let centered = x - mu
        let variance = centered.squared().mean(axes: axes, keepDims: true)
        let invstd = variance.shifted(by: epsilon).pow(-0.5)
        let xhat = centered * invstd
        let dxhat = g * gamma.reshaped(cs)
        let dx = invstd * (dxhat - dxhat.mean(axes: axes, keepDims: true)
                           - xhat * (dxhat * xhat).mean(axes: axes, keepDims: true))
        let dgamma = (g * xhat).sum(axes: axes)
        let dbeta = g.sum(axes: axes)
        return [dx, dgamma, dbeta]
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
