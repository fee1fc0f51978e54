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
        for shape in [[3, 4, 7, 5], [2, 3, 28, 28], [1, 2, 9, 17], [2, 64, 14, 14], [1, 1, 2, 2], [2, 3, 1, 4],
                      [2, 3, 6, 18], [1, 2, 4, 8]] {
            let c = shape[1]
            var x = rng.tensor(shape, -3, 3)
            if shape == [3, 4, 7, 5] {
                // Ties, a NaN (never the maximum unless first, then ReLU'd to 0) and infinities.
                var s = x.scalars
                s[0] = .nan; s[6] = .nan; s[1] = s[5]; s[10] = .infinity; s[11] = -.infinity
                x = Tensor(shape: shape, scalars: s)
            }
            if shape == [2, 3, 6, 18] || shape == [1, 2, 4, 8] {
                // The same in wider rows (8 and 4 windows): a NaN first and later in a window, ties,
                // infinities.
                var s = x.scalars
                let w = shape[3]
                s[0] = .nan; s[3] = .nan; s[4] = s[5]; s[6] = s[w + 7]; s[w + 8] = .infinity; s[10] = -.infinity
                s[w + 2] = .nan; s[2 * w + 1] = s[2 * w]
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

    /// A whole block at evaluation (convolution, then the fused tail), with each image's convolution output
    /// pooled while in cache: the same bits as the two operations in turn, on planes that take the per-image
    /// product (28×28) and the gathered one (7×7, 3×3), several chunks of images, with and without a bias,
    /// on one and on three threads.
    func testConvBlockEqualsConvThenTailBitForBit() { Self.checkConvBlockEqualsConvThenTail() }

    static func checkConvBlockEqualsConvThenTail() {
        var rng = SeededRNG(seed: 313)
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        for (shape, o) in [([3, 1, 28, 28], 8), ([10, 64, 14, 14], 64), ([9, 16, 7, 7], 12), ([2, 5, 6, 9], 4),
                           ([40, 64, 3, 3], 64)] {
            let c = shape[1]
            let x = rng.tensor(shape, -2, 2)
            let weight = rng.tensor([o, c, 3, 3], -0.3, 0.3)
            let gamma = Tensor(shape: [o], scalars: (0..<o).map { $0 % 3 == 0 ? -0.7 : 1.3 + Float($0) * 0.01 })
            let beta = rng.tensor([o])
            let mean = (0..<o).map { Float($0) * 0.01 - 0.2 }, variance = (0..<o).map { 0.3 + Float($0) * 0.02 }
            for bias in [rng.tensor([o]), nil] {
                for threads in [1, 3] {
                    ComputeThreads.set(threads)
                    let fused = withoutGradients {
                        Tensor.convBatchNormMaxPoolReLU(x, weight: weight, bias: bias, padding: 1, scale: gamma,
                                                        offset: beta, mean: mean, variance: variance)
                    }
                    let reference = withoutGradients {
                        Tensor.batchNormMaxPoolReLU(Tensor.conv2d(x, weight: weight, bias: bias, padding: 1),
                                                    scale: gamma, offset: beta, mean: mean, variance: variance)
                    }
                    let label = "\(shape) o \(o) bias \(bias != nil) threads \(threads)"
                    XCTAssertEqual(fused.shape, reference.shape, label)
                    XCTAssertEqual(fused.scalars.map(\.bitPattern), reference.scalars.map(\.bitPattern), label)
                    XCTAssertNil(fused.node)
                }
            }
        }
    }

    /// With gradients recorded the block is the composite: a graph, and exact gradients.
    func testConvBlockRecordedForGradientsIsTheComposite() { Self.checkConvBlockRecordedIsTheComposite() }

    static func checkConvBlockRecordedIsTheComposite() {
        var rng = SeededRNG(seed: 314)
        let x = rng.tensor([2, 3, 6, 6], -2, 2)
        let weight = rng.tensor([4, 3, 3, 3], -0.5, 0.5).asParameter(), bias = rng.tensor([4]).asParameter()
        let gamma = Tensor(shape: [4], scalars: [0.8, -1.1, 1.5, 0.9], requiresGrad: true)
        let beta = rng.tensor([4]).asParameter()
        let mean: [Float] = [0.1, -0.2, 0.3, 0], variance: [Float] = [0.5, 1.5, 0.9, 1]
        let y = Tensor.convBatchNormMaxPoolReLU(x, weight: weight, bias: bias, padding: 1, scale: gamma, offset: beta,
                                                mean: mean, variance: variance)
        XCTAssertNotNil(y.node)
        let composite = Tensor.batchNormMaxPoolReLU(Tensor.conv2d(x, weight: weight, bias: bias, padding: 1),
                                                    scale: gamma, offset: beta, mean: mean, variance: variance)
        XCTAssertEqual(y.scalars, composite.scalars)
        let w = reductionWeights(y.shape, seed: 5)
        let ga = gradients(of: (y * w).sum(), wrt: [weight, bias, gamma, beta])
        let gb = gradients(of: (composite * w).sum(), wrt: [weight, bias, gamma, beta])
        for (a, b) in zip(ga, gb) { XCTAssertEqual(a.scalars, b.scalars) }
    }
}
