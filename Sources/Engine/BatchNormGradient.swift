import Foundation

/// Batch norm's gradient (dx, dγ, dβ) as recorded operations, for gradients taken with `createGraph` (MAML's
/// inner loop), and the rules that differentiate it (MAML's meta-gradient: batch norm's second order).
///
/// With g the output's gradient, per channel over its M = N·H·W values, μ and σ² the batch statistics,
/// ι = 1/√(σ² + ε), x̂ = (x − μ)·ι, G = mean(g) and m = mean(g·x̂):
///
///     dx = γ·ι·(g − G − x̂·m),   dγ = Σ g·x̂,   dβ = Σ g.
///
/// Each is one recorded operation whose values are the first-order kernel's (`batchNormGradientValues`), so a
/// gradient taken with and without `createGraph` is the same bits. Their rules, for cotangents a (of dx, like x),
/// b (of dγ) and c (of dβ), with A = mean(a), Aₓ = mean(a·x̂), A_g = mean(a·g):
///
///     through dx:  ḡ = γι·(a − A − x̂·Aₓ)
///                  x̄ = −γι²·(m·(a − A) + Aₓ·(g − G) + x̂·(A_g − A·G − 3·Aₓ·m))
///                  γ̄ = ι·M·(A_g − A·G − Aₓ·m)
///     through dγ:  ḡ = b·x̂,   x̄ = b·ι·(g − G − x̂·m)
///     through dβ:  ḡ = c
///
/// (x̄ gathers what reaches x through ι, x̂ and m: with δι = −ι²·mean(x̂·δx) and δx̂ = ι·(δx − mean(δx) − x̂·mean(x̂·δx)).)
/// Each rule is two passes over the large tensors, where differentiating batch norm's gradient composed of
/// elementwise operations and reductions took about thirty. When the rules are recorded themselves (a third
/// order), they are these formulas composed of differentiable operations, so every order stays exact.
extension Tensor {
    static func batchNormGradientGraph(_ g: Tensor, _ x: Tensor, _ gamma: Tensor, mean: [Float], invstd: [Float],
                                       epsilon: Float) -> [Tensor?] {
        let values = batchNormGradientValues(g, x, gamma, mean: mean, invstd: invstd)
        let rules = BatchNormSecondOrder(x: x, gamma: gamma, mean: mean, invstd: invstd, dgamma: values.dgamma,
                                         dbeta: values.dbeta)
        let c = x.shape[1]
        let dx = record("batchNormInputGradient", x.shape, values.dx, inputs: [g, x, gamma]) { a, _ in
            if GradMode.isEnabled { return recordedRule(part: 0, a, g, x, gamma, epsilon: epsilon) }
            return rules.throughInputGradient(a, g, x, gamma)
        }
        let dgamma = record("batchNormScaleGradient", [c], values.dgamma, inputs: [g, x]) { b, _ in
            if GradMode.isEnabled { return recordedRule(part: 1, b, g, x, gamma, epsilon: epsilon) }
            return rules.throughScaleGradient(b, g, x)
        }
        let channelShape = x.channelShape(c), shape = g.shape
        let dbeta = record("batchNormOffsetGradient", [c], values.dbeta, inputs: [g]) { cotangent, _ in
            [cotangent.reshaped(channelShape).expand(to: shape)]
        }
        return [dx, dgamma, dbeta]
    }

    /// The rules' values as differentiable operations (the batch statistics made again from x, recorded), for
    /// when the rules are recorded themselves: ḡ, x̄ and γ̄ for the cotangent `a` of dx (`part` 0), or ḡ and x̄
    /// for the cotangent `b` [C] of dγ (`part` 1), the formulas above.
    private static func recordedRule(part: Int, _ cotangent: Tensor, _ g: Tensor, _ x: Tensor, _ gamma: Tensor,
                                     epsilon: Float) -> [Tensor?] {
        let c = x.shape[1]
        let axes = x.rank == 4 ? [0, 2, 3] : [0]
        let cs = x.channelShape(c)
        let centered = x - x.mean(axes: axes, keepDims: true)
        let invstd = centered.squared().mean(axes: axes, keepDims: true).shifted(by: epsilon).pow(-0.5)
        let xhat = centered * invstd
        let meanG = g.mean(axes: axes, keepDims: true), small = (g * xhat).mean(axes: axes, keepDims: true)
        if part == 1 {
            let b = cotangent.reshaped(cs)
            return [b * xhat, b * invstd * (g - meanG - xhat * small)]
        }
        let a = cotangent
        let meanA = a.mean(axes: axes, keepDims: true), meanAX = (a * xhat).mean(axes: axes, keepDims: true)
        let meanAG = (a * g).mean(axes: axes, keepDims: true)
        let gi = gamma.reshaped(cs) * invstd
        let centeredA = a - meanA
        let gBar = gi * (centeredA - xhat * meanAX)
        let xBar = -(gi * invstd) * (small * centeredA + meanAX * (g - meanG)
                                     + xhat * (meanAG - meanA * meanG - meanAX * small * 3))
        let m = Float(x.count / c)
        let gammaBar = (invstd * (meanAG - meanA * meanG - meanAX * small)).reshaped([c]) * m
        return [gBar, xBar, gammaBar]
    }

