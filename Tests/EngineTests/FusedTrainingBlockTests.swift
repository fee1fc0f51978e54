import XCTest
@testable import Engine

/// The training block `convBatchNormMaxPoolReLU` (batch statistics) against `conv2d` followed by
/// `batchNormMaxPoolReLU`: the same values, statistics and gradients bit for bit, first and second order, with
/// either convolution backend and on one or several threads; and finite differences of its own.
final class FusedTrainingBlockTests: XCTestCase {
    private var savedBackend: Convolutions.Backend = .openBLAS
    private var savedMinimum = Convolutions.oneDNNMinimumChannels
    private var savedThreads = ComputeThreads.count
    private var savedWinograd = (channels: Convolutions.winogradMinimumChannels, side: Convolutions.winogradMinimumSide,
                                 tiles: Convolutions.winogradMinimumTiles)

    override func setUp() {
        super.setUp()
        savedBackend = Convolutions.backend
        savedMinimum = Convolutions.oneDNNMinimumChannels
        savedThreads = ComputeThreads.count
        savedWinograd = (Convolutions.winogradMinimumChannels, Convolutions.winogradMinimumSide,
                         Convolutions.winogradMinimumTiles)
    }

    override func tearDown() {
        Convolutions.use(savedBackend)
        Convolutions.oneDNNMinimumChannels = savedMinimum
        (Convolutions.winogradMinimumChannels, Convolutions.winogradMinimumSide, Convolutions.winogradMinimumTiles)
            = savedWinograd
        ComputeThreads.set(savedThreads)
        super.tearDown()
    }

    /// The Winograd backend for every 3 × 3 convolution the tests make, however small, and the direct one for
    /// inputs of one channel.
    private func useWinogradEverywhere() {
        Convolutions.use(.winograd)
        Convolutions.winogradMinimumChannels = 1
        Convolutions.winogradMinimumSide = 1
        Convolutions.winogradMinimumTiles = 0
    }

    private struct Operands {
        let x, w, gamma, beta: Tensor
        let bias: Tensor?
        /// The tensors gradients are taken for: weights, γ, β, then the bias and the input when they require them.
        var wanted: [Tensor] { [w, gamma, beta] + (bias.map { [$0] } ?? []) + (x.requiresGrad ? [x] : []) }
    }

    private func operands(_ shape: [Int], outChannels o: Int, bias: Bool, inputGradient: Bool, seed: UInt64) -> Operands {
        var rng = SeededRNG(seed: seed)
        let x = rng.tensor(shape, -1, 1), w = rng.tensor([o, shape[1], 3, 3], -0.4, 0.4), b = rng.tensor([o], -0.2, 0.2)
        // Signs of γ alternate: a negative scale reverses which value of a window is the maximum.
        let gamma = Tensor(shape: [o], scalars: (0..<o).map { $0 % 3 == 1 ? -0.7 : 1.1 + Float($0) * 0.01 })
        return Operands(x: inputGradient ? x.asParameter() : x, w: w.asParameter(), gamma: gamma.asParameter(),
                        beta: rng.tensor([o]).asParameter(), bias: bias ? b.asParameter() : nil)
    }

    private func fused(_ p: Operands) -> BatchNormResult {
        Tensor.convBatchNormMaxPoolReLU(p.x, weight: p.w, bias: p.bias, padding: 1, scale: p.gamma, offset: p.beta)
    }

    private func composite(_ p: Operands) -> BatchNormResult {
        Tensor.batchNormMaxPoolReLU(Tensor.conv2d(p.x, weight: p.w, bias: p.bias, padding: 1), scale: p.gamma, offset: p.beta)
    }

    private func bits(_ t: [Tensor]) -> [[UInt32]] { t.map { $0.scalars.map(\.bitPattern) } }

