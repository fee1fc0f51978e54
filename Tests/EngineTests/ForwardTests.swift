import XCTest
@testable import Engine

/// Forward values against naive loops written here.
final class ForwardTests: XCTestCase {
    func testConv2dMatchesNaiveLoop() {
        var rng = SeededRNG(seed: 300)
        for trial in 0..<24 {
            let n = 1 + rng.int(2), c = 1 + rng.int(3), o = 1 + rng.int(4)
            let kh = 1 + rng.int(3), kw = 1 + rng.int(3)
            let stride = 1 + rng.int(3), pad = rng.int(3)
            let h = max(kh, 2 + rng.int(6)), w = max(kw, 2 + rng.int(6))
            let x = rng.tensor([n, c, h, w]), weight = rng.tensor([o, c, kh, kw])
            let bias: Tensor? = trial % 2 == 0 ? rng.tensor([o]) : nil
            let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: pad)
            let expected = NaiveConvolution(x, weight, bias, stride: stride, pad: pad)
            let name = "conv x\(x.shape) w\(weight.shape) s\(stride) p\(pad) bias \(bias != nil)"
            XCTAssertEqual(y.shape, expected.shape, name)
            assertClose(y.scalars, expected.y, name)
        }
    }

    func testMaxPoolMatchesNaiveLoop() {
        var rng = SeededRNG(seed: 301)
        for (shape, k) in [([2, 3, 4, 6], 2), ([1, 2, 5, 7], 2), ([1, 1, 7, 6], 3), ([2, 1, 3, 3], 1)] as [([Int], Int)] {
            let x = rng.tensor(shape)
            let y = x.maxPool2d(k)
            let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
            var expected: [Double] = []
            for plane in 0..<(n * c) {
                for yy in 0..<(h / k) {
                    for xx in 0..<(w / k) {
                        var m = -Double.infinity
                        for i in 0..<k {
                            for j in 0..<k { m = max(m, Double(x.scalars[plane * h * w + (yy * k + i) * w + xx * k + j])) }
                        }
                        expected.append(m)
                    }
                }
            }
            XCTAssertEqual(y.shape, [n, c, h / k, w / k])
            assertClose(y.scalars, expected, rtol: 0, atol: 0, "maxPool \(shape) k\(k)")
        }
    }

    func testBatchNormNormalizesPerChannel() {
        var rng = SeededRNG(seed: 302)
        for shape in [[6, 4], [3, 2, 4, 5]] {
            let x = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in 3 + 2 * rng.normal() })
            let c = shape[1]
            let r = Tensor.batchNorm(x, scale: Tensor.ones([c]), offset: Tensor.zeros([c]))
            let inner = shape.count == 4 ? shape[2] * shape[3] : 1
            for ch in 0..<c {
                var values: [Double] = [], raw: [Double] = []
                for b in 0..<shape[0] {
                    for k in 0..<inner {
                        values.append(Double(r.output.scalars[(b * c + ch) * inner + k]))
                        raw.append(Double(x.scalars[(b * c + ch) * inner + k]))
                    }
                }
                let m = values.reduce(0, +) / Double(values.count)
                let v = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count)
                XCTAssertEqual(m, 0, accuracy: 1e-5, "channel \(ch) mean")
                XCTAssertEqual(v, 1, accuracy: 1e-3, "channel \(ch) variance")  // ε = 1e-5 shrinks it slightly
                let rm = raw.reduce(0, +) / Double(raw.count)
                let rv = raw.map { ($0 - rm) * ($0 - rm) }.reduce(0, +) / Double(raw.count)
                XCTAssertEqual(Double(r.mean[ch]), rm, accuracy: 1e-4)
                XCTAssertEqual(Double(r.variance[ch]), rv, accuracy: 1e-3 * rv)
            }
            // Scale and offset apply per channel.
            let gamma = rng.tensor([c], 0.5, 2), beta = rng.tensor([c])
            let y = Tensor.batchNorm(x, scale: gamma, offset: beta).output
            let expected = r.output.scalars.enumerated().map { i, v -> Double in
                let ch = (i / inner) % c
                return Double(v) * Double(gamma.scalars[ch]) + Double(beta.scalars[ch])
            }
            assertClose(y.scalars, expected, rtol: 1e-5, atol: 1e-5, "batchNorm γ, β")
        }
    }

    func testMatmulMatchesNaiveLoop() {
        var rng = SeededRNG(seed: 303)
        let (m, k, n) = (5, 7, 3)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rng.tensor(ta ? [k, m] : [m, k]), b = rng.tensor(tb ? [n, k] : [k, n])
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                var expected = [Double](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        for l in 0..<k {
                            let av = ta ? a.scalars[l * m + i] : a.scalars[i * k + l]
                            let bv = tb ? b.scalars[j * k + l] : b.scalars[l * n + j]
                            expected[i * n + j] += Double(av) * Double(bv)
                        }
                    }
                }
                XCTAssertEqual(c.shape, [m, n])
                assertClose(c.scalars, expected, "matmul tA \(ta) tB \(tb)")
            }
        }
        // linear = x·Wᵀ + b
        let x = rng.tensor([4, 3]), w = rng.tensor([2, 3]), bias = rng.tensor([2])
        let y = linear(x, weight: w, bias: bias)
        var expected: [Double] = []
        for i in 0..<4 {
            for o in 0..<2 {
                expected.append((0..<3).reduce(Double(bias.scalars[o])) { $0 + Double(x.scalars[i * 3 + $1]) * Double(w.scalars[o * 3 + $1]) })
            }
        }
        assertClose(y.scalars, expected, "linear")
    }

    func testLogSoftmaxAndCrossEntropy() {
        var rng = SeededRNG(seed: 304)
        let x = rng.tensor([4, 6], -5, 5)
        let y = x.logSoftmax()
        for r in 0..<4 {
            let s = (0..<6).reduce(0.0) { $0 + Foundation.exp(Double(y.scalars[r * 6 + $1])) }
            XCTAssertEqual(s, 1, accuracy: 1e-5)
            let lse = Foundation.log((0..<6).reduce(0.0) { $0 + Foundation.exp(Double(x.scalars[r * 6 + $1])) })
            for j in 0..<6 { XCTAssertEqual(Double(y.scalars[r * 6 + j]), Double(x.scalars[r * 6 + j]) - lse, accuracy: 1e-5) }
        }
        // Large logits do not overflow.
        let big = Tensor(shape: [1, 3], scalars: [1000, 999, -1000]).logSoftmax()
        XCTAssertTrue(big.scalars.allSatisfy { $0.isFinite })
        // (lse ≈ 1000.31 is rounded to float32, whose spacing there is 6e-5.)
        XCTAssertEqual(Double(big.scalars[0]), -Foundation.log(1 + Foundation.exp(-1.0)), accuracy: 1e-4)
        let labels = [5, 0, 2, 2]
        let ce = Tensor.crossEntropy(logits: x, labels: labels)
        let expected = -labels.enumerated().reduce(0.0) { $0 + Double(y.scalars[$1.offset * 6 + $1.element]) } / 4
        XCTAssertEqual(Double(ce.item), expected, accuracy: 1e-5)
        XCTAssertEqual(ce.shape, [])
    }

    func testBroadcastingMatchesNaiveLoops() {
        var rng = SeededRNG(seed: 305)
        let pairs: [([Int], [Int])] = [([3, 4], [4]), ([2, 3, 4], [3, 1]), ([4, 1], [1, 3]), ([2, 3, 4, 5], [1, 3, 1, 1]),
                                       ([1, 3, 1, 1], [2, 3, 4, 5]), ([], [2, 3]), ([2, 3], []), ([2, 1, 4], [1, 3, 1]),
                                       ([5, 1, 3, 1], [2, 1, 4]), ([2, 3], [2, 3])]
        for (sa, sb) in pairs {
            let a = rng.tensor(sa), b = rng.awayFromZero(sb, minAbs: 0.5, maxAbs: 2)
            let shape = broadcastShape(sa, sb)!
            let count = shape.reduce(1, *)
            func value(_ t: Tensor, _ index: [Int]) -> Double {
                let offset = shape.count - t.rank
                var flat = 0
                for d in 0..<t.rank { flat = flat * t.shape[d] + (t.shape[d] == 1 ? 0 : index[d + offset]) }
                return Double(t.scalars[flat])
            }
            var sum: [Double] = [], diff: [Double] = [], prod: [Double] = [], quot: [Double] = []
            for i in 0..<count {
                let idx = multiIndex(i, shape)
                let u = value(a, idx), v = value(b, idx)
                sum.append(u + v); diff.append(u - v); prod.append(u * v); quot.append(u / v)
            }
            let name = "\(sa) with \(sb)"
            XCTAssertEqual((a + b).shape, shape, name)
            assertClose((a + b).scalars, sum, name + " +")
            assertClose((a - b).scalars, diff, name + " −")
            assertClose((a * b).scalars, prod, name + " ×")
            assertClose((a / b).scalars, quot, name + " ÷")
            // sum(toShape:) is the adjoint of broadcasting: ⟨expand(a), g⟩ = ⟨a, sum(g)⟩.
            let g = rng.tensor(shape)
            let back = g.sum(toShape: sa)
            var expectedBack = [Double](repeating: 0, count: a.count)
            for i in 0..<count {
                let idx = multiIndex(i, shape), offset = shape.count - sa.count
                var flat = 0
                for d in 0..<sa.count { flat = flat * sa[d] + (sa[d] == 1 ? 0 : idx[d + offset]) }
                expectedBack[flat] += Double(g.scalars[i])
            }
            assertClose(back.scalars, expectedBack, name + " sum(toShape:)")
            assertClose(a.expand(to: shape).scalars, (0..<count).map { value(a, multiIndex($0, shape)) }, rtol: 0, atol: 0, name + " expand")
        }
    }

    func testPermuteMatchesNaiveIndexMapping() {
        var rng = SeededRNG(seed: 306)
        for (shape, order) in [([3, 5], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([2, 3, 4], [1, 2, 0]), ([2, 3, 4, 5], [0, 2, 3, 1]),
                               ([2, 3, 4, 5], [3, 1, 0, 2]), ([40, 37], [1, 0]), ([2, 1, 3], [2, 1, 0])] as [([Int], [Int])] {
            let x = rng.tensor(shape)
            let y = x.permuted(order)
            let outShape = order.map { shape[$0] }
            XCTAssertEqual(y.shape, outShape)
            let strides = contiguousStrides(shape)
            var expected: [Double] = []
            for i in 0..<x.count {
                let idx = multiIndex(i, outShape)
                var flat = 0
                for d in 0..<order.count { flat += idx[d] * strides[order[d]] }
                expected.append(Double(x.scalars[flat]))
            }
            assertClose(y.scalars, expected, rtol: 0, atol: 0, "permute \(shape) \(order)")
        }
    }

    func testShapeOps() {
        let x = Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(x.slice(axis: 1, 1..<3).scalars, [1, 2, 4, 5])
        XCTAssertEqual(Tensor.concat([x, x.scaled(by: 10)], axis: 1).scalars, [0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50])
        XCTAssertEqual(Tensor.stack([x, x.scaled(by: 10)], axis: 2).shape, [2, 3, 2])
        XCTAssertEqual(Tensor.stack([x, x.scaled(by: 10)], axis: 2).scalars, [0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50])
        XCTAssertEqual(x.gatherRows([1, 1, 0]).scalars, [3, 4, 5, 3, 4, 5, 0, 1, 2])
        XCTAssertEqual(x.scatterAddRows([1, 1], rows: 3).scalars, [0, 0, 0, 3, 5, 7, 0, 0, 0])
        XCTAssertEqual(x.max(axis: 1).scalars, [2, 5])
        XCTAssertEqual(x.max(axis: 0, keepDims: true).shape, [1, 3])
        XCTAssertEqual(x.sum(axes: [0]).scalars, [3, 5, 7])
        XCTAssertEqual(x.mean(axes: [1]).scalars, [1, 4])
        XCTAssertEqual(x.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(Tensor.pairwiseSquaredDistances(x, x).scalars, [0, 27, 27, 0])
    }
}
