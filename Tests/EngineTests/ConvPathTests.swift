import XCTest
@testable import Engine

/// The convolution's code paths that the small finite-difference cases do not reach: output planes large
/// enough for one product per image, many chunks of images (several partial weight gradients), and the
/// same results on one thread and two. Values and all three gradients against Double loops written here.
final class ConvPathTests: XCTestCase {
    struct Case { let x: [Int]; let w: [Int]; let stride: Int; let pad: Int; let why: String }

    static let cases = [
        Case(x: [3, 2, 12, 12], w: [4, 2, 3, 3], stride: 1, pad: 1, why: "same conv, 144-pixel planes, one product per image"),
        Case(x: [2, 3, 14, 13], w: [5, 3, 3, 2], stride: 1, pad: 0, why: "general im2col, 144-pixel planes"),
        Case(x: [100, 32, 12, 12], w: [4, 32, 3, 3], stride: 1, pad: 1, why: "9 chunks of images, per-image products"),
        Case(x: [130, 64, 8, 8], w: [3, 64, 3, 3], stride: 1, pad: 1, why: "10 chunks of images, one product per chunk"),
        Case(x: [40, 8, 17, 17], w: [4, 8, 3, 3], stride: 2, pad: 1, why: "strided, several images per chunk"),
        Case(x: [80, 1, 28, 28], w: [64, 1, 3, 3], stride: 1, pad: 1,
             why: "Conv4's first layer on a 5w1s q15 episode: 8 even chunks forward, the budget's 74 + 6 summing"),
        Case(x: [3, 5, 7, 9], w: [6, 5, 3, 3], stride: 1, pad: 1, why: "odd plane sides (Winograd's half tiles)"),
        Case(x: [2, 4, 21, 37], w: [3, 4, 3, 3], stride: 1, pad: 1, why: "19 tiles a row (Winograd's vectors of 8 tiles)"),
        Case(x: [80, 64, 3, 3], w: [64, 64, 3, 3], stride: 1, pad: 1,
             why: "Conv4's 3 × 3 layer on a 5w1s q15 episode: one chunk, one gathered product"),
        Case(x: [60, 32, 9, 9], w: [8, 32, 3, 3], stride: 2, pad: 1, why: "strided, one chunk of 60 images"),
    ]

    func testLargePlanesAndManyChunksMatchDoubleLoops() { Self.checkAgainstDoubleLoops() }

    func testSameBitsOnOneAndTwoThreads() { Self.checkSameBitsOnAnyThreadCount() }

    /// How images are split into chunks: per-image products split evenly (equal shares for 2, 4 or 8 threads),
    /// gathered products and the weight gradient's sums keep the column budget's split (their values depend on
    /// it); every split covers the images once, in order, within the budget.
    func testChunksSplitEvenlyOnlyWhereValuesDoNotDependOnTheSplit() {
        func geometry(_ n: Int, _ c: Int, _ side: Int) -> ConvGeometry {
            ConvGeometry(input: [n, c, side, side], weight: [64, c, 3, 3], stride: 1, pad: 1)
        }
        func sizes(_ chunks: ConvChunks) -> [Int] { (0..<chunks.count).map { chunks.range($0).count } }
        // Conv4 at 80 images: 28×28 planes (one product per image) and 7×7 (gathered).
        XCTAssertEqual(sizes(ConvChunks(geometry(80, 1, 28))), Array(repeating: 10, count: 8))
        XCTAssertEqual(sizes(ConvChunks(geometry(80, 1, 28), summing: true)), [74, 6])
        // 14×14: the budget's 20 chunks of 4 become 24 (a multiple of 8) of 3 or 4 images.
        XCTAssertEqual(Set(sizes(ConvChunks(geometry(80, 64, 14)))), [3, 4])
        XCTAssertEqual(ConvChunks(geometry(80, 64, 14)).count, 24)
        XCTAssertEqual(sizes(ConvChunks(geometry(80, 64, 14), summing: true)), Array(repeating: 4, count: 20))
        XCTAssertEqual(sizes(ConvChunks(geometry(80, 64, 7))), [18, 18, 18, 18, 8])
        XCTAssertEqual(sizes(ConvChunks(geometry(80, 64, 7), summing: true)), [18, 18, 18, 18, 8])
        // A small convolution (one thread either way) keeps the budget's chunks.
        XCTAssertEqual(sizes(ConvChunks(geometry(5, 1, 28))), [5])
        for n in [0, 1, 2, 7, 9, 75, 80, 130, 600] {
            for (c, side) in [(1, 28), (64, 14), (64, 7), (64, 3), (3, 84), (64, 42)] {
                for summing in [false, true] {
                    let g = geometry(n, c, side), chunks = ConvChunks(g, summing: summing)
                    var next = 0
                    for index in 0..<chunks.count {
                        let (first, count) = chunks.range(index)
                        XCTAssertEqual(first, next, "n \(n), \(c)×\(side)²: chunk \(index) starts at \(first)")
                        XCTAssertTrue(count >= 1 && count <= chunks.largest, "n \(n), \(c)×\(side)²: chunk \(index) has \(count)")
                        next = first + count
                    }
                    XCTAssertEqual(next, n, "n \(n), \(c)×\(side)², summing \(summing): the chunks cover \(next) images")
                    XCTAssertTrue(chunks.largest == 1 || chunks.largest * g.colRows * g.ho * g.wo <= 1 << 19,
                                  "n \(n), \(c)×\(side)²: \(chunks.largest) images exceed the column budget")
                }
            }
        }
    }

