import XCTest
@testable import Engine

/// Finite-difference checks of the engine's gradients (first order) and Hessian-vector products (second order).
///
/// The engine computes in float32, so:
/// - every function under test is reduced to a scalar as a fixed random weighted sum `Σ rᵢ yᵢ` of its outputs
///   (every output element matters, and no symmetric cancellation hides an error);
/// - perturbed evaluations are accumulated in Double;
/// - the step is scaled to the magnitude of the perturbed value;
/// - an element passes when |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|).
enum GradCheck {
    /// Relative tolerance of every finite-difference comparison in this suite.
    static let rtol = 2e-2
    /// Absolute tolerance of every finite-difference comparison in this suite.
    static let atol = 1e-3
    /// Central-difference step for first-order checks: h = step · max(1, |x|).
    static let step = 1e-2
    /// Step along the direction v for Hessian-vector products: (∇f(x + εv) − ∇f(x − εv)) / 2ε.
    static let hvpStep = 2e-3
}

/// SplitMix64: a tiny seeded generator, so every test sees the same "random" values on every run.
struct SeededRNG {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x1234_5678 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }

    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(unit()) }

    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Float {
        let u1 = max(unit(), 1e-12), u2 = unit()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    mutating func shuffled<T>(_ a: [T]) -> [T] {
        var a = a
        if a.count < 2 { return a }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, int(i + 1)) }
        return a
    }

    /// Uniform values in [lo, hi).
    mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<n).map { _ in uniform(lo, hi) })
    }

    /// Values of random sign with magnitude in [minAbs, maxAbs): away from 0 (no ReLU kink).
    mutating func awayFromZero(_ shape: [Int], minAbs: Float = 0.1, maxAbs: Float = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<n).map { _ in
            let m = uniform(minAbs, maxAbs)
            return next() & 1 == 0 ? m : -m
        })
    }

    /// Distinct values spaced `spacing` apart (a random permutation of a symmetric grid that skips 0), so that
    /// maxima have no ties and nothing lies within spacing/2 of 0: no kink for max, max-pool or ReLU
    /// when perturbations stay below spacing/2.
    mutating func distinct(_ shape: [Int], spacing: Float = 0.05) -> Tensor {
        let n = shape.reduce(1, *)
        let grid = (0..<n).map { (Float($0 - n / 2) + 0.5) * spacing }
        return Tensor(shape: shape, scalars: shuffled(grid))
    }

    /// Labels in 0..<classes.
    mutating func labels(_ count: Int, classes: Int) -> [Int] { (0..<count).map { _ in int(classes) } }
}

/// The outcome of comparing analytic values with numeric estimates.
struct Comparison {
    var worstRatio = 0.0  // max over elements of |a − n| / (atol + rtol · max(|a|, |n|)); ≤ 1 passes
    var worstDescription = "none"
    var failures = 0
    var checked = 0
    var maxAbsNumeric = 0.0

    var passed: Bool { failures == 0 }

    mutating func add(_ analytic: Double, _ numeric: Double, rtol: Double, atol: Double, _ label: @autoclosure () -> String) {
        checked += 1
        maxAbsNumeric = max(maxAbsNumeric, abs(numeric))
        let bound = atol + rtol * max(abs(analytic), abs(numeric))
        let ratio = analytic.isFinite && numeric.isFinite ? abs(analytic - numeric) / bound : .infinity
        if ratio > 1 { failures += 1 }
        if checked == 1 || ratio > worstRatio {
            worstRatio = ratio
            worstDescription = "\(label()): analytic \(analytic), numeric \(numeric)"
        }
    }

    func assertPassed(_ name: String, file: StaticString, line: UInt) {
        XCTAssertGreaterThan(checked, 0, "\(name): nothing was compared", file: file, line: line)
        XCTAssertTrue(passed, "\(name): \(failures) of \(checked) elements outside tolerance "
                      + "(rtol \(GradCheck.rtol), atol \(GradCheck.atol)); worst (ratio \(worstRatio)): \(worstDescription)",
                      file: file, line: line)
    }
}

/// Fixed random weights for the scalar reduction of an output of `shape`: magnitudes in [0.5, 1.5), random signs.
func reductionWeights(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SeededRNG(seed: seed ^ 0xABCD_EF01)
    return rng.awayFromZero(shape, minAbs: 0.5, maxAbs: 1.5)
}

