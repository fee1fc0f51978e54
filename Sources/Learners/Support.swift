import Engine
import FewShotData
import Models

extension LabelledImages {
    /// The images as an NCHW tensor (a constant).
    public var tensor: Tensor {
        Tensor(shape: [count, shape.channels, shape.height, shape.width], scalars: pixels)
    }
}

/// Fraction of rows of `logits` whose largest entry is at `labels`.
public func accuracy(logits: Tensor, labels: [Int]) -> Float {
    let predicted = logits.argmaxRows()
    guard !labels.isEmpty else { return 0 }
    return Float(zip(predicted, labels).filter { $0 == $1 }.count) / Float(labels.count)
}

/// Hyperparameters every Conv4-based learner shares.
enum BackboneOptions {
    static let specs: [HyperParameterSpec] = [
        HyperParameterSpec("width", .int(64), in: .integers(1...4096), "channels of each Conv4 block (64, or 32 for miniImageNet MAML)"),
        HyperParameterSpec("downsampling", .string("maxpool"), oneOf: ["maxpool", "strided"], "maxpool (2×2 max-pooling) or strided (stride-2 convolutions, MAML's Omniglot model)"),
    ]

    /// The Conv4's largest pieces: one block's weights and the first block's activations (width channels
    /// at full resolution) for a training and an evaluation episode.
    static func footprint(_ p: HyperParameters, _ c: FootprintContext) -> [MemoryFootprint] {
        let width = MemoryFootprint.Factor("width", p.int("width"))
        return [
            MemoryFootprint("the weights of one Conv4 block", [width, width, .init("", 9)]),
            MemoryFootprint("first-block activations of a training episode", [c.trainEpisodeImages, width, c.pixels]),
            MemoryFootprint("first-block activations of an evaluation episode", [c.evaluationEpisodeImages, width, c.pixels]),
        ]
    }

    /// The Conv4's flattened feature count for the context's images: width × the final height × width.
    static func features(_ p: HyperParameters, _ c: FootprintContext) -> MemoryFootprint.Factor {
        let strided = p.string("downsampling") == "strided"
        func final(_ n: Int) -> Int {
            var n = n
            for _ in 0..<4 { n = strided ? (n - 1) / 2 + 1 : n / 2 }
            return max(n, 0)
        }
        let (spatial, o1) = final(c.imageShape.height).multipliedReportingOverflow(by: final(c.imageShape.width))
        let (count, o2) = spatial.multipliedReportingOverflow(by: p.int("width"))
        return MemoryFootprint.Factor("features (width × final height × width)", o1 || o2 ? Int.max : count)
    }

    /// A Conv4 for the setting, initialised from the setting's seed.
    static func conv4(_ p: HyperParameters, _ setting: LearnerSetting, classes: Int?, stream: String = "init") throws -> Conv4 {
        let width = try p.int("width", atLeast: 1)
        let down = try p.choice("downsampling", ["maxpool", "strided"])
        var rng = SeededGenerator(seed: setting.seed, .string(stream))
        let model = Conv4(inputChannels: setting.imageShape.channels, imageHeight: setting.imageShape.height,
                          imageWidth: setting.imageShape.width, width: width,
                          downsampling: down == "strided" ? .strided : .maxPool, classes: classes, using: &rng)
        guard model.featureCount > 0 else {
            throw HyperParameterError.invalid(learner: p.learner, key: "downsampling",
                                              reason: "leaves no features for \(setting.imageShape) images")
        }
        return model
    }
}

/// Fails a training step whose loss is not finite (the runner reports the cell as diverged).
public struct DivergedError: Error, CustomStringConvertible {
    public var iteration: Int
    public var loss: Float
    public init(iteration: Int, loss: Float) {
        self.iteration = iteration
        self.loss = loss
    }
    public var description: String { "diverged at iteration \(iteration): loss \(loss)" }
}

/// A classifier that applies a closure to the queries.
struct ClosureClassifier: EpisodeClassifier {
    let score: (Tensor) throws -> Tensor
    func logits(queries: Tensor) throws -> Tensor { try withoutGradients { try score(queries) } }
}

extension Conv4 {
    /// Query logits with fast weights: batch norm uses the query batch's own statistics when transductive
    /// (MAML's reference setting), else the adapted model's statistics on the support set, so each query
    /// is scored independently.
    func queryLogits(_ fast: Parameters, support: Tensor, query: Tensor, transductive: Bool) -> Tensor {
        if transductive {
            return forward(query, parameters: fast, normalization: .batch).output
        }
        let stats = withoutGradients { forward(support, parameters: fast, normalization: .batch).statistics }
        return forward(query, parameters: fast, normalization: .given(stats)).output
    }
}
