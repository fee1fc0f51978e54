@testable import Engine

/// A small Conv4-like network for second-order and MAML checks: two blocks of
/// [conv 3×3 (padding 1) with bias, batch norm with batch statistics, ReLU, 2×2 max-pool] with 4 channels
/// on 1×8×8 inputs, then a linear head over 3 classes.
///
/// `forward` also returns the network's *kink pattern*: the sign of every ReLU input and the window
/// position of every max-pool maximum. Two evaluations with equal patterns lie in the same smooth
/// piece of the network, so finite differences between them are free of ReLU/max-pool kinks.
struct ConvNetFixture {
    static let channels = 4, classes = 3, size = 8

    /// Parameter shapes: [w1, b1, γ1, β1, w2, b2, γ2, β2, W, b].
    static let parameterShapes: [[Int]] = [
        [channels, 1, 3, 3], [channels], [channels], [channels],
        [channels, channels, 3, 3], [channels], [channels], [channels],
        [classes, channels * (size / 4) * (size / 4)], [classes],
    ]
    static let parameterNames = ["conv1.weight", "conv1.bias", "bn1.scale", "bn1.offset",
                                 "conv2.weight", "conv2.bias", "bn2.scale", "bn2.offset",
                                 "head.weight", "head.bias"]

    let parameters: [Tensor]
    let supportX: Tensor, queryX: Tensor
    let supportY: [Int], queryY: [Int]

    init(seed: UInt64, support: Int = 3, query: Int = 6) {
        var rng = SeededRNG(seed: seed)
        var p: [Tensor] = []
        for (i, shape) in Self.parameterShapes.enumerated() {
            switch i % 4 {
            case _ where i >= 8:
                p.append(rng.tensor(shape, -0.5, 0.5))
            case 0:
                let fanIn = Float(shape[1] * 9)
                p.append(rng.tensor(shape, -1.5 / fanIn.squareRoot(), 1.5 / fanIn.squareRoot()))
            case 1: p.append(rng.tensor(shape, -0.2, 0.2))
            case 2: p.append(rng.tensor(shape, 0.7, 1.3))
            default: p.append(rng.tensor(shape, -0.3, 0.3))
            }
        }
        parameters = p
        let s = Self.size
        supportX = Tensor(shape: [support, 1, s, s], scalars: (0..<(support * s * s)).map { _ in rng.normal() })
        queryX = Tensor(shape: [query, 1, s, s], scalars: (0..<(query * s * s)).map { _ in rng.normal() })
        supportY = (0..<support).map { $0 % Self.classes }
        queryY = (0..<query).map { $0 % Self.classes }
    }

    /// Logits [N, classes] and the kink pattern.
    static func forward(_ p: [Tensor], _ x: Tensor) -> (logits: Tensor, pattern: [Int]) {
        var h = x
        var pattern: [Int] = []
        for block in 0..<2 {
            h = Tensor.conv2d(h, weight: p[4 * block], bias: p[4 * block + 1], padding: 1)
            h = Tensor.batchNorm(h, scale: p[4 * block + 2], offset: p[4 * block + 3]).output
            pattern += h.scalars.map { $0 > 0 ? 1 : 0 }
            h = h.relu()
            pattern += poolArgmax(h, 2)
            h = h.maxPool2d(2)
        }
        h = h.reshaped([h.shape[0], -1])
        return (linear(h, weight: p[8], bias: p[9]), pattern)
    }

    /// The first-maximum position inside each window of a non-overlapping max-pool (a naive loop).
    static func poolArgmax(_ x: Tensor, _ k: Int) -> [Int] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var out: [Int] = []
        for plane in 0..<(n * c) {
            for y in 0..<(h / k) {
                for xx in 0..<(w / k) {
                    var best = -Float.infinity, at = -1
                    for i in 0..<k {
                        for j in 0..<k {
                            let v = x.scalars[plane * h * w + (y * k + i) * w + xx * k + j]
                            if v > best { best = v; at = i * k + j }
                        }
                    }
                    out.append(at)
                }
            }
        }
        return out
    }

    /// Cross-entropy of the support set at parameters `p`.
    func supportLoss(_ p: [Tensor]) -> (loss: Tensor, pattern: [Int]) {
        let (logits, pattern) = Self.forward(p, supportX)
        return (Tensor.crossEntropy(logits: logits, labels: supportY), pattern)
    }

    /// The adapted parameters θ' = θ − α ∇θ L_support(θ); differentiable in θ when `createGraph`.
    func adapted(_ theta: [Tensor], alpha: Float, createGraph: Bool) -> (params: [Tensor], pattern: [Int]) {
        let (loss, pattern) = supportLoss(theta)
        let g = gradients(of: loss, wrt: theta, createGraph: createGraph)
        return (zip(theta, g).map { $0 - $1.scaled(by: alpha) }, pattern)
    }

    /// The post-adaptation query loss L(θ) = CE(query; θ − α ∇θ CE(support; θ)), and the kink pattern of
    /// both forward passes. `theta` must be parameters (leaves requiring gradients).
    func metaLoss(_ theta: [Tensor], alpha: Float, createGraph: Bool) -> (loss: Tensor, pattern: [Int]) {
        let (fast, supportPattern) = adapted(theta, alpha: alpha, createGraph: createGraph)
        let (logits, queryPattern) = Self.forward(fast, queryX)
        return (Tensor.crossEntropy(logits: logits, labels: queryY), supportPattern + queryPattern)
    }
}
