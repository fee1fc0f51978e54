import Foundation

/// The distributions behind the paired comparisons and the between-seed intervals: Student's t (tail
/// probability and quantile), the two-sided sign test, and Holm's step-down correction.
extension Statistics {
    /// Half-width of the 95% confidence interval of the mean from the t distribution:
    /// t(0.975, n − 1)·σ/√n (σ the sample standard deviation); nil for fewer than two values.
    public static func tInterval95(_ values: [Double]) -> Double? {
        guard values.count > 1 else { return nil }
        let n = Double(values.count)
        return tQuantile(0.975, degreesOfFreedom: n - 1) * sampleStandardDeviation(values) / n.squareRoot()
    }

    /// The regularized incomplete beta function I_x(a, b) (a, b > 0, x in [0, 1]), evaluated by its continued
    /// fraction (modified Lentz), on the side x < (a + 1)/(a + b + 2) where it converges fast, and through
    /// I_x(a, b) = 1 − I_{1−x}(b, a) on the other.
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * betaContinuedFraction(x, a: a, b: b) / a
        }
        return 1 - exp(logFront) * betaContinuedFraction(1 - x, a: b, b: a) / b
    }

    /// The continued fraction of I_x(a, b): 1/(1 + d₁/(1 + d₂/(1 + …))) with
    /// d₂ₘ₊₁ = −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1)) and d₂ₘ = m(b − m)x / ((a + 2m − 1)(a + 2m)).
    static func betaContinuedFraction(_ x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        func guarded(_ value: Double) -> Double { abs(value) < tiny ? tiny : value }
        var c = 1.0
        var d = 1 / guarded(1 - (a + b) * x / (a + 1))
        var result = d
        for step in 1...200_000 {
            let m = Double(step)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 / guarded(1 + even * d)
            c = guarded(1 + even / c)
            result *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 / guarded(1 + odd * d)
            c = guarded(1 + odd / c)
            let factor = d * c
            result *= factor
            if abs(factor - 1) < 1e-15 { break }
        }
        return result
    }

    /// P(|T| ≥ t) for Student's t with `degreesOfFreedom` (> 0): I_{ν/(ν+t²)}(ν/2, 1/2).
    public static func tTwoSidedTail(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? 1 : 0 }
        let t2 = t * t
        guard t2 > 0 else { return 1 }
        // ν/(ν + t²) loses the tail's precision when t² ≪ ν; t²/(ν + t²) = 1 − x keeps it.
        let oneMinusX = t2 / (nu + t2)
        let x = nu / (nu + t2)
        if x < (nu / 2 + 1) / (nu / 2 + 2.5) {
            return min(1, max(0, regularizedIncompleteBeta(x, a: nu / 2, b: 0.5)))
        }
        return min(1, max(0, 1 - regularizedIncompleteBeta(oneMinusX, a: 0.5, b: nu / 2)))
    }

    /// The p-quantile of Student's t with `degreesOfFreedom` (> 0), for p in (0, 1): found by bisection on the
    /// two-sided tail, to 1e-12 relative.
    public static func tQuantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
        guard p > 0, p < 1, nu > 0 else { return .nan }
        if p < 0.5 { return -tQuantile(1 - p, degreesOfFreedom: nu) }
        if p == 0.5 { return 0 }
        let tail = 2 * (1 - p)
        var low = 0.0, high = 2.0
        while tTwoSidedTail(high, degreesOfFreedom: nu) > tail && high < 1e300 { high *= 2 }
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if tTwoSidedTail(middle, degreesOfFreedom: nu) > tail { low = middle } else { high = middle }
            if high - low <= 1e-12 * high { break }
        }
        return (low + high) / 2
    }

    /// The two-sided sign test of `positives` against `negatives` (ties left out): 2·P(X ≤ min) for
    /// X ~ Binomial(positives + negatives, 1/2), at most 1; 1 when there is nothing to count.
    public static func signTestP(positives: Int, negatives: Int) -> Double {
        let m = positives + negatives
        let k = min(positives, negatives)
        guard m > 0, positives >= 0, negatives >= 0 else { return 1 }
        // P(X ≤ k) = I_{1/2}(m − k, k + 1).
        let lower = regularizedIncompleteBeta(0.5, a: Double(m - k), b: Double(k + 1))
        return min(1, 2 * lower)
    }

    /// Holm's step-down adjusted p-values, in the order given: with p₍₁₎ ≤ … ≤ p₍ₘ₎,
    /// p̃₍ᵢ₎ = maxⱼ≤ᵢ min(1, (m − j + 1)·p₍ⱼ₎). Rejecting where p̃ < α controls the family-wise error at α.
    public static func holmAdjusted(_ p: [Double]) -> [Double] {
        let m = p.count
        let order = p.indices.sorted { p[$0] != p[$1] ? p[$0] < p[$1] : $0 < $1 }
        var adjusted = [Double](repeating: 1, count: m)
        var running = 0.0
        for (rank, index) in order.enumerated() {
            running = max(running, min(1, Double(m - rank) * p[index]))
            adjusted[index] = running
        }
        return adjusted
    }
}
