/// Batch norm, 2×2 max-pooling and ReLU in one pass: relu(maxPool(batchNorm(x))), the tail of every
/// Conv4 block. It equals the three operations applied in turn — values, gradients and second-order
/// gradients — but reads the large pre-pooling activation twice instead of six times.
///
/// The first-order backward pass is fused too. With `createGraph` it is built from the differentiable
/// operations (mask, scatter, batch-norm composite), so gradients of gradients stay exact.
extension Tensor {
    public static func batchNormMaxPoolReLU(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor,
                                            epsilon: Float = 1e-5, poolSize size: Int = 2) -> BatchNormResult {
        precondition(x.rank == 4, "batchNormMaxPoolReLU needs NCHW input, got \(x.shape)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(gamma.shape == [c] && beta.shape == [c], "batch norm: γ and β must be [\(c)]")
        let ho = h / size, wo = w / size, inner = h * w, m = n * inner
        var mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
        var invstd = [Float](repeating: 0, count: c)
        var indices = [Int32](repeating: 0, count: n * c * ho * wo)
        let out = x.withPointer { px in
            indices.withUnsafeMutableBufferPointer { pi in
              mean.withUnsafeMutableBufferPointer { pMean in
              variance.withUnsafeMutableBufferPointer { pVariance in
              invstd.withUnsafeMutableBufferPointer { pInvstd in
                makeScalars(n * c * ho * wo) { po in
                    // Channels are independent: several threads for large batches.
                    ComputeThreads.forEach(c, work: x.count) { ch in
                        let (mu, variance32, inv) = channelMoments(px, n: n, c: c, inner: inner, channel: ch, epsilon: epsilon)
                        pMean[ch] = mu; pVariance[ch] = variance32; pInvstd[ch] = inv
                        let a = gamma.scalars[ch] * inv, shift = beta.scalars[ch] - mu * a
                        for b in 0..<n {
                            let plane = (b * c + ch) * inner
                            let p = px + plane
                            let outPlane = (b * c + ch) * ho * wo
                            if size == 2 {
                                // The common 2×2 case, written as selects (no data-dependent branches):
                                // the first maximum of the window wins, as in `maxPool2d`.
                                let w32 = Int32(w)
                                for y in 0..<ho {
                                    let r0 = p + 2 * y * w, r1 = r0 + w
                                    let o = po + outPlane + y * wo, oi = pi.baseAddress! + outPlane + y * wo
                                    let rowBase = Int32(plane + 2 * y * w)
                                    for xo in 0..<wo {
                                        let v0 = r0[2 * xo] * a + shift, v1 = r0[2 * xo + 1] * a + shift
                                        let v2 = r1[2 * xo] * a + shift, v3 = r1[2 * xo + 1] * a + shift
                                        let c1 = v1 > v0
                                        var best = c1 ? v1 : v0
                                        var offset: Int32 = c1 ? 1 : 0
                                        let c2 = v2 > best
                                        best = c2 ? v2 : best
                                        offset = c2 ? w32 : offset
                                        let c3 = v3 > best
                                        best = c3 ? v3 : best
                                        offset = c3 ? w32 &+ 1 : offset
                                        o[xo] = best > 0 ? best : 0
                                        oi[xo] = rowBase &+ Int32(truncatingIfNeeded: 2 &* xo) &+ offset
                                    }
                                }
                                continue
                            }
                            for y in 0..<ho {
                                for xo in 0..<wo {
                                    var bestIndex = (y * size) * w + xo * size
                                    var best = p[bestIndex] * a + shift
                                    for i in 0..<size {
                                        for j in 0..<size {
                                            let idx = (y * size + i) * w + xo * size + j
                                            let value = p[idx] * a + shift
                                            if value > best { best = value; bestIndex = idx }
                                        }
                                    }
                                    po[outPlane + y * wo + xo] = best > 0 ? best : 0
                                    pi[outPlane + y * wo + xo] = Int32(plane + bestIndex)
                                }
                            }
                        }
                    }
                }
              }
              }
              }
            }
        }
        let output = record("batchNormMaxPoolReLU", [n, c, ho, wo], out, inputs: [x, gamma, beta]) { g, y in
            if GradMode.isEnabled {
                // relu′ (mask of the output), the pooling scatter, then batch norm's composite gradient.
                let gBN = g.masked(wherePositive: y).scatterFlat(indices, shape: x.shape)
                return batchNormGradientGraph(gBN, x, gamma, epsilon: epsilon)
            }
            return fusedBlockGradient(g, y, x, gamma, indices: indices, mean: mean, invstd: invstd)
        }
        return BatchNormResult(output: output, mean: mean, variance: variance)
    }

    /// First-order gradient of the fused block: the upstream gradient reaches the pre-pooling positions
    /// `indices` where the output is positive; batch norm's gradient is then
    /// dx = γ·ι/M · (M·g − Σg − x̂·Σ(g·x̂)), with the sums taken over the sparse g.
    private static func fusedBlockGradient(_ g: Tensor, _ y: Tensor, _ x: Tensor, _ gamma: Tensor, indices: [Int32],
                                           mean: [Float], invstd: [Float]) -> [Tensor?] {
        let (n, c) = (x.shape[0], x.shape[1])
        let inner = x.shape[2] * x.shape[3], pooled = y.shape[2] * y.shape[3]
        let m = Float(n * inner)
        var dgamma = [Float](repeating: 0, count: c), dbeta = [Float](repeating: 0, count: c)
        let dx = x.withPointer { px in
            g.withPointer { pg in
                y.withPointer { py in
                    indices.withUnsafeBufferPointer { pi in
                      dgamma.withUnsafeMutableBufferPointer { pdGamma in
                      dbeta.withUnsafeMutableBufferPointer { pdBeta in
                        makeScalars(x.count) { po in
                            ComputeThreads.forEach(c, work: x.count) { ch in
                                let mu = mean[ch], inv = invstd[ch]
                                var sg = 0.0, sgx = 0.0
                                for b in 0..<n {
                                    let base = (b * c + ch) * pooled
                                    var t1: Float = 0, t2: Float = 0
                                    for k in base..<(base + pooled) {
                                        // Branch-free: the gradient is zero where the output was clipped.
                                        let gk = pg[k], gv = py[k] > 0 ? gk : 0
                                        t1 += gv; t2 += gv * (px[Int(pi[k])] - mu)
                                    }
                                    sg += Double(t1); sgx += Double(t2)
                                }
                                let sumG = Float(sg), sumGX = Float(sgx) * inv
                                pdGamma[ch] = sumGX; pdBeta[ch] = sumG
                                let a = gamma.scalars[ch] * inv / m, scaleX = sumGX * inv
                                for b in 0..<n {
                                    let plane = (b * c + ch) * inner
                                    let p = px + plane, o = po + plane
                                    for k in 0..<inner { o[k] = -a * (sumG + (p[k] - mu) * scaleX) }
                                    let base = (b * c + ch) * pooled
                                    let am = a * m
                                    for k in base..<(base + pooled) {
                                        let gk = pg[k], gv = py[k] > 0 ? gk : 0
                                        po[Int(pi[k])] += am * gv
                                    }
                                }
                            }
                        }
                      }
                      }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx), Tensor(shape: [c], scalars: dgamma), Tensor(shape: [c], scalars: dbeta)]
    }
}
