import CKernels

/// Batch norm, 2×2 max-pooling and ReLU in one pass: relu(maxPool(batchNorm(x))), the tail of every
/// Conv4 block. It equals the three operations applied in turn — values, gradients and second-order
/// gradients — but reads the large pre-pooling activation twice instead of six times.
///
/// The first-order backward pass is fused too. With `createGraph` it is built from recorded operations (mask,
/// scatter, batch norm's recorded gradient), so gradients of gradients stay exact.
extension Tensor {
    public static func batchNormMaxPoolReLU(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor,
                                            epsilon: Float = 1e-5, poolSize size: Int = 2) -> BatchNormResult {
        let f = blockForward(x, scale: gamma, offset: beta, epsilon: epsilon, poolSize: size)
        let (indices, maxima, mean, invstd) = (f.indices, f.maxima, f.mean, f.invstd)
        let output = record("batchNormMaxPoolReLU", f.shape, f.values, inputs: [x, gamma, beta]) { g, y in
            if GradMode.isEnabled {
                // relu′ (mask of the output), the pooling scatter, then batch norm's recorded gradient.
                let gBN = g.masked(wherePositive: y).scatterFlat(indices, shape: x.shape)
                return batchNormGradientGraph(gBN, x, gamma, mean: mean, invstd: invstd, epsilon: epsilon)
            }
            return fusedBlockGradient(g, y, x, gamma, poolSize: size, indices: indices, maxima: maxima, mean: mean,
                                      invstd: invstd)
        }
        return BatchNormResult(output: output, mean: f.mean, variance: f.variance)
    }

