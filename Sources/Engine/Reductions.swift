/// Vectorised sums over contiguous floats. Float additions are not reassociated by the compiler, so a
/// plain loop runs as one serial chain; these keep 32 partial sums in SIMD registers instead. The order
/// is fixed, so results are deterministic.

@inline(__always)
private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// Σ p[i].
@inline(__always)
func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a = SIMD16<Float>(), b = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        a += load16(p + i); b += load16(p + i + 16)
        i += 32
    }
    var s = (a + b).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ (p[i] − mu)².
@inline(__always)
func vectorSumSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, mean mu: Float) -> Float {
    var a = SIMD16<Float>(), b = SIMD16<Float>()
    let m = SIMD16<Float>(repeating: mu)
    var i = 0
    while i + 32 <= n {
        let d1 = load16(p + i) - m, d2 = load16(p + i + 16) - m
        a += d1 * d1; b += d2 * d2
        i += 32
    }
    var s = (a + b).sum()
    while i < n { let d = p[i] - mu; s += d * d; i += 1 }
    return s
}

/// (Σ g[i], Σ g[i]·(x[i] − mu)).
@inline(__always)
func vectorSumAndCenteredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mean mu: Float) -> (Float, Float) {
    var s1 = SIMD16<Float>(), s2 = SIMD16<Float>()
    let m = SIMD16<Float>(repeating: mu)
    var i = 0
    while i + 16 <= n {
        let gv = load16(g + i)
        s1 += gv
        s2 += gv * (load16(x + i) - m)
        i += 16
    }
    var a = s1.sum(), b = s2.sum()
    while i < n { a += g[i]; b += g[i] * (x[i] - mu); i += 1 }
    return (a, b)
}

/// (Σ a[i], Σ a[i]·(x[i] − mu), Σ a[i]·g[i]): the sums of batch norm's second-order rule.
@inline(__always)
func vectorSumCenteredDotAndDot(_ a: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ n: Int,
                                mean mu: Float) -> (Float, Float, Float) {
    var s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    let m = SIMD16<Float>(repeating: mu)
    var i = 0
    while i + 16 <= n {
        let av = load16(a + i)
        s1 += av
        s2 += av * (load16(x + i) - m)
        s3 += av * load16(g + i)
        i += 16
    }
    var t1 = s1.sum(), t2 = s2.sum(), t3 = s3.sum()
    while i < n { t1 += a[i]; t2 += a[i] * (x[i] - mu); t3 += a[i] * g[i]; i += 1 }
    return (t1, t2, t3)
}

/// The first pass of `batchMoments` on one plane of `inner` values.
@inline(__always)
func planeSum(_ p: UnsafePointer<Float>, _ inner: Int) -> Float { vectorSum(p, inner) }

/// Per-channel mean, biased variance and 1/√(variance + ε) of an [n, c, inner] tensor: two passes, each
/// plane's sum in float, then each channel's in double, image after image. The planes are visited in memory
/// order (in parallel for large tensors), so the passes stream through x rather than stride across it.
/// Batch norm and the fused block both use it, so their statistics agree exactly. `planeSums`, when given, are
/// the first pass's sums already made (`planeSum`, for every plane in memory order: the training block makes
/// them as its convolution's output comes out).
func batchMoments(_ px: UnsafePointer<Float>, n: Int, c: Int, inner: Int, epsilon: Float, planeSums given: [Float]? = nil)
    -> (mean: [Float], variance: [Float], invstd: [Float]) {
    let m = Double(n * inner)
    if let given { precondition(given.count == n * c, "batchMoments: \(given.count) plane sums for \(n * c) planes") }
    let planeSums = given ?? makeScalars(n * c) { ps in
        ComputeThreads.forEachRange(n * c, work: n * c * inner) { planes in
            for index in planes { ps[index] = planeSum(px + index * inner, inner) }
        }
    }
    var mean = [Float](repeating: 0, count: c), variance = mean, invstd = mean
    for ch in 0..<c {
        var s = 0.0
        for b in 0..<n { s += Double(planeSums[b * c + ch]) }
        mean[ch] = Float(s / m)
    }
    let planeDeviations = makeScalars(n * c) { ps in
        ComputeThreads.forEachRange(n * c, work: n * c * inner) { planes in
            for index in planes { ps[index] = vectorSumSquaredDeviations(px + index * inner, inner, mean: mean[index % c]) }
        }
    }
    for ch in 0..<c {
        var v = 0.0
        for b in 0..<n { v += Double(planeDeviations[b * c + ch]) }
        variance[ch] = Float(v / m)
        invstd[ch] = 1 / (variance[ch] + epsilon).squareRoot()
    }
    return (mean, variance, invstd)
}
