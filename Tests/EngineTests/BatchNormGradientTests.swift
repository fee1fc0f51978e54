import XCTest
@testable import Engine

/// Batch norm's recorded gradient (what a gradient taken with `createGraph` records for it: MAML's inner loop)
/// and the rules that differentiate it (batch norm's second order: MAML's meta-gradient). The other checks of
/// the second order (`SecondOrderGradientTests.testBatchNormSecondOrder`, the fused blocks', MAML's meta-gradient
/// against PyTorch) go through it too.
final class BatchNormGradientTests: XCTestCase {
    /// Part `part` (0: dx, 1: dγ, 2: dβ) of the recorded gradient at (g, x, γ) = `t`, with x's batch statistics
    /// made as batch norm makes them.
    static func recorded(_ t: [Tensor], part: Int) -> Tensor {
        let (g, x, gamma) = (t[0], t[1], t[2])
        let (n, c, inner) = (x.shape[0], x.shape[1], x.rank == 4 ? x.shape[2] * x.shape[3] : 1)
        let stats = x.withPointer { batchMoments($0, n: n, c: c, inner: inner, epsilon: 1e-5) }
        return Tensor.batchNormGradientGraph(g, x, gamma, mean: stats.mean, invstd: stats.invstd, epsilon: 1e-5)[part]!
    }

    /// (g, x, γ) for an input of `shape` (channels on axis 1).
    static func operands(_ shape: [Int], seed: UInt64) -> [Tensor] {
        var rng = SeededRNG(seed: seed)
        return [rng.tensor(shape, -1, 1), rng.tensor(shape, -2, 2), rng.tensor([shape[1]], 0.5, 1.5)]
    }

    static let shapes = [[3, 4, 5, 3], [6, 3]]

    func testValuesEqualTheComposite() {
        for (k, shape) in Self.shapes.enumerated() {
            let t = Self.operands(shape, seed: 300 + UInt64(k))
            let composite = compositeBatchNormGradient(t[0], t[1], t[2], epsilon: 1e-5)
            for part in 0..<3 {
                let values = Self.recorded(t, part: part).scalars
                XCTAssertEqual(values.count, composite[part].count)
                for (a, b) in zip(values, composite[part].scalars) {
                    XCTAssertEqual(a, b, accuracy: 1e-5 + 1e-5 * abs(b), "shape \(shape) part \(part)")
                }
            }
        }
    }

    /// The rules (a gradient of the gradient without `createGraph`) against central differences of the values.
    func testRulesMatchFiniteDifferences() {
        for (k, shape) in Self.shapes.enumerated() {
            let t = Self.operands(shape, seed: 310 + UInt64(k))
            checkGradients("dx of batch norm \(shape), through its rule", t) { Self.recorded($0, part: 0) }
            checkGradients("dγ of batch norm \(shape), through its rule", t, wrt: [0, 1]) { Self.recorded($0, part: 1) }
            checkGradients("dβ of batch norm \(shape), through its rule", t, wrt: [0]) { Self.recorded($0, part: 2) }
            checkGradients("tanh(dx)·dγ of batch norm \(shape), through the rules", t) {
                Self.recorded($0, part: 0).tanh() * Self.recorded($0, part: 1).reshaped($0[1].channelShape(shape[1]))
            }
        }
    }

    /// The rules give what differentiating the composite gives, for cotangents of all three parts at once.
    func testRulesEqualTheCompositesDerivatives() {
        for (k, shape) in Self.shapes.enumerated() {
            let t = Self.operands(shape, seed: 320 + UInt64(k))
            var rng = SeededRNG(seed: 330 + UInt64(k))
            let cotangents = [rng.tensor(shape), rng.tensor([shape[1]]), rng.tensor([shape[1]])]
            func objective(_ parts: [Tensor]) -> Tensor {
                (parts[0] * cotangents[0]).sum() + (parts[1] * cotangents[1]).sum() + (parts[2] * cotangents[2]).sum()
            }
            let p1 = t.map { $0.asParameter() }
            let fused = gradients(of: objective((0..<3).map { Self.recorded(p1, part: $0) }), wrt: p1)
            let p2 = t.map { $0.asParameter() }
            let composite = gradients(of: objective(compositeBatchNormGradient(p2[0], p2[1], p2[2], epsilon: 1e-5)),
                                      wrt: p2)
            for (name, (a, b)) in zip(["ḡ", "x̄", "γ̄"], zip(fused, composite)) {
                XCTAssertEqual(a.shape, b.shape)
                let scale = b.scalars.map { abs($0) }.max() ?? 0
                XCTAssertGreaterThan(scale, 1e-2, "\(name) \(shape): vacuous")
                for (u, v) in zip(a.scalars, b.scalars) {
                    XCTAssertEqual(u, v, accuracy: 2e-5 * scale + 1e-5 * abs(v), "\(name) \(shape)")
                }
            }
        }
    }

    /// Recorded themselves (a gradient of the gradient with `createGraph`), the rules differentiate the
    /// composite: a third order of batch norm, against differences of second-order gradients.
    func testRecordedRulesThirdOrder() {
        for (k, shape) in Self.shapes.enumerated() {
            let t = Self.operands(shape, seed: 340 + UInt64(k))
            checkHessianVectorProduct("tanh(dx) of batch norm \(shape)", t) { Self.recorded($0, part: 0).tanh() }
            checkHessianVectorProduct("tanh(dγ) of batch norm \(shape)", t, wrt: [0, 1]) {
                Self.recorded($0, part: 1).tanh()
            }
        }
    }
}

/// Batch norm's gradient [dx, dγ, dβ] composed of differentiable elementwise operations and reductions (how the
/// engine recorded it before it had operations of its own): the reference for their values and rules.
func compositeBatchNormGradient(_ g: Tensor, _ x: Tensor, _ gamma: Tensor, epsilon: Float) -> [Tensor] {
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
    return [dx, (g * xhat).sum(axes: axes), g.sum(axes: axes)]
}
