import XCTest
@testable import Engine

/// The exact one-step MAML meta-gradient of a small Conv4-like network against central differences of the
/// post-adaptation query loss L(θ) = CE(query; θ − α ∇θ CE(support; θ)).
final class MAMLMetaGradientTests: XCTestCase {
    static let alpha: Float = 0.1

    func testSecondOrderMetaGradientMatchesFiniteDifferences() { Self.checkSecondOrderMetaGradient() }

    static func checkSecondOrderMetaGradient() {
        let net = ConvNetFixture(seed: 200)
        let alpha = Self.alpha

        // Analytic meta-gradient: differentiate through the inner gradient step.
        let theta = net.parameters.map { $0.asParameter() }
        let (loss, basePattern) = net.metaLoss(theta, alpha: alpha, createGraph: true)
        let meta = gradients(of: loss, wrt: theta)

        // First-order approximation: the query gradient at the adapted weights, treated as constants.
        let (fast, _) = net.adapted(theta, alpha: alpha, createGraph: false)
        let fastLeaves = fast.map { $0.detached().asParameter() }
        let firstOrder = gradients(of: Tensor.crossEntropy(logits: ConvNetFixture.forward(fastLeaves, net.queryX).logits,
                                                           labels: net.queryY), wrt: fastLeaves)

        func value(_ p: [Tensor]) -> (Double, [Int]) {
            let (l, pattern) = net.metaLoss(p.map { $0.asParameter() }, alpha: alpha, createGraph: false)
            return (Double(l.item), pattern)
        }

        var exact = Comparison(), approx = Comparison()
        var skipped = 0, total = 0
        let step = 1e-3
        for (k, p) in net.parameters.enumerated() {
            XCTAssertEqual(meta[k].shape, p.shape)
            for i in 0..<p.count {
                total += 1
                let x = Double(p.scalars[i])
                let h = step * max(1, abs(x))
                let xp = Float(x + h), xm = Float(x - h)
                var plus = net.parameters, minus = net.parameters
                plus[k] = replacing(p, i, xp)
                minus[k] = replacing(p, i, xm)
                let (lp, pp) = value(plus), (lm, pm) = value(minus)
                // Skip coordinates whose ±h evaluations straddle a ReLU or max-pool kink (in the support
                // pass or the query pass): L's inner gradient jumps there, and differences are meaningless.
                if pp != basePattern || pm != basePattern { skipped += 1; continue }
                let numeric = (lp - lm) / (Double(xp) - Double(xm))
                let label = "\(ConvNetFixture.parameterNames[k]) \(multiIndex(i, p.shape))"
                exact.add(Double(meta[k].scalars[i]), numeric, rtol: GradCheck.rtol, atol: GradCheck.atol, label)
                approx.add(Double(firstOrder[k].scalars[i]), numeric, rtol: GradCheck.rtol, atol: GradCheck.atol, label)
            }
        }
        XCTAssertLessThanOrEqual(skipped, total / 5, "too many coordinates near kinks: \(skipped) of \(total)")
        exact.assertPassed("MAML meta-gradient (\(skipped) of \(total) kink coordinates skipped)", file: #filePath, line: #line)
        XCTAssertGreaterThan(exact.maxAbsNumeric, 1e-2, "meta-gradient is (nearly) zero; the check is vacuous")

        // The first-order approximation must be measurably different from the exact meta-gradient.
        XCTAssertFalse(approx.passed, "the first-order approximation matches the finite differences: no second-order term")
        XCTAssertGreaterThan(approx.worstRatio, 5, "first-order approximation is too close to the exact meta-gradient")
        var maxDifference: Float = 0
        for (a, b) in zip(meta, firstOrder) {
            for (u, v) in zip(a.scalars, b.scalars) { maxDifference = max(maxDifference, abs(u - v)) }
        }
        XCTAssertGreaterThan(maxDifference, 1e-2, "exact and first-order meta-gradients coincide")
    }
}
