import Engine
import Foundation
import FewShotData
import Models

/// Matching Networks: classifies a query by attention over the embedded support set, the predicted label
/// distribution being the attention-weighted sum of the support labels.
///
/// P(y = k | x̂, S) = Σ_{i: y_i = k} a(x̂, x_i), a(x̂, x_i) = softmax_i cos(f(x̂), g(x_i)); the logits are
/// log P(y = k | x̂, S), so softmax(logits) is that distribution and cross-entropy on them is the paper's
/// loss; 10⁻¹² inside the logarithm keeps it finite when a class's attention mass underflows.
/// f and g are a shared Conv4 embedding; with full-context embeddings (`fce`), g(x_i, S) = h⃗_i + h⃖_i + g′(x_i)
/// with a bidirectional LSTM over the support embeddings g′, and f(x̂, S) = h_K after K steps of the
/// attention LSTM: ĥ_k, c_k = LSTM(f′(x̂), [h_{k−1}, r_{k−1}], c_{k−1}); h_k = ĥ_k + f′(x̂);
/// r_{k−1} = Σ_i softmax_i(h_{k−1}ᵀ g(x_i)) g(x_i), starting from h_0 = f′(x̂), c_0 = 0 (the paper's appendix).
/// The cosines are multiplied by `attention_scale` s before the softmax (an inverse temperature): raw cosines
/// of ReLU features lie in [0, 1], where a softmax over the support set is nearly uniform and training
/// stalls; CloserLookFewShot's `matchingnet.py` scales them by 100, the default here (s = 1 gives the paper's
/// formula as written). Batch norm (`batch_norm`) as in `ProtoNet`: with `running`, episode statistics in
/// training and running statistics at evaluation, so each query is scored independently of the others (FCE
/// reads only the support set); with `transductive`, support set and queries each with their own statistics.
///
/// Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, "Matching Networks for One Shot Learning",
/// NeurIPS 2016.
public final class MatchingNet: MetaLearner {
    /// Adaptation reads the meta-trained state only, so episodes can be evaluated in parallel.
    public var adaptsConcurrently: Bool { true }

    public let model: Conv4
    /// The LSTMs of the full-context embeddings (`fce.fwd.*`, `fce.bwd.*`, `fce.attn.*`; empty without FCE).
    public internal(set) var fce: Parameters
    public let fceSteps: Int
    let optimizer: ParameterOptimizer<Adam>
    var metaBatchSize: Int
    /// s in softmax(s · cos): the attention's inverse temperature.
    public let attentionScale: Float
    public let batchNorm: BatchNormMode

    public var isTransductive: Bool { batchNorm.isTransductive }

    public static let hyperparameters: [HyperParameterSpec] = [
        HyperParameterSpec("fce", .bool(false), "full-context embeddings: a bidirectional LSTM over the support set and an attention LSTM for queries"),
        HyperParameterSpec("fce_steps", .int(5), in: .integers(1...1000), "processing steps K of the attention LSTM (with fce)"),
        HyperParameterSpec("attention_scale", .double(100), in: .positive(upTo: 10_000), "s in softmax(s·cos): inverse temperature of the attention (100 as CloserLookFewShot's matchingnet.py; 1 = the paper's raw cosines)"),
    ] + AdamOptions.specs(decayEvery: 0) + [BatchNormMode.runningSpec] + BackboneOptions.specs

    /// The Conv4's, and with full-context embeddings the attention LSTM's recurrent weights
    /// (4·features × 2·features, the largest of the LSTMs).
    static func footprint(_ p: HyperParameters, _ c: FootprintContext) -> [MemoryFootprint] {
        var parts = BackboneOptions.footprint(p, c)
        if p.bool("fce") {
            let features = BackboneOptions.features(p, c)
            parts.append(MemoryFootprint("the attention LSTM's recurrent weights (fce)",
                                         [.init("", 8), features, features]))
        }
        return parts
    }

    public init(_ p: HyperParameters, _ setting: LearnerSetting) throws {
        optimizer = try AdamOptions.optimizer(p)
        fceSteps = try p.int("fce_steps", atLeast: 1)
        attentionScale = Float(try p.positiveDouble("attention_scale"))
        batchNorm = try BatchNormMode.parse(p, [.running, .transductive])
        model = try BackboneOptions.conv4(p, setting, classes: nil)
        metaBatchSize = max(1, setting.metaBatch)
        fce = Parameters()
        if p.bool("fce") {
            let d = model.featureCount
            var rng = SeededGenerator(seed: setting.seed, "fce")
            fce = LSTMCell.parameters(prefix: "fce.fwd", input: d, state: d, hidden: d, using: &rng)
                .appending(LSTMCell.parameters(prefix: "fce.bwd", input: d, state: d, hidden: d, using: &rng))
                .appending(LSTMCell.parameters(prefix: "fce.attn", input: d, state: 2 * d, hidden: d, using: &rng))
        }
    }

    public var usesFCE: Bool { fce.count > 0 }

    /// The backbone's parameters followed by the LSTMs'.
    public var parameters: Parameters { model.parameters.appending(fce) }

