import Engine

/// The output of a model's forward pass.
public struct ForwardResult {
    /// Logits (with a head) or embeddings (without).
    public let output: Tensor
    /// The flattened backbone features (before the head).
    public let features: Tensor
    /// Batch statistics of each batch-norm layer when they were computed from the batch.
    public let statistics: [ChannelStatistics]
}

/// A model that runs with substituted parameters.
public protocol FunctionalModel: AnyObject {
    /// The model's own parameters.
    var parameters: Parameters { get set }
    /// Forward pass with `parameters` (fast weights or the model's own), never mutating the model.
    func forward(_ x: Tensor, parameters: Parameters, normalization: NormalizationMode) -> ForwardResult
}

extension FunctionalModel {
    /// Forward pass with the model's own parameters and batch statistics.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        forward(x, parameters: parameters, normalization: .batch).output
    }
}

/// The Conv4 backbone of the few-shot literature: 4 × [conv 3×3, batch norm, ReLU, 2×2 max-pool]
/// (Vinyals et al. 2016; Snell et al. 2017; Finn et al. 2017), optionally followed by a linear head.
///
/// The `.strided` variant replaces pooling by stride-2 convolutions (MAML's Omniglot model).
/// Parameter names: `block{i}.conv.weight|bias`, `block{i}.bn.weight|bias`, `head.weight|bias`.
public final class Conv4: FunctionalModel {
    public enum Downsampling: String, Sendable { case maxPool, strided }

    public var parameters: Parameters
    public let inputChannels: Int
    public let width: Int
    public let imageSize: (height: Int, width: Int)
    public let downsampling: Downsampling
    public let classes: Int?
    /// Flattened feature size after the four blocks.
    public let featureCount: Int
    /// Running batch-norm statistics (momentum 0.1, as PyTorch), updated by `updateRunningStatistics`.
    public var runningStatistics: [ChannelStatistics]

    /// - Parameters: width 64 or 32 (any ≥ 1); `classes` adds a linear head; `rng` fixes initialisation
    ///   (PyTorch's defaults: U(±1/√fan_in) for convolution and linear weights and biases, γ = 1, β = 0).
    public init<G: RandomNumberGenerator>(inputChannels: Int, imageHeight: Int, imageWidth: Int, width: Int = 64,
                                          downsampling: Downsampling = .maxPool, classes: Int? = nil,
                                          convBias: Bool = true, using rng: inout G) {
        self.inputChannels = inputChannels
        self.width = width
        self.imageSize = (imageHeight, imageWidth)
        self.downsampling = downsampling
        self.classes = classes
        var p = Parameters()
        var c = inputChannels
        var h = imageHeight, w = imageWidth
        for i in 1...4 {
            let (weight, bias) = Initializer.pytorchDefault(weight: [width, c, 3, 3], fanIn: c * 9, using: &rng)
            p["block\(i).conv.weight"] = weight
            if convBias { p["block\(i).conv.bias"] = bias }
            p["block\(i).bn.weight"] = Tensor(shape: [width], scalars: .init(repeating: 1, count: width), requiresGrad: true)
            p["block\(i).bn.bias"] = Tensor(shape: [width], scalars: .init(repeating: 0, count: width), requiresGrad: true)
            c = width
            switch downsampling {
            case .maxPool: h /= 2; w /= 2
            case .strided: h = (h + 2 - 3) / 2 + 1; w = (w + 2 - 3) / 2 + 1
            }
        }
        featureCount = width * max(h, 0) * max(w, 0)
        if let classes {
            let (weight, bias) = Initializer.pytorchDefault(weight: [classes, featureCount], fanIn: featureCount, using: &rng)
            p["head.weight"] = weight
            p["head.bias"] = bias
        }
        parameters = p
        runningStatistics = (0..<4).map { _ in
            ChannelStatistics(mean: .init(repeating: 0, count: width), variance: .init(repeating: 1, count: width))
        }
    }

