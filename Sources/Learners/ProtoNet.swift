import Engine
import Foundation
import FewShotData
import Models

/// Prototypical Networks: classifies a query by its distance to each class's prototype, the mean of the
/// class's embedded support examples.
///
/// c_k = (1/|S_k|) Σ_{(x_i, y_i) ∈ S_k} f_φ(x_i); logits_k(x) = −‖f_φ(x) − c_k‖²; the embedding f_φ (a Conv4
/// without head) is trained end to end on `trainWays`-way episodes (Adam; the loss is averaged over the
/// meta-batch), with the learning rate halved every 2000 iterations by default, as in the paper.
/// Batch norm (`batch_norm`): with `running` (the default, as the reference code), training normalises each
/// episode (support and queries together, as the reference code embeds them in one batch) with its own
/// statistics and folds them into running averages; at evaluation, support and queries are embedded with
/// those running statistics, so each query is scored independently of the others (not transductive). With
/// `transductive`, the support set and the queries are normalised as two separate batches with their own
/// statistics, in training and at evaluation (a PyTorch module left in train mode).
///
/// Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017.
public final class ProtoNet: MetaLearner {
    /// Adaptation reads the meta-trained state only, so episodes can be evaluated in parallel.
    public var adaptsConcurrently: Bool { true }

    public let model: Conv4
    let optimizer: ParameterOptimizer<Adam>
    var metaBatchSize: Int
    public let batchNorm: BatchNormMode

    public var isTransductive: Bool { batchNorm.isTransductive }

    public static let hyperparameters: [HyperParameterSpec] =
        AdamOptions.specs(decayEvery: 2000) + [BatchNormMode.runningSpec] + BackboneOptions.specs

    public init(_ p: HyperParameters, _ setting: LearnerSetting) throws {
        optimizer = try AdamOptions.optimizer(p)
        batchNorm = try BatchNormMode.parse(p, [.running, .transductive])
        model = try BackboneOptions.conv4(p, setting, classes: nil)
        metaBatchSize = max(1, setting.metaBatch)
    }

    /// Embeddings [n × d] of `images` at evaluation (constants): with the running batch-norm statistics, or
    /// with the batch's own statistics when transductive (the support set and the queries are then embedded
    /// as separate batches).
    public func embed(_ images: Tensor) -> Tensor {
        withoutGradients {
            model.forward(images, parameters: model.parameters, normalization: model.evaluationNormalization(batchNorm)).output
        }
    }

    /// The class means [ways × d] of support embeddings [n × d] with labels in 0..<ways.
    public static func prototypes(_ embeddings: Tensor, labels: [Int], ways: Int) -> Tensor {
        MetricSupport.classMeans(embeddings, labels: labels, ways: ways)
    }

    /// Logits [m × ways]: minus the squared Euclidean distance of each query embedding to each prototype.
    public static func logits(queries: Tensor, prototypes: Tensor) -> Tensor {
        -Tensor.pairwiseSquaredDistances(queries, prototypes)
    }

    /// The query loss of one episode and its gradient with respect to `theta`, with the batch statistics
    /// (and image counts) that training folds into the running averages.
    func episodeGradient(_ theta: Parameters, episode: Episode)
        -> (gradients: [Tensor], loss: Float, accuracy: Float, statistics: [([ChannelStatistics], Int)]) {
        let e = model.embedTrainingEpisode(support: episode.support.tensor, queries: episode.query.tensor,
                                           parameters: theta, mode: batchNorm)
        let logits = Self.logits(queries: e.queries, prototypes: Self.prototypes(e.support, labels: episode.support.labels,
                                                                                ways: episode.ways))
        let loss = Tensor.crossEntropy(logits: logits, labels: episode.query.labels)
        let grads = gradients(of: loss, wrt: theta.tensors, retainGraph: false)
        return (grads, loss.item, accuracy(logits: logits, labels: episode.query.labels), e.statistics)
    }

    public func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        let episodes = try source.episodes(iteration: iteration, count: metaBatchSize)
        let theta = model.parameters
        var statistics: [[([ChannelStatistics], Int)]] = Array(repeating: [], count: episodes.count)
        let lock = NSLock()
        let r = MetricSupport.averaged(episodes.count) { i in
            let e = episodeGradient(theta, episode: episodes[i])
            lock.withLock { statistics[i] = e.statistics }
            return (e.gradients, e.loss, e.accuracy)
        }
        guard r.loss.isFinite else { throw DivergedError(iteration: iteration, loss: r.loss) }
        model.parameters = optimizer.update(theta, gradients: r.gradients)
        for (s, n) in statistics.joined() { model.updateRunningStatistics(s, count: n) }
        return StepStats(loss: r.loss, accuracy: r.accuracy)
    }

    public func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        let prototypes = Self.prototypes(embed(support.tensor), labels: support.labels, ways: ways)
        return ClosureClassifier { queries in Self.logits(queries: self.embed(queries), prototypes: prototypes) }
    }

    public func checkpointState() -> [String: Tensor] {
        var state = model.parameters.dictionary.mapKeys { "model/" + $0 }
        state.merge(MetricSupport.statisticsState(model.runningStatistics)) { a, _ in a }
        state.merge(MetricSupport.optimizerState(optimizer)) { a, _ in a }
        return state
    }

    public func restore(checkpointState state: [String: Tensor]) throws {
        let parameters = try model.parameters.loading(state, prefix: "model/")
        let statistics = try MetricSupport.loadStatistics(state, like: model.runningStatistics)
        try MetricSupport.restoreOptimizer(optimizer, from: state, parameters: parameters)
        model.parameters = parameters
        model.runningStatistics = statistics
    }

    static let descriptor = LearnerDescriptor(
        name: "protonet",
        summary: "Prototypical Networks: logits are minus squared distances to class-mean embeddings",
        paper: "Snell, Swersky & Zemel, Prototypical Networks for Few-shot Learning, NeurIPS 2017",
        hyperparameters: hyperparameters,
        footprint: BackboneOptions.footprint,
        evaluatesAnyEpisodeShape: true
    ) { p, setting in try ProtoNet(p, setting) }
}