    /// The fused block's values with batch statistics: the output [N, C, H/size, W/size], the flat index in x of
    /// each output's window maximum and that maximum's value in x (what the first-order gradient's sums read, so
    /// that they need not gather it from the whole of x), and the per-channel mean, biased variance and
    /// 1/√(σ² + ε). `planeSums`: the statistics' first sums, when the caller made them (`batchMoments`).
    static func blockForward(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor, epsilon: Float, poolSize size: Int,
                             planeSums: [Float]? = nil)
        -> (values: [Float], shape: [Int], indices: [Int32], maxima: [Float], mean: [Float], variance: [Float],
            invstd: [Float]) {
        precondition(x.rank == 4, "batchNormMaxPoolReLU needs NCHW input, got \(x.shape)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(gamma.shape == [c] && beta.shape == [c], "batch norm: γ and β must be [\(c)]")
        precondition(size >= 1 && x.count <= Int(Int32.max), "batchNormMaxPoolReLU: pool size \(size), \(x.count) values")
        let ho = h / size, wo = w / size, inner = h * w, count = n * c * ho * wo
        let gammaValues = gamma.scalars, betaValues = beta.scalars
        let (mean, variance, invstd) = x.withPointer {
            batchMoments($0, n: n, c: c, inner: inner, epsilon: epsilon, planeSums: planeSums)
        }
        let a = (0..<c).map { gammaValues[$0] * invstd[$0] }
        let shift = (0..<c).map { betaValues[$0] - mean[$0] * a[$0] }
        var maxima: [Float] = [], out: [Float] = []
        // Every output, index and maximum is written by `poolPlane`, so no array is zeroed first.
        let indices = [Int32](unsafeUninitializedCapacity: count) { pi, initialized in
            maxima = makeScalars(count) { pm in
                out = makeScalars(count) { po in
                    guard let pi = pi.baseAddress else { return }
                    x.withPointer { px in
                        ComputeThreads.forEachRange(n * c, work: x.count) { planes in
                            for index in planes {
                                let offset = index * ho * wo
                                cblock_pool(px + index * inner, Int32(h), Int32(w), Int32(size), a[index % c],
                                            shift[index % c], Int32(truncatingIfNeeded: index * inner),
                                            po + offset, pi + offset, pm + offset)
                            }
                        }
                    }
                }
            }
            initialized = count
        }
        return (out, [n, c, ho, wo], indices, maxima, mean, variance, invstd)
    }

    /// relu(maxPool2d(batchNorm(conv2d(x)))) with batch statistics and 2×2 windows: a whole Conv4 block in
    /// training. Its values are `conv2d(x, weight:bias:stride:padding:)` followed by
    /// `batchNormMaxPoolReLU(_:scale:offset:epsilon:)`, and so are its gradients, bit for bit; what differs is the
    /// first-order backward pass, which never holds the convolution output's whole gradient (for the first layer of
    /// a 600-image episode, 120 MB): the convolution's input and weight gradients read it image range by image
    /// range, each range made from the saved activation when it is needed. With `createGraph` the gradient goes
    /// to the convolution's output through the composite rules (the convolution's own rule takes it on from
    /// there), so gradients of gradients stay exact; once that has happened, first-order passes go that way
    /// too, as the convolution's output then also gets gradient through the recorded graph.
    public static func convBatchNormMaxPoolReLU(_ x: Tensor, weight w: Tensor, bias: Tensor?, stride: Int = 1,
                                                padding: Int = 0, scale gamma: Tensor, offset beta: Tensor,
                                                epsilon: Float = 1e-5) -> BatchNormResult {
        if let bias, bias.requiresGrad, !w.requiresGrad {
            // The convolution's first-order rule sums a bias gradient on its own only in this case: keep its arithmetic.
            return batchNormMaxPoolReLU(conv2d(x, weight: w, bias: bias, stride: stride, padding: padding),
                                        scale: gamma, offset: beta, epsilon: epsilon)
        }
        let g = ConvGeometry(input: x.shape, weight: w.shape, stride: stride, pad: padding)
        // The batch statistics' first pass (each plane's sum) as each image's output comes out of the convolution,
        // while it is in cache, rather than in a pass of its own over the whole output: the same sums.
        let hw = g.ho * g.wo
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(g.n * g.o, 1))
        defer { sums.deallocate() }
        let conv = conv2d(x, weight: w, bias: bias, stride: stride, padding: padding) { image, values in
            for ch in 0..<g.o { sums[image * g.o + ch] = planeSum(values + ch * hw, hw) }
        }
        let planeSums = Array(UnsafeBufferPointer(start: sums, count: g.n * g.o))
        let f = blockForward(conv, scale: gamma, offset: beta, epsilon: epsilon, poolSize: 2, planeSums: planeSums)
        let (indices, maxima, mean, invstd) = (f.indices, f.maxima, f.mean, f.invstd)
        // The convolution's output first (the composite rule's way back), then its operands (the fused rule's).
        let inputs = [conv, gamma, beta, x, w] + (bias.map { [$0] } ?? [])
        let recorded = RecordedFlag()
        let output = record("convBatchNormMaxPoolReLU", f.shape, f.values, inputs: inputs) { grad, y in
            if GradMode.isEnabled {
                // The recorded rule refers to the convolution's output, so from now on that output can get
                // gradient by other ways than this node (a later pass through the recorded graph: MAML's
                // meta-gradient); later first-order passes hand this node's share to it too (below).
                recorded.value = true
                let gBN = grad.masked(wherePositive: y).scatterFlat(indices, shape: conv.shape)
                return batchNormGradientGraph(gBN, conv, gamma, mean: mean, invstd: invstd, epsilon: epsilon)
                    + [nil, nil, nil]
            }
            if recorded.value {
                // The composite's first-order way, so that the shares are summed before the convolution's
                // products, as with the operations in turn (the same bits, and one product rather than two).
                return fusedBlockGradient(grad, y, conv, gamma, poolSize: 2, indices: indices, maxima: maxima,
                                          mean: mean, invstd: invstd)
                    + [nil, nil, nil]
            }
            let block = BlockGradient(grad, y, conv, gamma, poolSize: 2, maxima: maxima, mean: mean, invstd: invstd)
            let (c, inner) = (block.c, block.inner)
            return conv.withPointer { px in
                grad.withPointer { pg in
                    y.withPointer { py in
                        indices.withUnsafeBufferPointer { pi in
                            // dx of the convolution's output for images first ..< first + count, as the
                            // block's own rule makes it for the whole.
                            let source = ConvOutputGradient.images { first, count, into in
                                for b in 0..<count {
                                    for ch in 0..<c {
                                        block.plane(image: first + b, channel: ch, px: px, pg: pg, py: py,
                                                    pi: pi.baseAddress!, into: into + (b * c + ch) * inner)
                                    }
                                }
                            }
                            let dx = x.requiresGrad
                                ? Tensor(shape: x.shape, scalars: convInputGradientValues(source, w, g)) : nil
                            var dw: Tensor?, db: Tensor?
                            if w.requiresGrad, let bias, bias.requiresGrad {
                                var biasGradient = [Float](repeating: 0, count: g.o)
                                let values = biasGradient.withUnsafeMutableBufferPointer {
                                    convWeightGradientValues(x, source, g, biasGradient: $0.baseAddress!)
                                }
                                (dw, db) = (Tensor(shape: w.shape, scalars: values), Tensor(shape: [g.o], scalars: biasGradient))
                            } else if w.requiresGrad {
                                dw = Tensor(shape: w.shape, scalars: convWeightGradientValues(x, source, g))
                            }
                            let operands: [Tensor?] = [dx, dw] + (bias == nil ? [] : [db])
                            return [nil, Tensor(shape: [c], scalars: block.dgamma), Tensor(shape: [c], scalars: block.dbeta)]
                                + operands
                        }
                    }
                }
            }
        }
        return BatchNormResult(output: output, mean: f.mean, variance: f.variance)
    }