/// Σ rᵢ yᵢ accumulated in Double, from a constant evaluation of `f`.
private func weightedSum(_ f: ([Tensor]) -> Tensor, _ inputs: [Tensor], _ weights: Tensor) -> Double {
    let y = withoutGradients { f(inputs) }
    precondition(y.shape == weights.shape, "output shape changed under perturbation")
    var s = 0.0
    for (a, r) in zip(y.scalars, weights.scalars) { s += Double(a) * Double(r) }
    return s
}

/// A copy of `t` (a constant) with element `i` set to `value`.
func replacing(_ t: Tensor, _ i: Int, _ value: Float) -> Tensor {
    var s = t.scalars
    s[i] = value
    return Tensor(shape: t.shape, scalars: s)
}

/// Compares `gradients(of: Σ r·f(x), wrt: x)` with central differences, for each input listed in `wrt`
/// (all inputs when nil). Inputs are given as values; the checker makes them parameters itself.
func gradientComparison(_ inputs: [Tensor], wrt: [Int]? = nil, seed: UInt64 = 7,
                        step: Double = GradCheck.step, rtol: Double = GradCheck.rtol, atol: Double = GradCheck.atol,
                        _ f: ([Tensor]) -> Tensor) -> Comparison {
    let constants = inputs.map { $0.detached() }
    let output = withoutGradients { f(constants) }
    let weights = reductionWeights(output.shape, seed: seed)
    let params = constants.map { $0.asParameter() }
    let loss = (f(params) * weights).sum()
    let indices = wrt ?? Array(inputs.indices)
    let grads = gradients(of: loss, wrt: indices.map { params[$0] })
    var result = Comparison()
    for (k, g) in zip(indices, grads) {
        guard g.shape == inputs[k].shape else {
            result.failures += 1
            result.worstDescription = "input \(k): gradient shape \(g.shape), input shape \(inputs[k].shape)"
            result.worstRatio = .infinity
            continue
        }
        for i in 0..<inputs[k].count {
            let x = Double(constants[k].scalars[i])
            let h = step * max(1, abs(x))
            let xp = Float(x + h), xm = Float(x - h)
            var plus = constants, minus = constants
            plus[k] = replacing(constants[k], i, xp)
            minus[k] = replacing(constants[k], i, xm)
            let numeric = (weightedSum(f, plus, weights) - weightedSum(f, minus, weights)) / (Double(xp) - Double(xm))
            result.add(Double(g.scalars[i]), numeric, rtol: rtol, atol: atol, "input \(k) element \(i) \(multiIndex(i, inputs[k].shape))")
        }
    }
    return result
}

/// Asserts that the analytic gradients of `f` match central differences (see `gradientComparison`).
func checkGradients(_ name: String, _ inputs: [Tensor], wrt: [Int]? = nil, seed: UInt64 = 7,
                    file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
    gradientComparison(inputs, wrt: wrt, seed: seed, f).assertPassed(name, file: file, line: line)
}

