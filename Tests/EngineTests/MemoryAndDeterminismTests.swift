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
