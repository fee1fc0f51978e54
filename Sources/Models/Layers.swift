import Engine

/// Per-channel statistics of one batch-norm layer.
public struct ChannelStatistics: Equatable, Sendable {
    public var mean: [Float]
    public var variance: [Float]
    public init(mean: [Float], variance: [Float]) {
        self.mean = mean
        self.variance = variance
    }
}

/// Where batch-norm layers take their statistics from.
public enum NormalizationMode: Equatable {
    /// The statistics of the batch being normalised (training mode; transductive at test time).
    case batch
    /// Given statistics, one entry per batch-norm layer in order (running averages, or a support set's).
    case given([ChannelStatistics])
}

/// Functional layers: each reads its parameters from a `Parameters` tree by name, so fast weights can be
/// substituted for a model's own.
public enum Layers {
    /// x · Wᵀ + b with `prefix.weight` [out × in] and `prefix.bias` [out].
    public static func linear(_ x: Tensor, _ p: Parameters, _ prefix: String) -> Tensor {
        Engine.linear(x, weight: p.require(prefix + ".weight"), bias: p[prefix + ".bias"])
    }

    /// Convolution with `prefix.weight` [O, C, k, k] and optional `prefix.bias` [O].
    public static func conv(_ x: Tensor, _ p: Parameters, _ prefix: String, stride: Int = 1, padding: Int = 1) -> Tensor {
        Tensor.conv2d(x, weight: p.require(prefix + ".weight"), bias: p[prefix + ".bias"], stride: stride, padding: padding)
    }

    /// Batch norm with `prefix.weight` (γ) and `prefix.bias` (β); returns the output and the batch
    /// statistics used (nil when given statistics were used).
    public static func batchNorm(_ x: Tensor, _ p: Parameters, _ prefix: String, statistics: ChannelStatistics?,
                                 epsilon: Float = 1e-5) -> (Tensor, ChannelStatistics?) {
        let gamma = p.require(prefix + ".weight"), beta = p.require(prefix + ".bias")
        if let statistics {
            return (Tensor.batchNorm(x, scale: gamma, offset: beta, mean: statistics.mean,
                                     variance: statistics.variance, epsilon: epsilon), nil)
        }
        let r = Tensor.batchNorm(x, scale: gamma, offset: beta, epsilon: epsilon)
        return (r.output, ChannelStatistics(mean: r.mean, variance: r.variance))
    }
}
