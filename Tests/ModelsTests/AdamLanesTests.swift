import XCTest
@testable import Models

/// Adam's update runs eight lanes at a time: every value must be that of the plain scalar formula, bit for bit.
final class AdamLanesTests: XCTestCase {
    func testLanesEqualTheScalarFormula() {
        var seed: UInt64 = 7
        func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 997
        }
        for (n, rule) in [(37, Adam()), (8, Adam(beta1: 0, weightDecay: 0.01)), (5, Adam(epsilon: 1e-6)), (64, Adam(beta1: 0.5, beta2: 0.9))] {
            var value = (0..<n).map { _ in next() }
            let gradient = (0..<n).map { _ in next() }
            var m = (0..<n).map { _ in next() }, v = (0..<n).map { _ in abs(next()) }
            var expectedValue = value, expectedM = m, expectedV = v
            let t = 3, lr: Float = 0.01
            // The formula, scalar.
            let c1 = 1 - Foundation.pow(rule.beta1, Float(t)), c2 = 1 - Foundation.pow(rule.beta2, Float(t))
            for i in 0..<n {
                let g = gradient[i] + rule.weightDecay * expectedValue[i]
                expectedM[i] = rule.beta1 * expectedM[i] + (1 - rule.beta1) * g
                expectedV[i] = rule.beta2 * expectedV[i] + (1 - rule.beta2) * g * g
                expectedValue[i] -= lr * (expectedM[i] / c1) / ((expectedV[i] / c2).squareRoot() + rule.epsilon)
            }
            var state = [m, v]
            value.withUnsafeMutableBufferPointer { pv in
                gradient.withUnsafeBufferPointer { pg in rule.update(value: pv, gradient: pg, state: &state, step: t, learningRate: lr) }
            }
            (m, v) = (state[0], state[1])
            XCTAssertEqual(value.map(\.bitPattern), expectedValue.map(\.bitPattern), "n = \(n)")
            XCTAssertEqual(m.map(\.bitPattern), expectedM.map(\.bitPattern), "n = \(n)")
            XCTAssertEqual(v.map(\.bitPattern), expectedV.map(\.bitPattern), "n = \(n)")
        }
    }
}
