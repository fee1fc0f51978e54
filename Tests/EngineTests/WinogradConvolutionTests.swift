import CKernels
import XCTest
@testable import Engine

/// The Winograd convolution backend: the convolution checks of im2col + OpenBLAS run again with it selected
/// (finite differences of first and second order, the MAML meta-gradient, Double loops on many chunks and odd
/// plane sizes, the same bits on any thread count, the fused evaluation block), and it agrees with im2col +
/// OpenBLAS on a Conv4 network to float rounding.
final class WinogradConvolutionTests: XCTestCase {
    private var saved: Convolutions.Backend = .openBLAS
    private var savedChannels = Convolutions.winogradMinimumChannels
    private var savedSide = Convolutions.winogradMinimumSide
    private var savedTiles = Convolutions.winogradMinimumTiles

    /// Winograd for every 3×3, stride-1, padding-1 convolution, including the small cases the checks below are
    /// made of (the backend leaves thin and small ones to im2col by default: `testOnlyEligibleConvolutionsUseWinograd`).
    override func setUp() {
        super.setUp()
        saved = Convolutions.backend
        savedChannels = Convolutions.winogradMinimumChannels
        savedSide = Convolutions.winogradMinimumSide
        savedTiles = Convolutions.winogradMinimumTiles
        Convolutions.use(.winograd)
        Convolutions.winogradMinimumChannels = 1
        Convolutions.winogradMinimumSide = 1
        Convolutions.winogradMinimumTiles = 0
    }

    override func tearDown() {
        Convolutions.use(saved)
        Convolutions.winogradMinimumChannels = savedChannels
        Convolutions.winogradMinimumSide = savedSide
        Convolutions.winogradMinimumTiles = savedTiles
        super.tearDown()
    }

    /// With the default thresholds, Conv4's 3 × 3 layer, a few small planes, other kernel sizes, strides and paddings
    /// keep im2col's bits; its 14 × 14 layer (from 5 images) and 7 × 7 layer (from 15) get Winograd's; its first layer
    /// (one input channel: 9 products per value) the direct convolution's values and weight gradient (its input
    /// gradient, never needed for a first layer, stays on im2col; its values differ from im2col's under the AVX2
    /// kernels and equal them under the AVX-512 ones, which sum the products in the same order).
    func testOnlyEligibleConvolutionsUseWinograd() {
        Convolutions.winogradMinimumChannels = savedChannels
        Convolutions.winogradMinimumSide = savedSide
        Convolutions.winogradMinimumTiles = savedTiles
        var rng = SeededRNG(seed: 403)
        enum Path { case im2col, winograd, direct }
        let cases: [(n: Int, c: Int, o: Int, side: Int, kernel: Int, stride: Int, pad: Int, path: Path)] = [
            (5, 1, 16, 28, 3, 1, 1, .direct), (5, 3, 16, 28, 3, 1, 1, .direct), (5, 7, 16, 14, 3, 1, 1, .im2col),
            (5, 16, 7, 14, 3, 1, 1, .im2col), (80, 64, 64, 3, 3, 1, 1, .im2col), (30, 64, 64, 5, 3, 1, 1, .im2col),
            (20, 16, 16, 14, 3, 2, 1, .im2col), (5, 1, 16, 28, 3, 2, 1, .im2col), (5, 16, 16, 14, 3, 1, 0, .im2col),
            (5, 16, 16, 14, 5, 1, 2, .im2col), (5, 1, 16, 14, 5, 1, 2, .direct), (5, 2, 16, 14, 5, 1, 2, .im2col),
            (4, 64, 64, 14, 3, 1, 1, .im2col), (14, 16, 16, 7, 3, 1, 1, .im2col),
            (27, 8, 8, 6, 3, 1, 1, .winograd), (15, 64, 64, 7, 3, 1, 1, .winograd), (5, 64, 64, 14, 3, 1, 1, .winograd),
        ]
        for c in cases {
            let x = rng.tensor([c.n, c.c, c.side, c.side]).asParameter(), w = rng.tensor([c.o, c.c, c.kernel, c.kernel]).asParameter()
            let r = rng.tensor(Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.pad).shape)
            func run() -> [[UInt32]] {
                let y = Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.pad)
                return ([y] + gradients(of: (y * r).sum(), wrt: [x, w])).map { $0.scalars.map(\.bitPattern) }
            }
            let winograd = run()
            Convolutions.use(.openBLAS)
            let blas = run()
            Convolutions.use(.winograd)
            // OpenBLAS's AVX-512 kernels sum an output value's few products (9, 25, 27) in the direct kernel's order,
            // so there the direct path's values are im2col's to the bit (its weight gradient still differs).
            let sameDirectValues = BLAS.requiredFlag(forKernels: BLAS.coreName) == "avx512f"
            let differs = [c.path == .winograd || (c.path == .direct && !sameDirectValues), c.path == .winograd,
                           c.path != .im2col]
            for (k, label) in ["values", "∂x", "∂w"].enumerated() {
                XCTAssertEqual(winograd[k] != blas[k], differs[k], "\(c): \(label)")
            }
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