    /// First-order gradient of the fused block: the upstream gradient reaches the pre-pooling positions
    /// `indices` where the output is positive; batch norm's gradient is then
    /// dx = γ·ι/M · (M·g − Σg − x̂·Σ(g·x̂)), with the sums taken over the sparse g.
    private static func fusedBlockGradient(_ g: Tensor, _ y: Tensor, _ x: Tensor, _ gamma: Tensor, poolSize: Int,
                                           indices: [Int32], maxima: [Float], mean: [Float],
                                           invstd: [Float]) -> [Tensor?] {
        let (n, c) = (x.shape[0], x.shape[1])
        let constants = BlockGradient(g, y, x, gamma, poolSize: poolSize, maxima: maxima, mean: mean, invstd: invstd)
        let dx = x.withPointer { px in
            g.withPointer { pg in
                y.withPointer { py in
                    indices.withUnsafeBufferPointer { pi in
                        makeScalars(x.count) { po in
                            ComputeThreads.forEachRange(n * c, work: x.count) { planes in
                                for index in planes {
                                    constants.plane(image: index / c, channel: index % c, px: px, pg: pg, py: py,
                                                    pi: pi.baseAddress!, into: po + index * constants.inner)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx), Tensor(shape: [c], scalars: constants.dgamma),
                Tensor(shape: [c], scalars: constants.dbeta)]
    }
}

/// Whether a training block's rule was ever recorded (taken with `createGraph`).
private final class RecordedFlag: @unchecked Sendable {
    var value = false
}

/// The fused block's first-order gradient, per channel: the sums over the pooled gradient (a first pass,
/// which also gives dγ and dβ), then any pre-pooling plane of dx on demand, alone (`plane`). Every value is
/// the same arithmetic whichever planes are made when, so the whole dx and dx made image range by image
/// range (the training block `convBatchNormMaxPoolReLU`) are the same bits.
struct BlockGradient {
    let n, c, h, w, poolSize, inner, pooled: Int
    let mean, a, sumG, scaleX, am, dgamma, dbeta: [Float]

    /// g and y [N, C, Ho, Wo] (the output's gradient and the output), x [N, C, H, W] (the block's input),
    /// `maxima` [N, C, Ho, Wo] the value in x of each output's window maximum (`blockForward`).
    init(_ g: Tensor, _ y: Tensor, _ x: Tensor, _ gamma: Tensor, poolSize: Int, maxima: [Float], mean: [Float],
         invstd: [Float]) {
        (n, c, h, w, self.poolSize) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], poolSize)
        (inner, pooled) = (x.shape[2] * x.shape[3], y.shape[2] * y.shape[3])
        let (n, c, pooled) = (n, c, pooled)
        let m = Float(n * inner)
        // Each plane's two sums in float, the planes in memory order, then each channel's in double, image after
        // image. The maxima's values are x's where the indices point (kept by the forward pass, so this reads a
        // quarter of what gathering them from x would).
        let planeSums = maxima.withUnsafeBufferPointer { pm in
            g.withPointer { pg in
                y.withPointer { py in
                    makeScalars(2 * n * c) { ps in
                        // (With no windows no array is read: every sum is 0.)
                        mean.withUnsafeBufferPointer { means in
                            ComputeThreads.forEachRange(n * c, work: n * c * pooled * 4) { planes in
                                cblock_gradient_sums(pg, py, pm.baseAddress, pooled, planes.lowerBound, planes.count, c,
                                                     means.baseAddress, ps)
                            }
                        }
                    }
                }
            }
        }
        let gammaValues = gamma.scalars
        var a = [Float](repeating: 0, count: c), sumG = a, scaleX = a, am = a, dgamma = a, dbeta = a
        for ch in 0..<c {
            let inv = invstd[ch]
            var sg = 0.0, sgx = 0.0
            for b in 0..<n {
                sg += Double(planeSums[2 * (b * c + ch)]); sgx += Double(planeSums[2 * (b * c + ch) + 1])
            }
            let sum = Float(sg), sumGX = Float(sgx) * inv
            dgamma[ch] = sumGX; dbeta[ch] = sum
            let scale = gammaValues[ch] * inv / m
            a[ch] = scale; sumG[ch] = sum; scaleX[ch] = sumGX * inv; am[ch] = scale * m
        }
        (self.mean, self.a, self.sumG, self.scaleX, self.am, self.dgamma, self.dbeta) = (mean, a, sumG, scaleX, am, dgamma, dbeta)
    }

    /// dx of one pre-pooling plane (`image`, `channel`), H·W values into `o`: the batch-norm terms, then the
    /// pooled gradient added at each window's maximum where the output is positive. `px`, `pg`, `py`, `pi`
    /// are the whole x, g, y and indices.
    /// (`cblock_plane_gradient`: with 2 × 2 windows the sums at the maxima in the same pass as the values.)
    @inline(__always)
    func plane(image b: Int, channel ch: Int, px: UnsafePointer<Float>, pg: UnsafePointer<Float>,
               py: UnsafePointer<Float>, pi: UnsafePointer<Int32>, into o: UnsafeMutablePointer<Float>) {
        let plane = (b * c + ch) * inner, base = (b * c + ch) * pooled
        cblock_plane_gradient(px + plane, Int32(h), Int32(w), Int32(poolSize), mean[ch], a[ch], sumG[ch], scaleX[ch],
                              am[ch], pg + base, py + base, pi + base, plane, o)
    }
}

extension Tensor {
    /// relu(maxPool2d(batchNorm(x)) with given (running) statistics, 2×2 windows: the tail of a Conv4 block
    /// at evaluation, in one pass over the pre-pooling activation instead of six. Value for value what
    /// `batchNorm(_:scale:offset:mean:variance:epsilon:)`, `maxPool2d(2)` and `relu()` give in turn: the same
    /// arithmetic in the same order, γ·((x − μ)·ι) + β with ι = 1/√(σ² + ε), the first maximum of each window
    /// (a NaN never wins), then the ReLU. When the result would be recorded for gradients, it is that
    /// composite, whose gradients are exact to any order.
    public static func batchNormMaxPoolReLU(_ x: Tensor, scale gamma: Tensor, offset beta: Tensor, mean: [Float],
                                            variance: [Float], epsilon: Float = 1e-5) -> Tensor {
        if GradMode.isEnabled && (x.requiresGrad || gamma.requiresGrad || beta.requiresGrad) {
            return batchNorm(x, scale: gamma, offset: beta, mean: mean, variance: variance, epsilon: epsilon)
                .maxPool2d(2).relu()
        }
        precondition(x.rank == 4, "batchNormMaxPoolReLU needs NCHW input, got \(x.shape)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(gamma.shape == [c] && beta.shape == [c] && mean.count == c && variance.count == c,
                     "batch norm: γ, β, mean and variance must have \(c) values")
        let ho = h / 2, wo = w / 2, inner = h * w
        let norm = InferenceNorm(gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon)
        let out = x.withPointer { px in
            makeScalars(n * c * ho * wo) { po in
                ComputeThreads.forEachRange(n * c, work: x.count) { planes in
                    for index in planes {
                        norm.poolPlane(px + index * inner, h: h, w: w, channel: index % c, into: po + index * ho * wo)
                    }
                }
            }
        }
        return Tensor(shape: [n, c, ho, wo], scalars: out)
    }

    /// relu(maxPool2d(batchNorm(conv2d(x)))) with given (running) statistics and 2×2 windows: a whole Conv4
    /// block at evaluation. Value for value `conv2d(x, weight:bias:stride:padding:)` followed by
    /// `batchNormMaxPoolReLU(_:scale:offset:mean:variance:epsilon:)` — the same products and the same
    /// arithmetic — but each image's convolution output is normalised and pooled while it is in cache, so the
    /// largest activation of the network is never written out and read back. When the result would be
    /// recorded for gradients, it is that composite.
    public static func convBatchNormMaxPoolReLU(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                                                padding: Int = 0, scale gamma: Tensor, offset beta: Tensor,
                                                mean: [Float], variance: [Float], epsilon: Float = 1e-5) -> Tensor {
        if GradMode.isEnabled && (x.requiresGrad || weight.requiresGrad || bias?.requiresGrad == true
                                  || gamma.requiresGrad || beta.requiresGrad) {
            return batchNormMaxPoolReLU(conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding),
                                        scale: gamma, offset: beta, mean: mean, variance: variance, epsilon: epsilon)
        }
        let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: stride, pad: padding)
        if let bias { precondition(bias.shape == [g.o], "conv2d: bias shape \(bias.shape), expected [\(g.o)]") }
        precondition(gamma.shape == [g.o] && beta.shape == [g.o] && mean.count == g.o && variance.count == g.o,
                     "batch norm: γ, β, mean and variance must have \(g.o) values")
        let (h, w, ho, wo) = (g.ho, g.wo, g.ho / 2, g.wo / 2)
        let norm = InferenceNorm(gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon)
        let out = makeScalars(g.n * g.o * ho * wo) { po in
            convForward(x, weight, g, bias: bias, output: .perImage({ image, values in
                for ch in 0..<g.o {
                    norm.poolPlane(values + ch * h * w, h: h, w: w, channel: ch,
                                   into: po + (image * g.o + ch) * ho * wo)
                }
            }))
        }
        return Tensor(shape: [g.n, g.o, ho, wo], scalars: out)
    }
}

/// Batch norm with given statistics, per channel: y = ((x − μ)·ι)·γ + β with ι = 1/√(σ² + ε).
private struct InferenceNorm {
    let mean: [Float], invstd: [Float], gamma: [Float], beta: [Float]