    /// g(S) [n × d] and f(Q) [m × d] from Conv4 embeddings g′(S) and f′(Q) (the identity without FCE).
    public func contextEmbeddings(support: Tensor, queries: Tensor, parameters p: Parameters) -> (support: Tensor, queries: Tensor) {
        guard usesFCE else { return (support, queries) }
        let d = support.shape[1], n = support.shape[0]
        let rows = (0..<n).map { support.slice(axis: 0, $0..<($0 + 1)) }
        func run(_ cell: LSTMCell, _ order: [Int]) -> [Tensor] {
            var h = Tensor.zeros([1, d]), c = Tensor.zeros([1, d])
            var out = [Tensor?](repeating: nil, count: n)
            for i in order {
                (h, c) = cell(rows[i], state: h, cell: c, p)
                out[i] = h
            }
            return out.map { $0! }
        }
        let forward = run(LSTMCell(prefix: "fce.fwd", hidden: d), Array(0..<n))
        let backward = run(LSTMCell(prefix: "fce.bwd", hidden: d), Array((0..<n).reversed()))
        let g = Tensor.concat(forward, axis: 0) + Tensor.concat(backward, axis: 0) + support

        let attn = LSTMCell(prefix: "fce.attn", hidden: d)
        var h = queries, c = Tensor.zeros(queries.shape)
        for _ in 0..<fceSteps {
            let read = Tensor.matmul(Tensor.matmul(h, g, transposeB: true).softmax(), g)
            let step = attn(queries, state: Tensor.concat([h, read], axis: 1), cell: c, p)
            h = step.h + queries
            c = step.c
        }
        return (g, h)
    }

    /// Attention [m × n] of each query over the support set: softmax over the support of the cosine
    /// similarities between embeddings f(Q) [m × d] and g(S) [n × d], multiplied by `scale`.
    public static func attention(queries: Tensor, support: Tensor, scale: Float) -> Tensor {
        Tensor.cosineSimilarity(queries, support).scaled(by: scale).softmax()
    }

    /// Logits [m × ways]: log Σ_{i: y_i = k} a_i, the log of the attention mass on each class.
    public static func logits(attention: Tensor, labels: [Int], ways: Int) -> Tensor {
        Tensor.matmul(attention, MetricSupport.oneHot(labels, ways: ways)).shifted(by: 1e-12).log()
    }

    /// Query logits from Conv4 embeddings of the support set [n × d] and the queries [m × d].
    func logits(_ p: Parameters, support: Tensor, labels: [Int], queries: Tensor, ways: Int) -> Tensor {
        let (g, f) = contextEmbeddings(support: support, queries: queries, parameters: p)
        return Self.logits(attention: Self.attention(queries: f, support: g, scale: attentionScale), labels: labels, ways: ways)
    }

    /// The query loss of a training episode (batch statistics) and what the step needs besides.
    func episodeLoss(_ p: Parameters, episode: Episode) -> (loss: Tensor, logits: Tensor, statistics: [([ChannelStatistics], Int)]) {
        let e = model.embedTrainingEpisode(support: episode.support.tensor, queries: episode.query.tensor, parameters: p,
                                           mode: batchNorm)
        let logits = self.logits(p, support: e.support, labels: episode.support.labels, queries: e.queries, ways: episode.ways)
        return (Tensor.crossEntropy(logits: logits, labels: episode.query.labels), logits, e.statistics)
    }

    public func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        let episodes = try source.episodes(iteration: iteration, count: metaBatchSize)
        let theta = parameters
        var statistics: [[([ChannelStatistics], Int)]] = Array(repeating: [], count: episodes.count)
        let lock = NSLock()
        let r = MetricSupport.averaged(episodes.count) { i in
            let e = episodeLoss(theta, episode: episodes[i])
            lock.withLock { statistics[i] = e.statistics }
            return (gradients(of: e.loss, wrt: theta.tensors, retainGraph: false), e.loss.item,
                    accuracy(logits: e.logits, labels: episodes[i].query.labels))
        }
        guard r.loss.isFinite else { throw DivergedError(iteration: iteration, loss: r.loss) }
        let updated = optimizer.update(theta, gradients: r.gradients)
        model.parameters = model.parameters.map { name, _ in updated.require(name) }
        fce = fce.map { name, _ in updated.require(name) }
        for (s, n) in statistics.joined() { model.updateRunningStatistics(s, count: n) }
        return StepStats(loss: r.loss, accuracy: r.accuracy)
    }

    public func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        let p = parameters
        // Running statistics (or, transductive, the support set's own); queries are then embedded with the
        // running statistics (or as one batch of their own). FCE processes the queries row by row, so with
        // running statistics scoring them together gives the same logits as scoring each alone.
        let normalization = model.evaluationNormalization(batchNorm)
        let g = withoutGradients { model.forward(support.tensor, parameters: p, normalization: normalization).output }
        return ClosureClassifier { queries in
            let f = self.model.forward(queries, parameters: p, normalization: normalization).output
            return self.logits(p, support: g, labels: support.labels, queries: f, ways: ways)
        }
    }

    public func checkpointState() -> [String: Tensor] {
        var state = parameters.dictionary.mapKeys { "model/" + $0 }
        state.merge(MetricSupport.statisticsState(model.runningStatistics)) { a, _ in a }
        state.merge(MetricSupport.optimizerState(optimizer)) { a, _ in a }
        return state
    }

    public func restore(checkpointState state: [String: Tensor]) throws {
        let backbone = try model.parameters.loading(state, prefix: "model/")
        let lstm = try fce.loading(state, prefix: "model/")
        let statistics = try MetricSupport.loadStatistics(state, like: model.runningStatistics)
        try MetricSupport.restoreOptimizer(optimizer, from: state, parameters: backbone.appending(lstm))
        model.parameters = backbone
        fce = lstm
        model.runningStatistics = statistics
    }

    static let descriptor = LearnerDescriptor(
        name: "matchingnet",
        summary: "Matching Networks: cosine attention over the support set, optional full-context embeddings",
        paper: "Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, Matching Networks for One Shot Learning, NeurIPS 2016",
        hyperparameters: hyperparameters,
        footprint: footprint,
        evaluatesAnyEpisodeShape: true
    ) { p, setting in try MatchingNet(p, setting) }
}
