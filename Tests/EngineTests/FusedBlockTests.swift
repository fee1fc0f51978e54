import XCTest
@testable import Engine

/// The fused batch norm → max-pool → ReLU block against the same three operations applied in turn.
final class FusedBlockTests: XCTestCase {
    func unfused(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor) -> Tensor {
        Tensor.batchNorm(x, scale: gamma, offset: beta).output.relu().maxPool2d(2)
    }

    func fused(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor) -> Tensor {
        Tensor.batchNormMaxPoolReLU(x, scale: gamma, offset: beta).output
    }

    func testValuesAndStatisticsEqualTheComposition() {
        var rng = SeededRNG(seed: 301)
        // Odd sizes (7×5) drop the last row/column as max-pooling does; a negative γ flips the window order.
        let x = rng.distinct([3, 4, 7, 5]), gamma = Tensor(shape: [4], scalars: [1.2, -0.7, 0.4, 2]), beta = rng.tensor([4])
        let a = fused(x, gamma, beta), b = unfused(x, gamma, beta)
        XCTAssertEqual(a.shape, [3, 4, 3, 2])
        XCTAssertEqual(a.scalars, b.scalars, "the fused block must give the composition's values exactly")
        let stats = Tensor.batchNormMaxPoolReLU(x, scale: gamma, offset: beta)
        let reference = Tensor.batchNorm(x, scale: gamma, offset: beta)
        XCTAssertEqual(stats.mean, reference.mean)
        XCTAssertEqual(stats.variance, reference.variance)
    }

    /// Rows wide enough for the SIMD paths (8 and 4 windows at a time, with an overlapping last group).
    func testWideRowsEqualTheComposition() {
        var rng = SeededRNG(seed: 304)
        for shape in [[2, 3, 28, 28], [2, 3, 14, 14], [1, 2, 9, 17], [1, 2, 4, 8], [2, 2, 6, 16]] {
            let x = rng.tensor(shape, -2, 2)
            let gamma = Tensor(shape: [shape[1]], scalars: (0..<shape[1]).map { $0 % 2 == 0 ? 1.3 : -0.6 })
            let beta = rng.tensor([shape[1]])
            let a = Tensor.batchNormMaxPoolReLU(x, scale: gamma, offset: beta)
            XCTAssertEqual(a.output.scalars, unfused(x, gamma, beta).scalars, "values for \(shape)")
            // The recorded argmax positions route the gradient exactly as max-pooling does.
            let xp = x.asParameter(), gp = gamma.asParameter(), bp = beta.asParameter()
            let w = reductionWeights(a.output.shape, seed: 5)
            let ga = gradients(of: (fused(xp, gp, bp) * w).sum(), wrt: [xp, gp, bp])
            let gb = gradients(of: (unfused(xp, gp, bp) * w).sum(), wrt: [xp, gp, bp])
            for (u, v) in zip(ga, gb) {
                for (p, q) in zip(u.scalars, v.scalars) { XCTAssertEqual(p, q, accuracy: 1e-5 + 1e-4 * abs(q), "\(shape)") }
            }
        }
    }

    func testFirstOrderGradientsEqualTheComposition() {
        var rng = SeededRNG(seed: 302)
        let x = rng.distinct([4, 3, 6, 6]).asParameter()
        let gamma = Tensor(shape: [3], scalars: [0.8, -1.1, 1.5], requiresGrad: true), beta = rng.tensor([3]).asParameter()
        let w = reductionWeights([4, 3, 3, 3], seed: 9)
        let ga = gradients(of: (fused(x, gamma, beta) * w).sum(), wrt: [x, gamma, beta])
        let gb = gradients(of: (unfused(x, gamma, beta) * w).sum(), wrt: [x, gamma, beta])
        for (a, b) in zip(ga, gb) {
            XCTAssertEqual(a.shape, b.shape)
            for (u, v) in zip(a.scalars, b.scalars) {
                XCTAssertEqual(u, v, accuracy: 1e-5 + 1e-4 * abs(v))
            }
        }
        // (No finite differences here: a step in β moves values across ReLU's kink. The composition's
        // operations are each checked against finite differences in FirstOrderGradientTests.)
    }

    func testSecondOrderThroughTheFusedBlock() {
        var rng = SeededRNG(seed: 303)
        let x = rng.distinct([3, 2, 4, 4]), gamma = rng.tensor([2], 0.5, 1.5), beta = rng.tensor([2])
        checkHessianVectorProduct("tanh(fused block)", [x, gamma, beta]) { self.fused($0[0], $0[1], $0[2]).tanh() }
        // The recorded (createGraph) gradient equals the fused first-order one.
        let xp = x.asParameter(), gp = gamma.asParameter(), bp = beta.asParameter()
        let w = reductionWeights([3, 2, 2, 2], seed: 4)
        let recorded = gradients(of: (fused(xp, gp, bp) * w).sum(), wrt: [xp, gp, bp], createGraph: true)
        let plain = gradients(of: (fused(xp, gp, bp) * w).sum(), wrt: [xp, gp, bp])
        for (a, b) in zip(recorded, plain) {
            for (u, v) in zip(a.scalars, b.scalars) { XCTAssertEqual(u, v, accuracy: 1e-5 + 1e-4 * abs(v)) }
        }
    }
}