    /// dx, dγ and dβ of batch norm with batch statistics `mean` and `invstd` (x's, as the forward pass made them):
    /// dx = γ·ι/M · (M·g − Σg − x̂·Σ(g·x̂)), dγ = Σ g·x̂, dβ = Σ g. Each plane's two sums in float, each channel's
    /// in double, image after image; the channels in parallel, each on one thread, so the bits do not depend on
    /// the thread count.
    static func batchNormGradientValues(_ g: Tensor, _ x: Tensor, _ gamma: Tensor, mean: [Float], invstd: [Float])
        -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        let (n, c, inner) = (x.shape[0], x.shape[1], x.rank == 4 ? x.shape[2] * x.shape[3] : 1)
        let m = Float(n * inner)
        let gammaValues = gamma.scalars
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        let dx = x.withPointer { px in
            g.withPointer { pg in
                dgamma.withUnsafeMutableBufferPointer { pdg in
                    dbeta.withUnsafeMutableBufferPointer { pdb in
                        makeScalars(x.count) { po in
                            ComputeThreads.forEach(c, work: 2 * x.count) { ch in
                                let mu = mean[ch], inv = invstd[ch]
                                var sg = 0.0, sgx = 0.0
                                for b in 0..<n {
                                    let plane = (b * c + ch) * inner
                                    let (t1, t2) = vectorSumAndCenteredDot(pg + plane, px + plane, inner, mean: mu)
                                    sg += Double(t1); sgx += Double(t2)
                                }
                                let sumG = Float(sg), sumGX = Float(sgx) * inv
                                pdg[ch] = sumGX; pdb[ch] = sumG
                                let a = gammaValues[ch] * inv / m
                                let scaleX = sumGX * inv
                                for b in 0..<n {
                                    let plane = (b * c + ch) * inner
                                    let p = px + plane, q = pg + plane, o = po + plane
                                    for k in 0..<inner { o[k] = a * (m * q[k] - sumG - (p[k] - mu) * scaleX) }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dgamma, dbeta)
    }
}

/// What the rules of batch norm's recorded gradient keep: the statistics, γ, and G = mean(g), m = mean(g·x̂).
private struct BatchNormSecondOrder {
    let n, c, inner: Int
    let mean, invstd, meanG, meanGXhat: [Float]

    init(x: Tensor, gamma: Tensor, mean: [Float], invstd: [Float], dgamma: [Float], dbeta: [Float]) {
        (n, c, inner) = (x.shape[0], x.shape[1], x.rank == 4 ? x.shape[2] * x.shape[3] : 1)
        let m = Float(n * inner)
        (self.mean, self.invstd) = (mean, invstd)
        meanG = dbeta.map { $0 / m }
        meanGXhat = dgamma.map { $0 / m }
    }

    /// The per-channel sums of the cotangent a: Σ a, Σ a·x̂ and Σ a·g, each plane's in float, each channel's in
    /// double, image after image.
    private func cotangentSums(_ pa: UnsafePointer<Float>, _ pg: UnsafePointer<Float>, _ px: UnsafePointer<Float>)
        -> (sumA: [Float], sumAX: [Float], sumAG: [Float]) {
        let (n, c, inner, mean) = (n, c, inner, mean)
        let planes = makeScalars(3 * n * c) { ps in
            ComputeThreads.forEachRange(n * c, work: 3 * n * c * inner) { range in
                for index in range {
                    let offset = index * inner
                    let (s1, s2, s3) = vectorSumCenteredDotAndDot(pa + offset, px + offset, pg + offset, inner,
                                                                  mean: mean[index % c])
                    ps[3 * index] = s1; ps[3 * index + 1] = s2; ps[3 * index + 2] = s3
                }
            }
        }
        var sumA = [Float](repeating: 0, count: c), sumAX = sumA, sumAG = sumA
        for ch in 0..<c {
            var s1 = 0.0, s2 = 0.0, s3 = 0.0
            for b in 0..<n {
                let index = 3 * (b * c + ch)
                s1 += Double(planes[index]); s2 += Double(planes[index + 1]); s3 += Double(planes[index + 2])
            }
            sumA[ch] = Float(s1); sumAX[ch] = Float(s2) * invstd[ch]; sumAG[ch] = Float(s3)
        }
        return (sumA, sumAX, sumAG)
    }

    /// ḡ, x̄ and γ̄ for the cotangent `a` of dx (the formulas above).
    func throughInputGradient(_ a: Tensor, _ g: Tensor, _ x: Tensor, _ gamma: Tensor) -> [Tensor?] {
        let (n, c, inner) = (n, c, inner)
        let m = Float(n * inner)
        let gammaValues = gamma.scalars
        let sums = a.withPointer { pa in g.withPointer { pg in x.withPointer { px in cotangentSums(pa, pg, px) } } }
        // Per channel, ḡ = ga·a + g0 + gx·(x − μ) and x̄ = xa·a + xg·g + xx·(x − μ) + x0.
        var ga = [Float](repeating: 0, count: c), g0 = ga, gx = ga, xa = ga, xg = ga, xx = ga, x0 = ga
        var dgamma = ga
        for ch in 0..<c {
            let inv = invstd[ch], gi = gammaValues[ch] * inv, gi2 = gi * inv
            let meanA = sums.sumA[ch] / m, meanAX = sums.sumAX[ch] / m, meanAG = sums.sumAG[ch] / m
            let bigG = meanG[ch], small = meanGXhat[ch]
            ga[ch] = gi; g0[ch] = -gi * meanA; gx[ch] = -gi * meanAX * inv
            xa[ch] = -gi2 * small
            xg[ch] = -gi2 * meanAX
            xx[ch] = -gi2 * (meanAG - meanA * bigG - 3 * meanAX * small) * inv
            x0[ch] = gi2 * (small * meanA + meanAX * bigG)
            dgamma[ch] = inv * (sums.sumAG[ch] - sums.sumA[ch] * bigG - sums.sumAX[ch] * small)
        }
        var gBar: [Float] = [], xBar: [Float] = []
        a.withPointer { pa in
            g.withPointer { pg in
                x.withPointer { px in
                    gBar = makeScalars(x.count) { pgb in
                        xBar = makeScalars(x.count) { pxb in
                            ComputeThreads.forEachRange(n * c, work: 5 * n * c * inner) { range in
                                for index in range {
                                    let ch = index % c, offset = index * inner, mu = mean[ch]
                                    let (ga, g0, gx) = (ga[ch], g0[ch], gx[ch])
                                    let (xa, xg, xx, x0) = (xa[ch], xg[ch], xx[ch], x0[ch])
                                    let (qa, qg, qx) = (pa + offset, pg + offset, px + offset)
                                    let (og, ox) = (pgb + offset, pxb + offset)
                                    for k in 0..<inner {
                                        let d = qx[k] - mu, av = qa[k]
                                        og[k] = ga * av + g0 + gx * d
                                        ox[k] = xa * av + xg * qg[k] + xx * d + x0
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: g.shape, scalars: gBar), Tensor(shape: x.shape, scalars: xBar),
                Tensor(shape: [c], scalars: dgamma)]
    }

    /// ḡ and x̄ for the cotangent `b` [C] of dγ: ḡ = b·ι·(x − μ), x̄ = b·ι·(g − G) − b·ι²·m·(x − μ).
    func throughScaleGradient(_ b: Tensor, _ g: Tensor, _ x: Tensor) -> [Tensor?] {
        let (n, c, inner) = (n, c, inner)
        let bValues = b.scalars
        var gBar: [Float] = [], xBar: [Float] = []
        g.withPointer { pg in
            x.withPointer { px in
                gBar = makeScalars(x.count) { pgb in
                    xBar = makeScalars(x.count) { pxb in
                        ComputeThreads.forEachRange(n * c, work: 4 * n * c * inner) { range in
                            for index in range {
                                let ch = index % c, offset = index * inner, mu = mean[ch]
                                let bi = bValues[ch] * invstd[ch], bigG = meanG[ch]
                                let bi2m = bi * invstd[ch] * meanGXhat[ch]
                                let (qg, qx, og, ox) = (pg + offset, px + offset, pgb + offset, pxb + offset)
                                for k in 0..<inner {
                                    let d = qx[k] - mu
                                    og[k] = bi * d
                                    ox[k] = bi * (qg[k] - bigG) - bi2m * d
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: g.shape, scalars: gBar), Tensor(shape: x.shape, scalars: xBar)]
    }
}