    public func forward(_ x: Tensor, parameters p: Parameters, normalization: NormalizationMode) -> ForwardResult {
        var h = x
        var stats: [ChannelStatistics] = []
        for i in 1...4 {
            let prefix = "block\(i)"
            let given: ChannelStatistics?
            if case .given(let all) = normalization { given = all[i - 1] } else { given = nil }
            if let given, downsampling == .maxPool {
                // Given (running) statistics: convolution, batch norm, max-pool and ReLU in one pass, each
                // image's convolution output pooled while in cache (their composite when gradients are
                // recorded).
                h = Tensor.convBatchNormMaxPoolReLU(h, weight: p.require(prefix + ".conv.weight"),
                                                    bias: p[prefix + ".conv.bias"], padding: 1,
                                                    scale: p.require(prefix + ".bn.weight"),
                                                    offset: p.require(prefix + ".bn.bias"),
                                                    mean: given.mean, variance: given.variance)
                continue
            }
            if given == nil && downsampling == .maxPool {
                // Batch statistics: convolution, then batch norm → ReLU → max-pool fused (relu∘pool = pool∘relu),
                // one operation whose backward pass never holds the convolution output's whole gradient.
                let r = Tensor.convBatchNormMaxPoolReLU(h, weight: p.require(prefix + ".conv.weight"),
                                                        bias: p[prefix + ".conv.bias"], padding: 1,
                                                        scale: p.require(prefix + ".bn.weight"),
                                                        offset: p.require(prefix + ".bn.bias"))
                stats.append(ChannelStatistics(mean: r.mean, variance: r.variance))
                h = r.output
                continue
            }
            h = Layers.conv(h, p, prefix + ".conv", stride: downsampling == .strided ? 2 : 1, padding: 1)
            let (y, s) = Layers.batchNorm(h, p, prefix + ".bn", statistics: given)
            if let s { stats.append(s) }
            // relu(maxpool(y)) equals maxpool(relu(y)), values and gradients, at a quarter of the cost.
            h = downsampling == .maxPool ? y.maxPool2d(2).relu() : y.relu()
        }
        let features = h.reshaped([x.shape[0], -1])
        let output = p["head.weight"] != nil ? Layers.linear(features, p, "head") : features
        return ForwardResult(output: output, features: features, statistics: stats)
    }

    /// Folds batch statistics of `count` images into the running averages: r ← (1 − m)·r + m·s, with the
    /// unbiased variance over the n = count × height × width values each channel of a layer normalises
    /// (torch's `BatchNorm2d`).
    public func updateRunningStatistics(_ batch: [ChannelStatistics], count: Int, momentum: Float = 0.1) {
        guard batch.count == runningStatistics.count else { return }
        var (h, w) = imageSize
        for i in 0..<batch.count {
            if downsampling == .strided { h = (h - 1) / 2 + 1; w = (w - 1) / 2 + 1 }
            let n = Double(count) * Double(h) * Double(w)
            let correction = n > 1 ? Float(n / (n - 1)) : 1
            if downsampling == .maxPool { h /= 2; w /= 2 }
            for c in 0..<width {
                runningStatistics[i].mean[c] = (1 - momentum) * runningStatistics[i].mean[c] + momentum * batch[i].mean[c]
                runningStatistics[i].variance[c] = (1 - momentum) * runningStatistics[i].variance[c]
                    + momentum * batch[i].variance[c] * correction
            }
        }
    }
}

/// A multi-layer perceptron: linear layers with ReLU between them (`layer{i}.weight|bias`).
public final class MLP: FunctionalModel {
    public var parameters: Parameters
    public let sizes: [Int]

    /// `sizes` = [input, hidden…, output].
    public init<G: RandomNumberGenerator>(sizes: [Int], using rng: inout G) {
        precondition(sizes.count >= 2, "an MLP needs an input and an output size")
        self.sizes = sizes
        var p = Parameters()
        for i in 0..<(sizes.count - 1) {
            let (w, b) = Initializer.pytorchDefault(weight: [sizes[i + 1], sizes[i]], fanIn: sizes[i], using: &rng)
            p["layer\(i + 1).weight"] = w
            p["layer\(i + 1).bias"] = b
        }
        parameters = p
    }

    public func forward(_ x: Tensor, parameters p: Parameters, normalization: NormalizationMode) -> ForwardResult {
        var h = x.reshaped([x.shape[0], -1])
        for i in 1..<sizes.count {
            h = Layers.linear(h, p, "layer\(i)")
            if i < sizes.count - 1 { h = h.relu() }
        }
        return ForwardResult(output: h, features: h, statistics: [])
    }
}

/// A linear classifier head on features: `weight` [classes × features], `bias` [classes].
public final class LinearHead: FunctionalModel {
    public var parameters: Parameters

    public init<G: RandomNumberGenerator>(features: Int, classes: Int, using rng: inout G) {
        let (w, b) = Initializer.pytorchDefault(weight: [classes, features], fanIn: features, using: &rng)
        parameters = Parameters([("head.weight", w), ("head.bias", b)])
    }

    public func forward(_ x: Tensor, parameters p: Parameters, normalization: NormalizationMode) -> ForwardResult {
        ForwardResult(output: Layers.linear(x, p, "head"), features: x, statistics: [])
    }
}
