import XCTest
@testable import Engine

final class MemoryAndDeterminismTests: XCTestCase {
    private final class WeakBox {
        weak var tensor: Tensor?
        init(_ t: Tensor) { tensor = t }
    }

    /// One second-order meta-step inside a function; returns weak references to what it made.
    private func metaStep(_ net: ConvNetFixture) -> [WeakBox] {
        let theta = net.parameters.map { $0.asParameter() }
        let (support, _) = net.supportLoss(theta)
        let inner = gradients(of: support, wrt: theta, createGraph: true)
        let fast = zip(theta, inner).map { $0 - $1.scaled(by: 0.1) }
        let logits = ConvNetFixture.forward(fast, net.queryX).logits
        let loss = Tensor.crossEntropy(logits: logits, labels: net.queryY)
        let meta = gradients(of: loss, wrt: theta)
        XCTAssertTrue(meta.allSatisfy { $0.scalars.allSatisfy { $0.isFinite } })
        return [WeakBox(loss), WeakBox(logits), WeakBox(support), WeakBox(theta[0]), WeakBox(fast[0]),
                WeakBox(inner[0]), WeakBox(inner[4]), WeakBox(meta[0])]
    }

    func testNothingSurvivesAMetaStep() {
        let net = ConvNetFixture(seed: 400)
        let boxes = metaStep(net)
        for (i, box) in boxes.enumerated() {
            XCTAssertNil(box.tensor, "tensor \(i) of the meta-step is still alive (a reference cycle through the tape?)")
        }
    }

    func testNothingSurvivesFirstOrderGradients() {
        weak var weakLoss: Tensor?
        weak var weakHidden: Tensor?
        do {
            var rng = SeededRNG(seed: 401)
            let x = rng.tensor([4, 3]), w = rng.tensor([2, 3]).asParameter()
            let hidden = linear(x, weight: w, bias: nil).relu()
            let loss = Tensor.crossEntropy(logits: hidden, labels: [0, 1, 1, 0])
            weakLoss = loss
            weakHidden = hidden
            _ = gradients(of: loss, wrt: [w])
        }
        XCTAssertNil(weakLoss)
        XCTAssertNil(weakHidden)
    }

    /// A backward pass with `retainGraph: false` lets go of the saved activations as it goes: an intermediate
    /// activation is freed while the loss is still held, and the gradients are the same bits as with the graph
    /// kept (the default, which keeps the activation for another pass).
    func testBackwardReleasesActivationsUnlessRetained() {
        let net = ConvNetFixture(seed: 403)
        func run(retain: Bool?) -> (grads: [[Float]], hiddenAlive: Bool, loss: Tensor) {
            weak var weakHidden: Tensor?
            let theta = net.parameters.map { $0.asParameter() }
            let loss: Tensor
            let grads: [Tensor]
            do {
                let hidden = Tensor.conv2d(net.queryX, weight: theta[0], bias: theta[1], padding: 1).relu()
                weakHidden = hidden
                let logits = hidden.reshaped([hidden.shape[0], -1]).sum(axes: [1]).reshaped([-1, 1])
                loss = (logits * logits).sum()
                grads = retain.map { gradients(of: loss, wrt: theta, retainGraph: $0) } ?? gradients(of: loss, wrt: theta)
            }
            return (grads.map(\.scalars), weakHidden != nil, loss)
        }
        let released = run(retain: false), byDefault = run(retain: nil), retained = run(retain: true)
        XCTAssertFalse(released.hiddenAlive, "the activation outlived its backward rule although the graph was released")
        XCTAssertTrue(byDefault.hiddenAlive, "by default the graph (and its activations) is kept for another pass")
        XCTAssertTrue(retained.hiddenAlive)
        XCTAssertEqual(released.grads.map { $0.map(\.bitPattern) }, byDefault.grads.map { $0.map(\.bitPattern) })
        XCTAssertEqual(released.grads.map { $0.map(\.bitPattern) }, retained.grads.map { $0.map(\.bitPattern) })
        XCTAssertEqual(released.loss.item, retained.loss.item)
        XCTAssertTrue(released.grads[0].contains { $0 != 0 })
    }

    /// A kept graph (the default) can be differentiated again, with the same result, the last time with
    /// `retainGraph: false`; so can the recorded graph of a first `createGraph` pass (Hessian-vector products).
    func testRetainedGraphCanBeDifferentiatedTwice() {
        let net = ConvNetFixture(seed: 404)
        let theta = net.parameters.map { $0.asParameter() }
        let (loss, _) = net.supportLoss(theta)
        let first = gradients(of: loss, wrt: theta)
        let second = gradients(of: loss, wrt: theta, retainGraph: false)
        XCTAssertEqual(first.map { $0.scalars.map(\.bitPattern) }, second.map { $0.scalars.map(\.bitPattern) })
        let (loss2, _) = net.supportLoss(theta)
        let g = gradients(of: loss2, wrt: theta, createGraph: true)
        let hv1 = gradients(of: (g[0] * g[0]).sum(), wrt: [theta[0]])
        let hv2 = gradients(of: (g[0] * g[0]).sum(), wrt: [theta[0]], retainGraph: false)
        XCTAssertEqual(hv1[0].scalars.map(\.bitPattern), hv2[0].scalars.map(\.bitPattern))
    }

    private func metaGradient(_ net: ConvNetFixture) -> [[Float]] {
        let theta = net.parameters.map { $0.asParameter() }
        let (loss, _) = net.metaLoss(theta, alpha: 0.1, createGraph: true)
        return gradients(of: loss, wrt: theta).map(\.scalars)
    }