    /// The backend really is in use and names its kernels, whose instruction set follows OpenBLAS's kernel family:
    /// AVX-512 only under SkylakeX.
    func testItIsWinogradThatRuns() {
        XCTAssertEqual(Convolutions.backend, .winograd)
        XCTAssertTrue(Convolutions.description.hasPrefix("Winograd F(2×2, 3×3), LIBXSMM 1."), Convolutions.description)
        let avx512 = BLAS.requiredFlag(forKernels: BLAS.coreName) == "avx512f"
        XCTAssertTrue(Convolutions.description.hasSuffix(avx512 ? " skx" : " hsw"), Convolutions.description)
    }

    /// A Conv4 network's values and every gradient (training mode, as a ProtoNet or MAML step) with Winograd
    /// against im2col + OpenBLAS, with the default thresholds (its 14 × 14 and 7 × 7 layers on Winograd): equal
    /// to float rounding, and not bit for bit (so the backend switch is real).
    func testConv4AgreesWithOpenBLAS() {
        Convolutions.winogradMinimumChannels = savedChannels
        Convolutions.winogradMinimumSide = savedSide
        Convolutions.winogradMinimumTiles = savedTiles
        OneDNNConvolutionTests.checkConv4AgreesWithOpenBLAS(.winograd, seed: 404)
    }

    /// The default backend (`METABENCH_CONVOLUTIONS` unset) follows OpenBLAS's kernel family: Winograd with the
    /// AVX2 and AVX-512 families where it was measured faster, im2col + OpenBLAS with the older ones (not
    /// measured), whatever the case of the name.
    func testDefaultFollowsTheKernelFamily() {
        for name in ["Haswell", "Zen", "ZEN", "haswell", "SkylakeX", "skylakex", "CooperLake", "SapphireRapids"] {
            XCTAssertEqual(Convolutions.defaultBackend(forKernels: name), .winograd, name)
        }
        for name in ["Sandybridge", "Nehalem", "Prescott", "unknown", ""] {
            XCTAssertEqual(Convolutions.defaultBackend(forKernels: name), .openBLAS, name)
        }
    }

    /// `METABENCH_CONVOLUTIONS=winograd` (any case, spaces around) selects it.
    func testEnvironmentValue() {
        XCTAssertEqual(Convolutions.parse("winograd").backend, .winograd)
        XCTAssertEqual(Convolutions.parse(" Winograd ").backend, .winograd)
        XCTAssertNil(Convolutions.parse("winograd").error)
    }

