import XCTest
@testable import Engine

/// The oneDNN convolution backend: the convolution checks of im2col + OpenBLAS run again with it selected
/// (finite differences of first and second order, the MAML meta-gradient, Double loops on many chunks, the same
/// bits on any thread count, the fused evaluation block), and it agrees with im2col + OpenBLAS on a Conv4
/// network to float rounding.
final class OneDNNConvolutionTests: XCTestCase {
    private var saved: Convolutions.Backend = .openBLAS
    private var savedMinimum = Convolutions.oneDNNMinimumChannels

    /// oneDNN for every convolution, including the small-channel cases the checks below are made of (the
    /// backend leaves those to im2col by default: `testOnlyConvolutionsWithEnoughChannelsUseOneDNN`).
    override func setUp() {
        super.setUp()
        saved = Convolutions.backend
        savedMinimum = Convolutions.oneDNNMinimumChannels
        Convolutions.use(.oneDNN)
        Convolutions.oneDNNMinimumChannels = 1
    }

    override func tearDown() {
        Convolutions.use(saved)
        Convolutions.oneDNNMinimumChannels = savedMinimum
        super.tearDown()
    }

    /// With the default threshold, a convolution of fewer than 8 input channels (Conv4's first layer) keeps
    /// im2col's bits and one of 8 or more gets oneDNN's.
    func testOnlyConvolutionsWithEnoughChannelsUseOneDNN() {
        Convolutions.oneDNNMinimumChannels = savedMinimum
        var rng = SeededRNG(seed: 402)
        for (channels, oneDNN) in [(1, false), (3, false), (7, false), (8, true), (64, true)] {
            let x = rng.tensor([6, channels, 14, 14]).asParameter(), w = rng.tensor([16, channels, 3, 3]).asParameter()
            let r = rng.tensor([6, 16, 14, 14])
            func run() -> [[UInt32]] {
                let y = Tensor.conv2d(x, weight: w, padding: 1)
                return ([y] + gradients(of: (y * r).sum(), wrt: [x, w])).map { $0.scalars.map(\.bitPattern) }
            }
            let dnnl = run()
            Convolutions.use(.openBLAS)
            let blas = run()
            Convolutions.use(.oneDNN)
            XCTAssertEqual(dnnl != blas, oneDNN, "\(channels) input channels")
        }
    }

    func testFirstOrderGradientsMatchFiniteDifferences() { FirstOrderGradientTests.checkConv2dGradients() }

    func testSecondOrderGradientsMatchFiniteDifferences() { SecondOrderGradientTests.checkConv2dSecondOrder() }

    func testConvNetSecondOrderMatchesFiniteDifferences() { SecondOrderGradientTests.checkConvNetCompositionSecondOrder() }

    func testMAMLMetaGradientMatchesFiniteDifferences() { MAMLMetaGradientTests.checkSecondOrderMetaGradient() }

    func testManyChunksMatchDoubleLoops() { ConvPathTests.checkAgainstDoubleLoops() }

    func testSameBitsOnAnyThreadCount() { ConvPathTests.checkSameBitsOnAnyThreadCount() }

    func testFusedEvaluationBlockEqualsConvThenTail() { FusedInferenceBlockTests.checkConvBlockEqualsConvThenTail() }

    func testFusedEvaluationBlockRecordedIsTheComposite() { FusedInferenceBlockTests.checkConvBlockRecordedIsTheComposite() }

    /// The backend really is in use: its kernel is oneDNN's own and it reports its version and instruction set.
    func testItIsOneDNNThatRuns() {
        XCTAssertEqual(Convolutions.backend, .oneDNN)
        XCTAssertTrue(Convolutions.description.hasPrefix("oneDNN 2."), Convolutions.description)
        let g = ConvGeometry(input: [4, 64, 14, 14], weight: [64, 64, 3, 3], stride: 1, pad: 1)
        for operation in 0..<3 {
            let name = Convolutions.implementationName(g, operation: operation)
            XCTAssertNotEqual(name, "unknown", "operation \(operation)")
        }
        // Its instruction set follows OpenBLAS's kernel family: AVX-512 only under SkylakeX.
        let avx512 = BLAS.requiredFlag(forKernels: BLAS.coreName) == "avx512f"
        XCTAssertEqual(Convolutions.description.contains("avx512"), avx512, Convolutions.description)
    }

    /// A Conv4 network's values and every gradient (training mode, as a ProtoNet or MAML step) with oneDNN
    /// against im2col + OpenBLAS: equal to float rounding, and not bit for bit (so the backend switch is real).
    func testConv4AgreesWithOpenBLAS() { Self.checkConv4AgreesWithOpenBLAS(.oneDNN, seed: 401) }

    /// A Conv4 network (20 images of 28 × 28, training mode) run with `backend` (selected when called) and with
    /// im2col + OpenBLAS: values and every gradient within 1e-4 of each output's scale, and not all bit for bit.
    static func checkConv4AgreesWithOpenBLAS(_ backend: Convolutions.Backend, seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        let x = rng.tensor([20, 1, 28, 28], 0, 1)
        var weights: [Tensor] = []
        var c = 1
        for _ in 0..<4 {
            weights.append(rng.tensor([64, c, 3, 3], -0.3, 0.3).asParameter())
            weights.append(rng.tensor([64], -0.1, 0.1).asParameter())
            c = 64
        }
        func run() -> [[Float]] {
            var h = x
            for layer in 0..<4 {
                h = Tensor.conv2d(h, weight: weights[2 * layer], bias: weights[2 * layer + 1], padding: 1).relu().maxPool2d(2)
            }
            let r = reductionWeights(h.shape, seed: 3)
            return [h.scalars] + gradients(of: (h * r).sum(), wrt: weights).map(\.scalars)
        }
        let other = run()
        Convolutions.use(.openBLAS)
        let blas = run()
        Convolutions.use(backend)
        var identical = true
        for (k, (a, b)) in zip(other, blas).enumerated() {
            let scale = b.map { abs($0) }.max() ?? 0
            XCTAssertGreaterThan(scale, 0, "output \(k)")
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "output \(k): largest difference \(worst) against scale \(scale)")
            if a.map(\.bitPattern) != b.map(\.bitPattern) { identical = false }
        }
        XCTAssertFalse(identical, "\(backend) gave im2col's bits to the last one: is it running?")
    }

    /// `METABENCH_CONVOLUTIONS`: the names (any case, spaces around), empty or unset for the default (nil: the
    /// kernel family's, `defaultBackend(forKernels:)`), and a message naming the variable, the value and the
    /// choices otherwise.
    func testEnvironmentValues() {
        XCTAssertNil(Convolutions.parse(nil).backend)
        XCTAssertNil(Convolutions.parse("").backend)
        XCTAssertNil(Convolutions.parse("  ").backend)
        XCTAssertNil(Convolutions.parse(nil).error)
        XCTAssertEqual(Convolutions.parse(" oneDNN ").backend, .oneDNN)
        XCTAssertEqual(Convolutions.parse("openblas").backend, .openBLAS)
        XCTAssertNil(Convolutions.parse("onednn").error)
        let bad = Convolutions.parse("mkl")
        XCTAssertNil(bad.backend)
        XCTAssertEqual(bad.error, "METABENCH_CONVOLUTIONS=mkl is not a convolution backend; use openblas, onednn or winograd")
    }
}