    /// Values, statistics and first-order gradients of the fused block and of the composite, as bit patterns.
    private func assertSameBits(_ shape: [Int], outChannels o: Int, bias: Bool = true, inputGradient: Bool = true,
                                seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let p = operands(shape, outChannels: o, bias: bias, inputGradient: inputGradient, seed: seed)
        let a = fused(p), b = composite(p)
        XCTAssertEqual(a.output.shape, b.output.shape, file: file, line: line)
        XCTAssertEqual(bits([a.output]), bits([b.output]), "values \(shape)", file: file, line: line)
        XCTAssertEqual(a.mean.map(\.bitPattern), b.mean.map(\.bitPattern), file: file, line: line)
        XCTAssertEqual(a.variance.map(\.bitPattern), b.variance.map(\.bitPattern), file: file, line: line)
        let r = reductionWeights(a.output.shape, seed: seed)
        let ga = gradients(of: (a.output * r).sum(), wrt: p.wanted, retainGraph: false)
        let gb = gradients(of: (b.output * r).sum(), wrt: p.wanted, retainGraph: false)
        XCTAssertEqual(ga.count, gb.count, file: file, line: line)
        for (k, (u, v)) in zip(ga, gb).enumerated() {
            XCTAssertEqual(u.shape, v.shape, file: file, line: line)
            XCTAssertEqual(bits([u]), bits([v]), "gradient \(k) for \(shape), bias \(bias)", file: file, line: line)
            XCTAssertTrue(u.scalars.contains { $0 != 0 }, "gradient \(k) for \(shape) is all zeros", file: file, line: line)
        }
    }