    init(gamma: Tensor, beta: Tensor, mean: [Float], variance: [Float], epsilon: Float) {
        self.mean = mean
        self.invstd = variance.map { 1 / ($0 + epsilon).squareRoot() }
        self.gamma = gamma.scalars
        self.beta = beta.scalars
    }

    /// relu(maxPool2d(norm(plane))) of one h × w plane of `channel`, 2×2 windows: the first maximum of each
    /// window (a NaN never wins), then the ReLU.
    @inline(__always)
    func poolPlane(_ p: UnsafePointer<Float>, h: Int, w: Int, channel ch: Int, into o: UnsafeMutablePointer<Float>) {
        let mu = mean[ch], inv = invstd[ch], g = gamma[ch], b = beta[ch]
        let ho = h / 2, wo = w / 2
        for y in 0..<ho {
            let r0 = p + 2 * y * w, r1 = r0 + w, row = o + y * wo
            for xo in 0..<wo {
                let v0 = (r0[2 * xo] - mu) * inv * g + b, v1 = (r0[2 * xo + 1] - mu) * inv * g + b
                let v2 = (r1[2 * xo] - mu) * inv * g + b, v3 = (r1[2 * xo + 1] - mu) * inv * g + b
                var best = v1 > v0 ? v1 : v0
                best = v2 > best ? v2 : best
                best = v3 > best ? v3 : best
                row[xo] = best > 0 ? best : 0
            }
        }
    }
}
