import XCTest
@testable import Engine

/// The evaluation tail of a Conv4 block with given (running) statistics, fused, against batch norm with those
/// statistics, 2×2 max-pooling and ReLU applied in turn: the same bits, so stored results do not move.
final class FusedInferenceBlockTests: XCTestCase {
    func composite(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor, _ mean: [Float], _ variance: [Float]) -> Tensor {
        Tensor.batchNorm(x, scale: gamma, offset: beta, mean: mean, variance: variance).maxPool2d(2).relu()
    }

    func testValuesEqualTheCompositeBitForBit() {
        var rng = SeededRNG(seed: 311)
        for shape in [[3, 4, 7, 5], [2, 3, 28, 28], [1, 2, 9, 17], [2, 64, 14, 14], [1, 1, 2, 2], [2, 3, 1, 4]] {
            let c = shape[1]
            var x = rng.tensor(shape, -3, 3)
            if shape == [3, 4, 7, 5] {
                // Ties, a NaN (never the maximum unless first, then ReLU'd to 0) and infinities.
                var s = x.scalars
                s[0] = .nan; s[6] = .nan; s[1] = s[5]; s[10] = .infinity; s[11] = -.infinity
                x = Tensor(shape: shape, scalars: s)
            }
            let gamma = Tensor(shape: [c], scalars: (0..<c).map { $0 % 3 == 0 ? -0.7 : 1.3 + Float($0) * 0.01 })
            let beta = rng.tensor([c])
            let mean = (0..<c).map { Float($0) * 0.05 - 0.4 }, variance = (0..<c).map { 0.3 + Float($0) * 0.02 }
            let fused = withoutGradients {
                Tensor.batchNormMaxPoolReLU(x, scale: gamma, offset: beta, mean: mean, variance: variance)
            }
            let reference = withoutGradients { composite(x, gamma, beta, mean, variance) }
            XCTAssertEqual(fused.shape, reference.shape, "\(shape)")
            XCTAssertEqual(fused.scalars.map(\.bitPattern), reference.scalars.map(\.bitPattern), "\(shape)")
            XCTAssertNil(fused.node)
        }
    }

    /// With gradients recorded it is the composite itself (exact gradients of any order).
    func testRecordedForGradientsIsTheComposite() {
        var rng = SeededRNG(seed: 312)
        let x = rng.tensor([2, 3, 6, 6], -2, 2).asParameter()
        let gamma = Tensor(shape: [3], scalars: [0.8, -1.1, 1.5], requiresGrad: true), beta = rng.tensor([3]).asParameter()
        let mean: [Float] = [0.1, -0.2, 0.3], variance: [Float] = [0.5, 1.5, 0.9]
        let y = Tensor.batchNormMaxPoolReLU(x, scale: gamma, offset: beta, mean: mean, variance: variance)
        XCTAssertNotNil(y.node)
        let w = reductionWeights(y.shape, seed: 4)
        let ga = gradients(of: (y * w).sum(), wrt: [x, gamma, beta])
        let gb = gradients(of: (composite(x, gamma, beta, mean, variance) * w).sum(), wrt: [x, gamma, beta])
        for (a, b) in zip(ga, gb) { XCTAssertEqual(a.scalars, b.scalars) }
    }
}
