import CKernels
import XCTest
@testable import Engine

/// The Winograd backend's direct convolutions of few input channels (`cdirect_forward`, `cdirect_weight_gradient`:
/// Conv4's first layer there): the convolution checks of im2col + OpenBLAS run again with every stride-1
/// convolution of at most `CDIRECT_MAX_PRODUCTS` products per value computed directly (Winograd itself switched off,
/// so that the small cases of the checks reach the direct kernels): finite differences of first and second order, the
/// MAML meta-gradient, Double loops (Conv4's first layer at 80 images among them), the same bits on any thread
/// count, the fused evaluation block; and the kernels' two compiled copies give the same bits.
final class DirectConvolutionTests: XCTestCase {
    private var saved: Convolutions.Backend = .openBLAS
    private var savedChannels = Convolutions.winogradMinimumChannels

    override func setUp() {
        super.setUp()
        saved = Convolutions.backend
        savedChannels = Convolutions.winogradMinimumChannels
        Convolutions.use(.winograd)
        Convolutions.winogradMinimumChannels = Int.max
    }

    override func tearDown() {
        Convolutions.use(saved)
        Convolutions.winogradMinimumChannels = savedChannels
        super.tearDown()
    }

    /// Which convolutions the direct kernels take: stride 1, at most 32 products per value, the Winograd backend only.
    func testOnlyFewProductsWithStrideOneRunDirectly() {
        func geometry(_ c: Int, _ k: Int, stride: Int = 1, pad: Int = 1) -> ConvGeometry {
            ConvGeometry(input: [2, c, 12, 12], weight: [8, c, k, k], stride: stride, pad: pad)
        }
        XCTAssertTrue(Convolutions.usesDirect(geometry(1, 3)))
        XCTAssertTrue(Convolutions.usesDirect(geometry(3, 3)))
        XCTAssertTrue(Convolutions.usesDirect(geometry(1, 5, pad: 2)))
        XCTAssertTrue(Convolutions.usesDirect(geometry(32, 1, pad: 0)))
        XCTAssertFalse(Convolutions.usesDirect(geometry(4, 3)), "36 products")
        XCTAssertFalse(Convolutions.usesDirect(geometry(2, 5, pad: 2)), "50 products")
        XCTAssertFalse(Convolutions.usesDirect(geometry(1, 3, stride: 2)), "strided")
        Convolutions.use(.openBLAS)
        XCTAssertFalse(Convolutions.usesDirect(geometry(1, 3)), "im2col backend")
        Convolutions.use(.oneDNN)
        XCTAssertFalse(Convolutions.usesDirect(geometry(1, 3)), "oneDNN backend")
    }

    func testFirstOrderGradientsMatchFiniteDifferences() { FirstOrderGradientTests.checkConv2dGradients() }

    func testSecondOrderGradientsMatchFiniteDifferences() { SecondOrderGradientTests.checkConv2dSecondOrder() }

    func testConvNetSecondOrderMatchesFiniteDifferences() { SecondOrderGradientTests.checkConvNetCompositionSecondOrder() }

    func testMAMLMetaGradientMatchesFiniteDifferences() { MAMLMetaGradientTests.checkSecondOrderMetaGradient() }

    func testManyChunksMatchDoubleLoops() { ConvPathTests.checkAgainstDoubleLoops() }

    func testSameBitsOnAnyThreadCount() { ConvPathTests.checkSameBitsOnAnyThreadCount() }

    func testFusedEvaluationBlockEqualsConvThenTail() { FusedInferenceBlockTests.checkConvBlockEqualsConvThenTail() }

    func testFusedEvaluationBlockRecordedIsTheComposite() { FusedInferenceBlockTests.checkConvBlockRecordedIsTheComposite() }

    /// The values and gradients of a few direct convolutions against Double loops: rows of at least eight values
    /// (vectors, the last overlapping the one before) and of fewer (value by value), one and three input channels
    /// (the kernels' constant shapes) and others, with and without bias.
    func testDirectConvolutionsMatchDoubleLoops() {
        var rng = SeededRNG(seed: 431)
        for (n, c, o, h, w, kh, kw, pad) in [(3, 1, 8, 28, 28, 3, 3, 1), (2, 3, 5, 13, 11, 3, 3, 1), (2, 1, 4, 6, 5, 3, 3, 0),
                                              (2, 2, 3, 9, 17, 3, 2, 0), (1, 1, 6, 10, 10, 5, 5, 2), (2, 5, 3, 8, 9, 1, 1, 0)] {
            let x = rng.tensor([n, c, h, w]).asParameter(), weight = rng.tensor([o, c, kh, kw]).asParameter()
            let b = rng.tensor([o]).asParameter()
            let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: 1, pad: pad)
            XCTAssertTrue(Convolutions.usesDirect(g), "\(x.shape) \(weight.shape)")
            for bias in [b, nil] {
                let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: 1, padding: pad)
                let r = rng.tensor(y.shape)
                let expected = NaiveConvolution(x, weight, bias, upstream: r, stride: 1, pad: pad)
                let name = "\(x.shape) \(weight.shape) p\(pad) bias \(bias != nil)"
                assertClose(y.scalars, expected.y, rtol: 1e-5, atol: 1e-5, name + " values")
                let gs = gradients(of: (y * r).sum(), wrt: [x, weight] + (bias.map { [$0] } ?? []))
                assertClose(gs[0].scalars, expected.dx, rtol: 1e-4, atol: 1e-4, name + " ∂x")
                assertClose(gs[1].scalars, expected.dw, rtol: 1e-4, atol: 1e-3, name + " ∂w")
                if bias != nil { assertClose(gs[2].scalars, expected.db, rtol: 1e-4, atol: 1e-3, name + " ∂b") }
            }
        }
    }

    /// The kernels' two compiled copies (AVX2 + FMA, and the baseline instruction set's fmaf for CPUs without
    /// them) give the same bits: values, weight and bias gradients of shapes with vector and value-by-value rows.
    func testBaselineKernelsGiveTheAVX2Bits() throws {
        guard cdirect_kernels_use_avx2() != 0 else { throw XCTSkip("no AVX2 + FMA here: only the baseline copy runs") }
        var rng = SeededRNG(seed: 433)
        for (n, c, o, h, w, kh, kw, pad) in [(3, 1, 16, 28, 28, 3, 3, 1), (2, 3, 8, 13, 11, 3, 3, 1), (2, 1, 4, 6, 5, 3, 3, 0),
                                              (2, 2, 3, 9, 17, 3, 2, 0)] {
            let x = rng.tensor([n, c, h, w]).asParameter(), weight = rng.tensor([o, c, kh, kw]).asParameter()
            let bias = rng.tensor([o]).asParameter()
            let y0 = Tensor.conv2d(x, weight: weight, bias: bias, stride: 1, padding: pad)
            let r = rng.tensor(y0.shape)
            func run() -> [[UInt32]] {
                let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: 1, padding: pad)
                return ([y] + gradients(of: (y * r).sum(), wrt: [weight, bias])).map { $0.scalars.map(\.bitPattern) }
            }
            let avx2 = run()
            cdirect_use_baseline_kernels(1)
            defer { cdirect_use_baseline_kernels(0) }
            XCTAssertEqual(cdirect_kernels_use_avx2(), 0)
            for (name, (b, a)) in zip(["output", "weight gradient", "bias gradient"], zip(run(), avx2)) {
                let differing = zip(b, a).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(x.shape) \(weight.shape): \(differing) of \(a.count) \(name) values differ")
            }
        }
    }
}