    func testGradientsAreBitIdenticalAcrossRuns() {
        let net = ConvNetFixture(seed: 402)
        let first = metaGradient(net), second = metaGradient(net)
        XCTAssertEqual(first.count, second.count)
        for (a, b) in zip(first, second) {
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        }
        // First-order gradients too.
        func plain() -> [[Float]] {
            let theta = net.parameters.map { $0.asParameter() }
            return gradients(of: net.supportLoss(theta).loss, wrt: theta).map(\.scalars)
        }
        XCTAssertEqual(plain().map { $0.map(\.bitPattern) }, plain().map { $0.map(\.bitPattern) })
    }
}

/// Large matrix products are split into row parts on several threads; the split must not depend on the
/// thread count (OpenBLAS's edge kernels can give a row other bits when the rows are split differently).
final class MatmulThreadTests: XCTestCase {
    func testSameBitsOnOneAndTwoThreads() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        var rng = SeededRNG(seed: 312)
        for (m, k, n) in [(300, 400, 200), (2000, 300, 100), (1200, 64, 60), (75, 64, 5)] {
            let a = rng.tensor([m, k]), b = rng.tensor([k, n])
            ComputeThreads.set(1)
            let one = Tensor.matmul(a, b).scalars.map(\.bitPattern)
            ComputeThreads.set(2)
            let two = Tensor.matmul(a, b).scalars.map(\.bitPattern)
            ComputeThreads.set(3)
            let three = Tensor.matmul(a, b).scalars.map(\.bitPattern)
            XCTAssertTrue(one == two, "matmul \(m)×\(k)·\(k)×\(n): 1 and 2 threads differ")
            XCTAssertTrue(one == three, "matmul \(m)×\(k)·\(k)×\(n): 1 and 3 threads differ")
        }
    }
}

/// Contiguous ranges over the threads (the planes of the batch statistics and the fused block): every index
/// once, in order within a range, for any thread count; batch norm's statistics the same bits on any.
final class PlaneRangeThreadTests: XCTestCase {
    func testRangesCoverEveryIndexOnce() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        for threads in [1, 2, 3] {
            ComputeThreads.set(threads)
            for count in [0, 1, 2, 7, 64, 1000] {
                let lock = NSLock()
                var seen = [Int](repeating: 0, count: count), ranges: [Range<Int>] = []
                ComputeThreads.forEachRange(count, work: Int.max) { range in
                    lock.lock(); defer { lock.unlock() }
                    ranges.append(range)
                    for i in range { seen[i] += 1 }
                }
                XCTAssertEqual(seen, [Int](repeating: 1, count: count), "count \(count), threads \(threads)")
                XCTAssertLessThanOrEqual(ranges.count, Swift.max(1, 4 * threads), "count \(count), threads \(threads)")
                XCTAssertEqual(ranges.map(\.count).reduce(0, +), count)
            }
        }
    }

    func testBatchNormSameBitsOnOneAndThreeThreads() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        var rng = SeededRNG(seed: 314)
        // 150,528 values: above the size at which the statistics split their planes over the threads.
        let x = rng.tensor([24, 8, 28, 28], -2, 2), gamma = rng.tensor([8], 0.5, 1.5), beta = rng.tensor([8])
        func run(_ threads: Int) -> [[UInt32]] {
            ComputeThreads.set(threads)
            let r = Tensor.batchNorm(x, scale: gamma, offset: beta)
            return [r.output.scalars, r.mean, r.variance].map { $0.map(\.bitPattern) }
        }
        let one = run(1)
        XCTAssertEqual(one, run(2))
        XCTAssertEqual(one, run(3))
    }
}

/// `ComputeThreads.regionTotals`: what `Benchmarks/Probe` reports of a step's parallel regions.
final class RegionTotalsTests: XCTestCase {
    func testRegionsAreCountedWithTheirThreadsTime() {
        let saved = ComputeThreads.count
        defer { ComputeThreads.set(saved) }
        ComputeThreads.set(2)
        ComputeThreads.resetRegionTotals()
        XCTAssertEqual(ComputeThreads.regionTotals, ComputeThreads.RegionTotals())
        // Four items of at least 2 ms each; a nested map inside one item runs in order and is no region of its own.
        let values = ComputeThreads.map(4) { i -> Int in
            usleep(2_000)
            if i == 0 { return ComputeThreads.map(3) { $0 }.reduce(0, +) }
            return i
        }
        XCTAssertEqual(values, [3, 1, 2, 3])
        let totals = ComputeThreads.regionTotals
        XCTAssertEqual(totals.count, 1)
        XCTAssertGreaterThanOrEqual(totals.busyNanoseconds, 8_000_000)
        XCTAssertGreaterThanOrEqual(totals.wallNanoseconds, 4_000_000)
        XCTAssertGreaterThanOrEqual(totals.capacityNanoseconds, totals.busyNanoseconds)
        XCTAssertEqual(totals.capacityNanoseconds, 2 * totals.wallNanoseconds)
        // One thread, or a single item: no region.
        ComputeThreads.set(1)
        _ = ComputeThreads.map(4) { $0 }
        ComputeThreads.set(2)
        _ = ComputeThreads.map(1) { $0 }
        XCTAssertEqual(ComputeThreads.regionTotals, totals)
        ComputeThreads.resetRegionTotals()
        XCTAssertEqual(ComputeThreads.regionTotals.count, 0)
    }
}