/// Compares the Hessian-vector product of F(x) = Σ r·f(x) along a random direction v, computed by
/// differentiating ⟨∇F(x), v⟩ (with `createGraph: true`), against (∇F(x + εv) − ∇F(x − εv)) / 2ε from
/// first-order gradients. All inputs listed in `wrt` move together, so cross terms are covered.
/// Also checks that the gradients taken with `createGraph: true` equal those taken without.
func hvpComparison(_ inputs: [Tensor], wrt: [Int]? = nil, seed: UInt64 = 11, eps: Double = GradCheck.hvpStep,
                   directions: [Tensor]? = nil, _ f: ([Tensor]) -> Tensor) -> (hvp: Comparison, firstOrder: Comparison) {
    let constants = inputs.map { $0.detached() }
    let output = withoutGradients { f(constants) }
    let weights = reductionWeights(output.shape, seed: seed)
    let indices = wrt ?? Array(inputs.indices)
    var rng = SeededRNG(seed: seed ^ 0x5555)
    let v = directions ?? indices.map { rng.tensor(inputs[$0].shape, -1, 1) }

    // First-order gradient of F at the given values (constants).
    func gradient(at values: [Tensor]) -> [Tensor] {
        let params = values.map { $0.asParameter() }
        let loss = (f(params) * weights).sum()
        return gradients(of: loss, wrt: indices.map { params[$0] })
    }

    // Analytic HVP through createGraph.
    let params = constants.map { $0.asParameter() }
    let loss = (f(params) * weights).sum()
    let wanted = indices.map { params[$0] }
    let g = gradients(of: loss, wrt: wanted, createGraph: true)
    var inner: Tensor? = nil
    for (gk, vk) in zip(g, v) {
        let term = (gk * vk).sum()
        inner = inner.map { $0 + term } ?? term
    }
    let hv = gradients(of: inner!, wrt: wanted)

    // createGraph must not change the first-order values.
    var firstOrder = Comparison()
    let plain = gradient(at: constants)
    for (k, (a, b)) in zip(g, plain).enumerated() {
        for i in 0..<a.count {
            firstOrder.add(Double(a.scalars[i]), Double(b.scalars[i]), rtol: 1e-4, atol: 1e-5, "gradient \(k) element \(i)")
        }
    }

    // Numeric HVP from differences of first-order gradients.
    var plus = constants, minus = constants
    for (j, k) in indices.enumerated() {
        plus[k] = displaced([constants[k]], [v[j]], eps)[0]
        minus[k] = displaced([constants[k]], [v[j]], -eps)[0]
    }
    let gp = gradient(at: plus), gm = gradient(at: minus)
    var result = Comparison()
    for (j, k) in indices.enumerated() {
        for i in 0..<inputs[k].count {
            let numeric = (Double(gp[j].scalars[i]) - Double(gm[j].scalars[i])) / (2 * eps)
            result.add(Double(hv[j].scalars[i]), numeric, rtol: GradCheck.rtol, atol: GradCheck.atol,
                       "input \(k) element \(i) \(multiIndex(i, inputs[k].shape))")
        }
    }
    return (result, firstOrder)
}

/// Asserts that Hessian-vector products match differences of gradients (see `hvpComparison`), and that the
/// product is not trivially zero unless `allowZero`.
func checkHessianVectorProduct(_ name: String, _ inputs: [Tensor], wrt: [Int]? = nil, seed: UInt64 = 11,
                               allowZero: Bool = false, file: StaticString = #filePath, line: UInt = #line,
                               _ f: ([Tensor]) -> Tensor) {
    let (hvp, firstOrder) = hvpComparison(inputs, wrt: wrt, seed: seed, f)
    firstOrder.assertPassed("\(name) (createGraph first-order values)", file: file, line: line)
    hvp.assertPassed("\(name) (Hessian-vector product)", file: file, line: line)
    if !allowZero {
        XCTAssertGreaterThan(hvp.maxAbsNumeric, 1e-2, "\(name): Hessian-vector product is (nearly) zero; the check is vacuous",
                             file: file, line: line)
    }
}

/// The multi-index of flat position i in `shape` (for failure messages).
func multiIndex(_ i: Int, _ shape: [Int]) -> [Int] {
    var rest = i
    var index = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
        index[d] = rest % shape[d]
        rest /= shape[d]
    }
    return index
}

/// Asserts two float arrays are equal within a tolerance (for forward checks against naive loops).
func assertClose(_ actual: [Float], _ expected: [Double], rtol: Double = 1e-5, atol: Double = 1e-5, _ name: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(name): \(actual.count) values, expected \(expected.count)", file: file, line: line)
    var worst = 0.0, worstIndex = -1
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let diff = abs(Double(a) - e)
        let ratio = diff == 0 ? 0 : diff / (atol + rtol * abs(e))
        if !(ratio <= worst) { worst = ratio; worstIndex = i }
    }
    XCTAssertLessThanOrEqual(worst, 1, "\(name): worst element \(worstIndex): \(worstIndex >= 0 ? "\(actual[worstIndex]) vs \(expected[worstIndex])" : "")",
                             file: file, line: line)
}

/// Constants x + s·v, computed in Double and rounded once.
func displaced(_ x: [Tensor], _ v: [Tensor], _ s: Double) -> [Tensor] {
    var out: [Tensor] = []
    for (a, d) in zip(x, v) {
        var values = [Float](repeating: 0, count: a.count)
        for i in 0..<a.count { values[i] = Float(Double(a.scalars[i]) + s * Double(d.scalars[i])) }
        out.append(Tensor(shape: a.shape, scalars: values))
    }
    return out
}
