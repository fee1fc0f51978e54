import Foundation

/// Elementwise functions and their gradients.
extension Tensor {
    @inline(__always)
    private func map(_ f: (Float) -> Float) -> [Float] {
        withPointer { p in makeScalars(count) { o in for i in 0..<count { o[i] = f(p[i]) } } }
    }

    /// eˣ.
    public func exp() -> Tensor {
        record("exp", shape, map { Foundation.exp($0) }, inputs: [self]) { g, y in [g * y] }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        record("log", shape, map { Foundation.log($0) }, inputs: [self]) { g, _ in [g / self] }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        record("sqrt", shape, map { $0.squareRoot() }, inputs: [self]) { g, y in [(g / y).scaled(by: 0.5)] }
    }

    /// xᵖ for a constant exponent p.
    public func pow(_ p: Float) -> Tensor {
        if p == 1 { return self }
        let out: [Float]
        if p == 2 { out = map { $0 * $0 } } else if p == -0.5 { out = map { 1 / $0.squareRoot() } } else {
            out = map { Foundation.pow($0, p) }
        }
        return record("pow", shape, out, inputs: [self]) { g, _ in [g * self.pow(p - 1).scaled(by: p)] }
    }

    /// x².
    public func squared() -> Tensor { pow(2) }

    /// max(x, 0).
    public func relu() -> Tensor {
        record("relu", shape, map { $0 > 0 ? $0 : 0 }, inputs: [self]) { g, y in [g.masked(wherePositive: y)] }
    }

    /// g where `reference` > 0, else 0 (the gradient of ReLU; `reference` is a constant mask).
    func masked(wherePositive reference: Tensor) -> Tensor {
        let out = withPointer { pg in
            reference.withPointer { pr in
                makeScalars(count) { o in
                    // Unconditional loads, so the select vectorises.
                    for i in 0..<count { let g = pg[i]; o[i] = pr[i] > 0 ? g : 0 }
                }
            }
        }
        return record("mask", shape, out, inputs: [self]) { g, _ in [g.masked(wherePositive: reference)] }
    }

    /// 1 / (1 + e⁻ˣ).
    public func sigmoid() -> Tensor {
        let out = map { x in x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x)) }
        return record("sigmoid", shape, out, inputs: [self]) { g, y in [g * y * (1 - y)] }
    }

    /// Hyperbolic tangent.
    public func tanh() -> Tensor {
        record("tanh", shape, map { Foundation.tanh($0) }, inputs: [self]) { g, y in [g * (1 - y * y)] }
    }
}