    /// The weight gradient's sums on both of their products — LIBXSMM's on the transposed input transforms (up to
    /// 128 tiles per image: 9 × 9 and 22 × 22 planes, 25 and 121 tiles) and OpenBLAS's on them as they lie (24 × 24,
    /// 144 tiles) — with channel counts that leave a partial block of eight to transpose (3, 12) and whole ones (16),
    /// against Double loops; and the bias gradient beside them.
    func testWeightGradientOnBothProducts() {
        var rng = SeededRNG(seed: 421)
        for (n, c, o, side) in [(3, 12, 16, 9), (2, 16, 12, 22), (2, 3, 8, 24), (1, 16, 16, 24)] {
            let x = rng.tensor([n, c, side, side]).asParameter(), w = rng.tensor([o, c, 3, 3]).asParameter()
            let b = rng.tensor([o]).asParameter()
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: 1, padding: 1)
            let r = rng.tensor(y.shape)
            let expected = NaiveConvolution(x, w, b, upstream: r, stride: 1, pad: 1)
            let name = "\(n)×\(c)×\(side)² → \(o)"
            for createGraph in [false, true] {
                let g = gradients(of: (Tensor.conv2d(x, weight: w, bias: b, stride: 1, padding: 1) * r).sum(),
                                  wrt: [x, w, b], createGraph: createGraph)
                assertClose(g[1].scalars, expected.dw, rtol: 1e-4, atol: 1e-3, name + " ∂w (createGraph: \(createGraph))")
                assertClose(g[2].scalars, expected.db, rtol: 1e-4, atol: 1e-3, name + " ∂b (createGraph: \(createGraph))")
            }
        }
    }

    /// The transforms' two compiled copies (AVX2, and the baseline instruction set for CPUs without it) give the
    /// same bits: forward, input and weight gradients of a few shapes (odd planes, a row's last vector spilling
    /// into the next row, more and fewer output than input channels) through the whole backend.
    func testBaselineTransformsGiveTheAVX2Bits() throws {
        guard cwino_transforms_use_avx2() != 0 else { throw XCTSkip("no AVX2 here: only the baseline copy runs") }
        var rng = SeededRNG(seed: 419)
        for (n, c, o, h, w) in [(2, 8, 16, 14, 14), (3, 16, 8, 7, 9), (1, 8, 8, 15, 11), (2, 9, 12, 6, 13)] {
            let x = rng.tensor([n, c, h, w]).asParameter(), weight = rng.tensor([o, c, 3, 3]).asParameter()
            let bias = rng.tensor([o]).asParameter()
            let r = rng.tensor([n, o, h, w])
            func run() -> [[UInt32]] {
                let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1)
                return ([y] + gradients(of: (y * r).sum(), wrt: [x, weight, bias])).map { $0.scalars.map(\.bitPattern) }
            }
            let avx2 = run()
            cwino_use_baseline_transforms(1)
            defer { cwino_use_baseline_transforms(0) }
            XCTAssertEqual(cwino_transforms_use_avx2(), 0)
            for (name, (b, a)) in zip(["output", "input gradient", "weight gradient", "bias gradient"], zip(run(), avx2)) {
                let differing = zip(b, a).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(n)×\(c)×\(h)×\(w) → \(o): \(differing) of \(a.count) \(name) values differ")
            }
        }
    }

    /// What the C calls keep does not depend on what their workspace held: with every float of it NaN but the
    /// lanes `cwino_prepare_workspace` zeroes, the forward pass, the weight gradient's sums over two images and their
    /// transform back give the bits they give on a workspace zeroed whole (a kept value that read a lane nothing
    /// wrote would be NaN), on planes with whole, partial and spilling rows of tiles, a partial block of eight channels
    /// to transpose for the sums' product, and a plane past LIBXSMM's tile limit (its sums on OpenBLAS).
    func testResultsDoNotDependOnTheUnpreparedWorkspace() {
        var rng = SeededRNG(seed: 417)
        for (c, o, h, w) in [(8, 16, 14, 14), (16, 8, 7, 9), (8, 8, 6, 6), (8, 8, 16, 16), (8, 8, 15, 11), (12, 8, 9, 9),
                             (8, 8, 24, 24)] {
            let x = rng.tensor([c, h, w]).scalars, dy = rng.tensor([o, h, w]).scalars
            let x2 = rng.tensor([c, h, w]).scalars, dy2 = rng.tensor([o, h, w]).scalars
            let weights = rng.tensor([o, c, 3, 3]).scalars, bias = rng.tensor([o]).scalars
            var u = [Float](repeating: 0, count: 16 * o * c)
            cwino_transform_weights(Int32(c), Int32(o), weights, 0, &u)
            let count = Int(cwino_workspace_floats(Int32(c), Int32(h), Int32(w), Int32(o)))
            func run(fill: Float, prepare: Bool) -> [[UInt32]] {
                var workspace = [Float](repeating: fill, count: count)
                var y = [Float](repeating: 0, count: o * h * w), dU = [Float](repeating: 0, count: 16 * o * c)
                var dw = [Float](repeating: 0, count: o * c * 9)
                workspace.withUnsafeMutableBufferPointer { ws in
                    if prepare { cwino_prepare_workspace(Int32(c), Int32(h), Int32(w), Int32(o), ws.baseAddress!) }
                    cwino_forward(Int32(c), Int32(h), Int32(w), Int32(o), x, u, bias, &y, ws.baseAddress!)
                    cwino_weight_gradient(Int32(c), Int32(h), Int32(w), Int32(o), x, dy, &dU, 0, ws.baseAddress!)
                    // A second image's sums on the same workspace, as the calls of a group run.
                    cwino_weight_gradient(Int32(c), Int32(h), Int32(w), Int32(o), x2, dy2, &dU, 1, ws.baseAddress!)
                }
                cwino_weight_gradient_finish(Int32(c), Int32(o), dU, &dw)
                return [y.map(\.bitPattern), dw.map(\.bitPattern)]
            }
            let reference = run(fill: 0, prepare: false)
            XCTAssertFalse(reference[0].contains { Float(bitPattern: $0).isNaN }, "\(c)×\(h)×\(w) → \(o)")
            XCTAssertEqual(run(fill: .nan, prepare: true), reference, "\(c)×\(h)×\(w) → \(o)")
        }
    }
}
