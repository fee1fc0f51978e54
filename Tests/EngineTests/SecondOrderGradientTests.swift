import XCTest
@testable import Engine

/// Hessian-vector products through `createGraph: true` against differences of first-order gradients.
final class SecondOrderGradientTests: XCTestCase {
    /// The HVP checker must reject a backward rule whose own derivative is wrong, even when the first-order
    /// values are right (a rule that is not recorded differentiably).
    func testCheckerDetectsNonDifferentiableBackward() {
        var rng = SeededRNG(seed: 100)
        let x = rng.tensor([3, 4])
        // y = x², with a backward computing 2·x·g as constants: right values, no second-order information.
        func square(_ t: Tensor) -> Tensor {
            record("constSquare", t.shape, t.scalars.map { $0 * $0 }, inputs: [t]) { g, _ in
                [Tensor(shape: t.shape, scalars: zip(g.scalars, t.scalars).map { 2 * $0 * $1 })]
            }
        }
        XCTAssertTrue(gradientComparison([x]) { square($0[0]) }.passed)
        let (hvp, firstOrder) = hvpComparison([x]) { square($0[0]) }
        XCTAssertTrue(firstOrder.passed)
        XCTAssertFalse(hvp.passed)
        // The same function through engine operations passes.
        checkHessianVectorProduct("x²", [x]) { $0[0] * $0[0] }
    }

