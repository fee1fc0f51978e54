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

/// How batch norm normalises: the `batch_norm` hyperparameter every learner takes.
public enum BatchNormMode: String, Sendable, CaseIterable {
    /// Running averages of training statistics at evaluation (a torch module in eval mode); during training
    /// the metric learners normalise support and queries together as one batch, as their reference code does.
    case running
    /// Every batch with its own statistics, in training and at evaluation (a torch module in train mode):
    /// the support set and the queries are normalised as two separate batches.
    case transductive
    /// MAML's family without transductive queries: the queries are normalised with the adapted weights'
    /// statistics of the support set, so each query is scored independently.
    case support

    /// Whether the classifier uses statistics of the query batch.
    public var isTransductive: Bool { self == .transductive }

    /// The `batch_norm` hyperparameter of learners that keep running statistics (the metric learners and
    /// the baselines).
    static let runningSpec = HyperParameterSpec(
        "batch_norm", .string("running"), oneOf: ["running", "transductive"],
        "running: evaluation uses running averages (torch eval mode) and training normalises support and queries as one batch; transductive: support and queries each with their own batch statistics, in training and evaluation (torch train mode)")

    /// The `batch_norm` hyperparameter of the fine-tuning baselines (pre-training always normalises each
    /// batch with its own statistics).
    static let fineTuningSpec = HyperParameterSpec(
        "batch_norm", .string("running"), oneOf: ["running", "transductive"],
        "features at evaluation: running: with the running averages of pre-training (torch eval mode); transductive: support and queries each with their own batch statistics (torch train mode)")

    /// The `batch_norm` hyperparameter of MAML's family (no running statistics: every batch uses its own).
    static let adaptationSpec = HyperParameterSpec(
        "batch_norm", .string("transductive"), oneOf: ["transductive", "support"],
        "transductive: queries normalised with their own batch statistics (the reference implementations); support: with the adapted weights' statistics of the support set")

    /// The mode a learner was given.
    static func parse(_ p: HyperParameters, _ choices: [BatchNormMode]) throws -> BatchNormMode {
        try BatchNormMode(rawValue: p.choice("batch_norm", choices.map(\.rawValue))) ?? choices[0]
    }
}

extension Conv4 {
    /// Embeddings of a training episode's support set and queries in training mode, with the batch
    /// statistics of each batch normalised and its image count: `.running` embeds them as one batch (the
    /// reference code of the metric learners), the other modes as two batches, each with its own statistics.
    func embedTrainingEpisode(support: Tensor, queries: Tensor, parameters p: Parameters, mode: BatchNormMode)
        -> (support: Tensor, queries: Tensor, statistics: [([ChannelStatistics], Int)]) {
        let ns = support.shape[0], nq = queries.shape[0]
        if mode == .running {
            let r = forward(Tensor.concat([support, queries], axis: 0), parameters: p, normalization: .batch)
            return (r.output.slice(axis: 0, 0..<ns), r.output.slice(axis: 0, ns..<(ns + nq)), [(r.statistics, ns + nq)])
        }
        let s = forward(support, parameters: p, normalization: .batch)
        let q = forward(queries, parameters: p, normalization: .batch)
        return (s.output, q.output, [(s.statistics, ns), (q.statistics, nq)])
    }

    /// The normalisation of evaluation batches: the running statistics, or each batch's own.
    func evaluationNormalization(_ mode: BatchNormMode) -> NormalizationMode {
        mode == .running ? .given(runningStatistics) : .batch
    }

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

/// How a learner draws mini-batches from a small set (Reptile's inner steps, the baselines' fine-tuning).
public enum BatchSampling: String, Sendable, CaseIterable {
    /// Reshuffled passes over the set, cut into consecutive batches.
    case passes
    /// Each batch drawn afresh: distinct indices, uniformly.
    case independent

    static func parse(_ p: HyperParameters, _ key: String) throws -> BatchSampling {
        try BatchSampling(rawValue: p.choice(key, allCases.map(\.rawValue))) ?? .passes
    }

    /// `k` distinct indices of 0..<`n`, uniformly (a partial Fisher–Yates shuffle), in the order drawn.
    static func distinct(_ k: Int, of n: Int, using rng: inout SeededGenerator) -> [Int] {
        var pool = Array(0..<n)
        let k = min(k, n)
        for i in 0..<k {
            let j = i + Int(rng.next(upperBound: UInt64(n - i)))
            pool.swapAt(i, j)
        }
        return Array(pool[0..<k])
    }
}
