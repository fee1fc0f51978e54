import Engine

/// Weight initialisations, drawn from any seeded generator so a seed fixes a model.
public enum Initializer {
    /// A uniform float in [0, 1) from 24 random bits.
    @inline(__always)
    static func unit<G: RandomNumberGenerator>(_ rng: inout G) -> Float {
        Float(rng.next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// U(−bound, bound) values for `shape`.
    public static func uniform<G: RandomNumberGenerator>(_ shape: [Int], bound: Float, using rng: inout G) -> Tensor {
        let n = shape.reduce(1, *)
        var v = [Float](repeating: 0, count: n)
        for i in 0..<n { v[i] = (2 * unit(&rng) - 1) * bound }
        return Tensor(shape: shape, scalars: v, requiresGrad: true)
    }

    /// PyTorch's default for `Conv2d` and `Linear`: weights and biases U(−1/√fan_in, 1/√fan_in)
    /// (kaiming-uniform with a = √5).
    public static func pytorchDefault<G: RandomNumberGenerator>(weight shape: [Int], fanIn: Int, using rng: inout G) -> (Tensor, Tensor) {
        let bound = 1 / Float(fanIn).squareRoot()
        return (uniform(shape, bound: bound, using: &rng), uniform([shape[0]], bound: bound, using: &rng))
    }

    /// Xavier/Glorot uniform: U(−√(6/(fan_in+fan_out)), …).
    public static func xavierUniform<G: RandomNumberGenerator>(_ shape: [Int], fanIn: Int, fanOut: Int, using rng: inout G) -> Tensor {
        uniform(shape, bound: (6 / Float(fanIn + fanOut)).squareRoot(), using: &rng)
    }
}