    func testElementwiseSecondOrder() {
        var rng = SeededRNG(seed: 101)
        let x = rng.tensor([3, 4], -1.5, 1.5), y = rng.tensor([3, 4], -1, 1)
        let positive = rng.tensor([3, 4], 0.5, 2)
        checkHessianVectorProduct("exp", [x]) { $0[0].exp() }
        checkHessianVectorProduct("log", [positive]) { $0[0].log() }
        checkHessianVectorProduct("sqrt", [positive]) { $0[0].sqrt() }
        checkHessianVectorProduct("pow(-0.5)", [positive]) { $0[0].pow(-0.5) }
        checkHessianVectorProduct("pow(3)", [x]) { $0[0].pow(3) }
        checkHessianVectorProduct("sigmoid", [x]) { $0[0].sigmoid() }
        checkHessianVectorProduct("tanh", [x]) { $0[0].tanh() }
        checkHessianVectorProduct("mul", [x, y]) { $0[0] * $0[1] }
        checkHessianVectorProduct("div", [x, rng.awayFromZero([4], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkHessianVectorProduct("broadcast mul [2,3,4]*[3,1]", [rng.tensor([2, 3, 4]), rng.tensor([3, 1])]) { $0[0] * $0[1] }
        checkHessianVectorProduct("sum/expand/mean", [x]) {
            ($0[0].sum(axes: [1], keepDims: true).expand(to: [3, 4]) * $0[0]).mean(axes: [0])
        }
        checkHessianVectorProduct("permute/slice/concat/gather", [rng.tensor([2, 3, 4])]) {
            let t = $0[0].permuted([2, 0, 1])  // [4, 2, 3]
            let s = Tensor.concat([t.slice(axis: 0, 1..<3), t.gatherRows([0, 0, 3])], axis: 0)
            return (s * t.reshaped([4, 6]).reshaped([4, 2, 3]).slice(axis: 0, 0..<1)).tanh()
        }
        checkHessianVectorProduct("max(axis:)", [rng.distinct([3, 4])]) { $0[0].max(axis: 1).squared() }
        checkHessianVectorProduct("stack", [x, y]) { Tensor.stack([$0[0], $0[1]], axis: 1).squared() }
    }

    func testReLUSecondOrder() {
        var rng = SeededRNG(seed: 102)
        let x = rng.distinct([4, 5], spacing: 0.05)
        checkHessianVectorProduct("relu²", [x]) { $0[0].relu().squared() }
        checkHessianVectorProduct("relu·x", [x]) { $0[0].relu() * $0[0] }
        checkHessianVectorProduct("tanh(relu)", [x]) { $0[0].relu().tanh() }
        // Pure ReLU: the Hessian is zero, and the product must be too.
        checkHessianVectorProduct("relu (zero Hessian)", [x], allowZero: true) { $0[0].relu() }
    }

    func testMaxPoolSecondOrder() {
        var rng = SeededRNG(seed: 103)
        checkHessianVectorProduct("maxPool²", [rng.distinct([2, 2, 4, 6])]) { $0[0].maxPool2d(2).squared() }
        checkHessianVectorProduct("tanh(maxPool 3)", [rng.distinct([1, 2, 6, 7])]) { $0[0].maxPool2d(3).tanh() }
    }

    func testLinearAndMatmulSecondOrder() {
        var rng = SeededRNG(seed: 104)
        let x = rng.tensor([5, 4]), w = rng.tensor([3, 4]), b = rng.tensor([3])
        checkHessianVectorProduct("tanh(linear) wrt x, W, b", [x, w, b]) { linear($0[0], weight: $0[1], bias: $0[2]).tanh() }
        checkHessianVectorProduct("tanh(linear) wrt W", [x, w, b], wrt: [1]) { linear($0[0], weight: $0[1], bias: $0[2]).tanh() }
        checkHessianVectorProduct("linear (bilinear only)", [x, w]) { linear($0[0], weight: $0[1], bias: nil) }
        let (m, k, n) = (3, 4, 2)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rng.tensor(ta ? [k, m] : [m, k]), bb = rng.tensor(tb ? [n, k] : [k, n])
                checkHessianVectorProduct("matmul tA \(ta) tB \(tb)", [a, bb]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb).tanh()
                }
                checkHessianVectorProduct("bilinear matmul tA \(ta) tB \(tb)", [a, bb]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
            }
        }
    }

    func testConv2dSecondOrder() { Self.checkConv2dSecondOrder() }

    /// Hessian-vector products through conv2d against finite differences (whichever backend is in use).
    static func checkConv2dSecondOrder() {
        var rng = SeededRNG(seed: 105)
        struct Case { let x: [Int]; let w: [Int]; let stride: Int; let pad: Int }
        let cases = [
            Case(x: [2, 1, 5, 5], w: [3, 1, 3, 3], stride: 1, pad: 1),
            Case(x: [2, 3, 5, 4], w: [2, 3, 3, 3], stride: 1, pad: 0),
            Case(x: [1, 3, 7, 6], w: [2, 3, 3, 2], stride: 2, pad: 1),
        ]
        for (i, c) in cases.enumerated() {
            let inputs = [rng.tensor(c.x), rng.tensor(c.w, -0.5, 0.5), rng.tensor([c.w[0]])]
            let f: ([Tensor]) -> Tensor = {
                Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: c.stride, padding: c.pad).tanh()
            }
            checkHessianVectorProduct("conv2d case \(i) wrt x, w, b", inputs, f)
            checkHessianVectorProduct("conv2d case \(i) wrt x", inputs, wrt: [0], f)
            checkHessianVectorProduct("conv2d case \(i) wrt w", inputs, wrt: [1], f)
            // Bilinear only (no tanh): the Hessian is the pure cross term between x and w.
            checkHessianVectorProduct("conv2d case \(i) bilinear", inputs, wrt: [0, 1]) {
                Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: c.stride, padding: c.pad)
            }
        }
        // Two stacked convolutions, second order with respect to both weights (as in MAML).
        let x = rng.tensor([2, 2, 6, 6]), w1 = rng.tensor([3, 2, 3, 3], -0.5, 0.5), w2 = rng.tensor([2, 3, 3, 3], -0.5, 0.5)
        checkHessianVectorProduct("conv∘tanh∘conv wrt w1, w2", [x, w1, w2], wrt: [1, 2]) {
            Tensor.conv2d(Tensor.conv2d($0[0], weight: $0[1], padding: 1).tanh(), weight: $0[2], stride: 2, padding: 1).tanh()
        }
        checkHessianVectorProduct("conv∘conv (no nonlinearity) wrt x, w1, w2", [x, w1, w2]) {
            Tensor.conv2d(Tensor.conv2d($0[0], weight: $0[1], padding: 1), weight: $0[2], stride: 2, padding: 1)
        }
    }

    func testBatchNormSecondOrder() {
        var rng = SeededRNG(seed: 106)
        let x2 = rng.tensor([5, 3], -2, 2), g2 = rng.tensor([3], 0.5, 1.5), b2 = rng.tensor([3])
        checkHessianVectorProduct("batchNorm 2-D", [x2, g2, b2]) { Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output }
        checkHessianVectorProduct("tanh(batchNorm 2-D)", [x2, g2, b2]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output.tanh()
        }
        let x4 = rng.tensor([2, 3, 3, 2], -2, 2), g4 = rng.tensor([3], 0.5, 1.5), b4 = rng.tensor([3])
        checkHessianVectorProduct("batchNorm 4-D", [x4, g4, b4]) { Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output }
        checkHessianVectorProduct("tanh(batchNorm 4-D)", [x4, g4, b4]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output.tanh()
        }
        checkHessianVectorProduct("tanh(batchNorm 4-D) wrt x", [x4, g4, b4], wrt: [0]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output.tanh()
        }
    }

    func testLossesSecondOrder() {
        var rng = SeededRNG(seed: 107)
        let labels = [2, 0, 1, 1, 3]
        checkHessianVectorProduct("crossEntropy", [rng.tensor([5, 4], -2, 2)]) { Tensor.crossEntropy(logits: $0[0], labels: labels) }
        checkHessianVectorProduct("logSoftmax", [rng.tensor([3, 4], -2, 2)]) { $0[0].logSoftmax() }
        checkHessianVectorProduct("crossEntropy(linear)", [rng.tensor([5, 3]), rng.tensor([4, 3]), rng.tensor([4])]) {
            Tensor.crossEntropy(logits: linear($0[0], weight: $0[1], bias: $0[2]), labels: labels)
        }
        checkHessianVectorProduct("crossEntropy(−pairwiseSquaredDistances)", [rng.tensor([5, 3]), rng.tensor([4, 3])]) {
            Tensor.crossEntropy(logits: -Tensor.pairwiseSquaredDistances($0[0], $0[1]), labels: labels)
        }
        checkHessianVectorProduct("crossEntropy(cosineSimilarity)", [rng.tensor([5, 3]), rng.tensor([4, 3])]) {
            Tensor.crossEntropy(logits: Tensor.cosineSimilarity($0[0], $0[1]).scaled(by: 5), labels: labels)
        }
    }

    /// The whole conv → batch norm → ReLU → max-pool → linear → cross-entropy network, second order with respect
    /// to every parameter at once. The kink pattern is verified unchanged along ±εv, so the differences are exact.
    func testConvNetCompositionSecondOrder() { Self.checkConvNetCompositionSecondOrder() }

    static func checkConvNetCompositionSecondOrder() {
        let net = ConvNetFixture(seed: 108)
        let f: ([Tensor]) -> Tensor = { p in
            Tensor.crossEntropy(logits: ConvNetFixture.forward(p, net.supportX).logits, labels: net.supportY)
        }
        // Every parameter moves at once, so the step is smaller than elsewhere to stay inside one smooth piece.
        let eps = 2e-4
        let base = ConvNetFixture.forward(net.parameters, net.supportX).pattern
        // The first of a few fixed random directions along which no ReLU input changes sign and no max-pool
        // maximum moves within ±ε (checked, not assumed).
        var direction: [Tensor]? = nil
        for attempt in 0..<20 where direction == nil {
            var rng = SeededRNG(seed: 1000 + UInt64(attempt))
            let v: [Tensor] = net.parameters.map { rng.tensor($0.shape, -1, 1) }
            let plus: [Tensor] = displaced(net.parameters, v, eps)
            let minus: [Tensor] = displaced(net.parameters, v, -eps)
            let kinkFree = ConvNetFixture.forward(plus, net.supportX).pattern == base
                && ConvNetFixture.forward(minus, net.supportX).pattern == base
            if kinkFree { direction = v }
        }
        guard let v = direction else { return XCTFail("no kink-free direction found") }
        let (hvp, firstOrder) = hvpComparison(net.parameters, seed: 11, eps: eps, directions: v, f)
        firstOrder.assertPassed("conv net (createGraph first-order values)", file: #filePath, line: #line)
        hvp.assertPassed("conv net Hessian-vector product", file: #filePath, line: #line)
        XCTAssertGreaterThan(hvp.maxAbsNumeric, 1e-2)
    }
}