    /// Values and all three gradients of every case against `NaiveConvolution` (whichever backend is in use).
    static func checkAgainstDoubleLoops() {
        var rng = SeededRNG(seed: 310)
        for c in Self.cases {
            let x = rng.tensor(c.x).asParameter(), w = rng.tensor(c.w).asParameter(), b = rng.tensor([c.w[0]]).asParameter()
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.pad)
            let r = rng.tensor(y.shape)
            let expected = NaiveConvolution(x, w, b, upstream: r, stride: c.stride, pad: c.pad)
            let name = "conv \(c.x) \(c.w) s\(c.stride) p\(c.pad) (\(c.why))"
            assertClose(y.scalars, expected.y, rtol: 1e-4, atol: 1e-4, name + " values")
            // First order: weight and bias gradients from one pass.
            let g = gradients(of: (y * r).sum(), wrt: [x, w, b])
            assertClose(g[0].scalars, expected.dx, rtol: 1e-4, atol: 1e-4, name + " ∂x")
            assertClose(g[1].scalars, expected.dw, rtol: 1e-4, atol: 1e-3, name + " ∂w")
            assertClose(g[2].scalars, expected.db, rtol: 1e-4, atol: 1e-3, name + " ∂b")
            // With createGraph the gradients are operations of their own (and the bias gradient a sum).
            let gg = gradients(of: (Tensor.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.pad) * r).sum(),
                               wrt: [x, w, b], createGraph: true)
            assertClose(gg[0].scalars, expected.dx, rtol: 1e-4, atol: 1e-4, name + " ∂x (createGraph)")
            assertClose(gg[1].scalars, expected.dw, rtol: 1e-4, atol: 1e-3, name + " ∂w (createGraph)")
            assertClose(gg[2].scalars, expected.db, rtol: 1e-4, atol: 1e-3, name + " ∂b (createGraph)")
        }
    }

    /// The same bits for values and gradients on one, two and three threads.
    static func checkSameBitsOnAnyThreadCount() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        var rng = SeededRNG(seed: 311)
        for c in Self.cases {
            let x = rng.tensor(c.x).asParameter(), w = rng.tensor(c.w).asParameter(), b = rng.tensor([c.w[0]]).asParameter()
            let r = rng.tensor(Tensor.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.pad).shape)
            func run(threads: Int) -> [[UInt32]] {
                ComputeThreads.set(threads)
                let y = Tensor.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.pad)
                return ([y] + gradients(of: (y * r).sum(), wrt: [x, w, b])).map { $0.scalars.map(\.bitPattern) }
            }
            let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
            for (k, label) in ["values", "∂x", "∂w", "∂b"].enumerated() {
                XCTAssertEqual(one[k], two[k], "conv \(c.x) \(c.w) (\(c.why)): \(label) differ between 1 and 2 threads")
                XCTAssertEqual(one[k], three[k], "conv \(c.x) \(c.w) (\(c.why)): \(label) differ between 1 and 3 threads")
            }
        }
    }
}

/// A direct convolution (cross-correlation) in Double loops: the values y = conv(x, w) + b and, given an
/// upstream gradient r, the gradients of Σ r·y with respect to x, w and b.
struct NaiveConvolution {
    var shape: [Int]
    var y: [Double]
    var dx: [Double], dw: [Double], db: [Double]

    init(_ x: Tensor, _ w: Tensor, _ b: Tensor?, upstream r: Tensor? = nil, stride s: Int, pad p: Int) {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * p - kh) / s + 1, wo = (wd + 2 * p - kw) / s + 1
        shape = [n, o, ho, wo]
        y = [Double](repeating: 0, count: n * o * ho * wo)
        dx = [Double](repeating: 0, count: x.count)
        dw = [Double](repeating: 0, count: w.count)
        db = [Double](repeating: 0, count: o)
        let xs = x.scalars.map(Double.init), ws = w.scalars.map(Double.init)
        let rs = r?.scalars.map(Double.init) ?? []
        for bi in 0..<n {
            for oc in 0..<o {
                for yy in 0..<ho {
                    for xx in 0..<wo {
                        let out = ((bi * o + oc) * ho + yy) * wo + xx
                        var sum = b.map { Double($0.scalars[oc]) } ?? 0
                        let ro = rs.isEmpty ? 0 : rs[out]
                        db[oc] += ro
                        for ic in 0..<c {
                            for i in 0..<kh {
                                let iy = yy * s - p + i
                                if iy < 0 || iy >= h { continue }
                                for j in 0..<kw {
                                    let ix = xx * s - p + j
                                    if ix < 0 || ix >= wd { continue }
                                    let xi = ((bi * c + ic) * h + iy) * wd + ix, wi = ((oc * c + ic) * kh + i) * kw + j
                                    sum += xs[xi] * ws[wi]
                                    dx[xi] += ro * ws[wi]
                                    dw[wi] += ro * xs[xi]
                                }
                            }
                        }
                        y[out] = sum
                    }
                }
            }
        }
    }
}