    /// Planes of 128 pixels or more (one product per image), smaller ones (gathered per chunk), odd sizes
    /// (pooling drops the last row and column), no bias, an input without gradient (a network's first layer),
    /// and enough images for several chunks and weight-gradient groups.
    func testSameBitsAsTheCompositeWithTheDefaultBackend() {
        Convolutions.use(.openBLAS)
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            assertSameBits([3, 2, 12, 12], outChannels: 5, seed: 501)
            assertSameBits([4, 3, 6, 6], outChannels: 4, seed: 502)
            assertSameBits([2, 3, 7, 5], outChannels: 3, seed: 503)
            assertSameBits([3, 2, 12, 12], outChannels: 4, bias: false, seed: 504)
            assertSameBits([5, 1, 28, 28], outChannels: 6, inputGradient: false, seed: 505)
            assertSameBits([60, 8, 12, 12], outChannels: 8, seed: 506)
            assertSameBits([120, 16, 6, 6], outChannels: 8, bias: false, seed: 507)
        }
    }

    func testSameBitsAsTheCompositeWithOneDNN() {
        Convolutions.use(.oneDNN)
        Convolutions.oneDNNMinimumChannels = 1
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            assertSameBits([3, 2, 12, 12], outChannels: 5, seed: 511)
            assertSameBits([2, 3, 7, 5], outChannels: 3, seed: 512)
            assertSameBits([40, 8, 14, 14], outChannels: 8, seed: 513)
            assertSameBits([90, 16, 7, 7], outChannels: 8, bias: false, inputGradient: false, seed: 514)
        }
    }

    /// The Winograd backend's per-image kernels and its direct first layer (the block's batch statistics take
    /// their first sums from each image's values as the convolution writes them; the composite's in a pass of
    /// their own).
    func testSameBitsAsTheCompositeWithWinogradAndDirect() {
        useWinogradEverywhere()
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            assertSameBits([3, 2, 12, 12], outChannels: 5, seed: 515)
            assertSameBits([2, 3, 7, 5], outChannels: 3, seed: 516)
            assertSameBits([5, 1, 28, 28], outChannels: 6, inputGradient: false, seed: 517)
            assertSameBits([40, 8, 14, 14], outChannels: 8, seed: 518)
            assertSameBits([21, 8, 7, 7], outChannels: 8, bias: false, seed: 519)
        }
    }

    /// `conv2d`'s inspector sees every image once, with the values the output holds for it, on every backend
    /// (im2col per image and per chunk, oneDNN, Winograd, direct) and thread count.
    func testConvolutionInspectorSeesEveryImageOnceWithItsFinalValues() {
        let backends: [(String, () -> Void)] = [
            ("im2col", { Convolutions.use(.openBLAS) }),
            ("oneDNN", { Convolutions.use(.oneDNN); Convolutions.oneDNNMinimumChannels = 1 }),
            ("Winograd and direct", { self.useWinogradEverywhere() }),
        ]
        var rng = SeededRNG(seed: 560)
        let shapes: [(x: [Int], o: Int)] = [([7, 3, 12, 12], 5), ([9, 4, 5, 5], 6), ([6, 1, 28, 28], 4), ([30, 8, 7, 7], 8)]
        let inputs = shapes.map { (rng.tensor($0.x), rng.tensor([$0.o, $0.x[1], 3, 3]), rng.tensor([$0.o])) }
        for (name, select) in backends {
            select()
            for threads in [1, 3] {
                ComputeThreads.set(threads)
                for (x, w, b) in inputs {
                    let (n, o) = (x.shape[0], w.shape[0])
                    let imageSize = o * x.shape[2] * x.shape[3]
                    let seen = UnsafeMutablePointer<Float>.allocate(capacity: n * imageSize)
                    defer { seen.deallocate() }
                    let counts = UnsafeMutablePointer<Int>.allocate(capacity: n)
                    defer { counts.deallocate() }
                    counts.initialize(repeating: 0, count: n)
                    let y = Tensor.conv2d(x, weight: w, bias: b, stride: 1, padding: 1) { image, values in
                        counts[image] += 1
                        (seen + image * imageSize).update(from: values, count: imageSize)
                    }
                    let plain = Tensor.conv2d(x, weight: w, bias: b, padding: 1)
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: n)), Array(repeating: 1, count: n),
                                   "\(name), \(threads) threads, \(x.shape)")
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: seen, count: n * imageSize)).map(\.bitPattern),
                                   y.scalars.map(\.bitPattern), "\(name), \(threads) threads, \(x.shape)")
                    XCTAssertEqual(y.scalars.map(\.bitPattern), plain.scalars.map(\.bitPattern), "\(name) \(x.shape)")
                }
            }
        }
    }

    /// The block on several threads gives the bits it gives on one: below the size at which its statistics,
    /// pooling and gradient sums split their planes over the threads, and above it (24 × 8 × 28 × 28).
    func testSameBitsOnOneAndThreeThreads() {
        for (shape, seed) in [([70, 8, 12, 12], UInt64(520)), ([24, 4, 28, 28], 521)] {
            func run(_ threads: Int) -> [[UInt32]] {
                ComputeThreads.set(threads)
                let p = operands(shape, outChannels: 8, bias: true, inputGradient: true, seed: seed)
                let y = fused(p).output
                return bits([y] + gradients(of: (y * reductionWeights(y.shape, seed: 3)).sum(), wrt: p.wanted))
            }
            let one = run(1)
            XCTAssertEqual(one, run(2), "\(shape)")
            XCTAssertEqual(one, run(3), "\(shape)")
        }
    }

    /// Finite differences, first order: the input, weights, bias, γ and β.
    func testFirstOrderFiniteDifferences() {
        var rng = SeededRNG(seed: 530)
        let x = rng.distinct([3, 2, 6, 6], spacing: 0.03), w = rng.tensor([3, 2, 3, 3], -0.5, 0.5)
        let b = rng.tensor([3], -0.1, 0.1), gamma = rng.tensor([3], 0.6, 1.4), beta = rng.tensor([3], 0.5, 1)
        // β well above zero keeps most values away from ReLU's kink; x, w and b on the kink-free side too.
        checkGradients("convBatchNormMaxPoolReLU", [x, w, b, gamma, beta], wrt: [0, 1, 2, 3]) {
            Tensor.convBatchNormMaxPoolReLU($0[0], weight: $0[1], bias: $0[2], padding: 1, scale: $0[3], offset: $0[4]).output
        }
    }

    /// Second order: the Hessian-vector product through the block against finite differences of its
    /// gradient, and equal (to the bit) to the composite's.
    func testSecondOrder() {
        var rng = SeededRNG(seed: 540)
        let x = rng.distinct([3, 2, 4, 4], spacing: 0.04), w = rng.tensor([2, 2, 3, 3], -0.5, 0.5)
        let b = rng.tensor([2], -0.1, 0.1), gamma = rng.tensor([2], 0.5, 1.5), beta = rng.tensor([2])
        checkHessianVectorProduct("tanh(convBatchNormMaxPoolReLU)", [x, w, b, gamma, beta]) {
            Tensor.convBatchNormMaxPoolReLU($0[0], weight: $0[1], bias: $0[2], padding: 1, scale: $0[3], offset: $0[4])
                .output.tanh()
        }
        let p = operands([4, 3, 6, 6], outChannels: 4, bias: true, inputGradient: true, seed: 541)
        func hvp(_ f: (Operands) -> BatchNormResult) -> [[UInt32]] {
            let y = f(p).output.tanh()
            let g = gradients(of: (y * reductionWeights(y.shape, seed: 8)).sum(), wrt: p.wanted, createGraph: true)
            var direction = SeededRNG(seed: 542)
            let dot = zip(g, p.wanted).map { gi, t in (gi * direction.tensor(t.shape)).sum() }.reduce(Tensor(0), +)
            return bits(g + gradients(of: dot, wrt: p.wanted, retainGraph: false))
        }
        XCTAssertEqual(hvp(fused), hvp(composite))
    }

    /// The convolution's backward products read a made gradient image range by image range — each image once
    /// per product, never all at once — and give the bits they give from the whole tensor: what lets the block's
    /// backward pass do without the convolution output's whole gradient.
    func testBackwardProductsReadMadeGradientsByRanges() {
        var rng = SeededRNG(seed: 550)
        let x = rng.tensor([40, 16, 28, 28]), w = rng.tensor([16, 16, 3, 3], -0.3, 0.3)
        let grad = rng.tensor([40, 16, 28, 28])
        let g = ConvGeometry(input: x.shape, weight: w.shape, stride: 1, pad: 1)
        let imageSize = 16 * 28 * 28
        for backend in [Convolutions.Backend.openBLAS, .oneDNN] {
            Convolutions.use(backend)
            Convolutions.oneDNNMinimumChannels = 1
            for threads in [1, 2] {
                ComputeThreads.set(threads)
                let lock = NSLock()
                var largest = 0, made = 0
                let source = ConvOutputGradient.images { first, count, into in
                    lock.withLock { largest = max(largest, count); made += count }
                    grad.withPointer { into.update(from: $0 + first * imageSize, count: count * imageSize) }
                }
                let input = convInputGradientValues(source, w, g)
                XCTAssertEqual(made, 40, "\(backend): the input gradient made \(made) images")
                made = 0
                var biasFromRanges = [Float](repeating: 0, count: 16), biasFromWhole = biasFromRanges
                let weights = biasFromRanges.withUnsafeMutableBufferPointer {
                    convWeightGradientValues(x, source, g, biasGradient: $0.baseAddress!)
                }
                XCTAssertEqual(made, 40, "\(backend): the weight gradient made \(made) images")
                XCTAssertLessThan(largest, 20, "\(backend): a range of \(largest) images")
                let (wholeInput, wholeWeights) = grad.withPointer { pg in
                    (convInputGradientValues(.values(pg), w, g),
                     biasFromWhole.withUnsafeMutableBufferPointer {
                         convWeightGradientValues(x, .values(pg), g, biasGradient: $0.baseAddress!)
                     })
                }
                XCTAssertEqual(input.map(\.bitPattern), wholeInput.map(\.bitPattern), "\(backend)")
                XCTAssertEqual(weights.map(\.bitPattern), wholeWeights.map(\.bitPattern), "\(backend)")
                XCTAssertEqual(biasFromRanges.map(\.bitPattern), biasFromWhole.map(\.bitPattern), "\(backend)")
            }
        }
    }
}
