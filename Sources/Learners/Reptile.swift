import Engine
import FewShotData
import Models

/// Reptile: meta-learns an initialisation θ by moving it towards the weights that plain training on
/// each task reaches.
///
/// For each task of the meta-batch, k steps of SGD or Adam (β₁ = 0, a fresh state per task) on mini-batches
/// of the task's images from θ give φ; the outer step is θ ← θ + ε·mean_tasks(φ − θ), with ε annealed linearly
/// from `outer_lr` to 0 over the planned iterations: ε_t = ε₀·(1 − t/T) for iteration t = 0..<T.
/// No gradient flows through the inner steps, so Reptile needs first-order derivatives only.
/// Evaluation takes `eval_inner_steps` steps from θ on mini-batches of `eval_inner_batch` support images and
/// scores the queries with the result.
///
/// The defaults follow the reference code's Omniglot runs (`--inner-batch 10 --inner-iters 5 --train-shots
/// 10 --eval-batch 5 --eval-iters 50`): training tasks hold more images than the evaluation support set
/// (here the training episode's queries join its support set, `train_on_queries`) and each inner step sees a
/// different mini-batch of 10. Without that — every inner step on the same whole support set — Reptile's
/// update has no term that rewards generalising from one mini-batch to the next, and on 1-shot tasks it
/// makes the initialisation worse than an untrained one (measured here: 48% → 39% after 300 iterations on
/// the embedded glyphs, against 56% → 71% after 100 with these defaults). Batch norm uses the statistics of the batch it normalises, queries included (transductive, as
/// in the reference implementation) unless `batch_norm` is `support`, in which case queries are normalised
/// with the adapted model's support-set statistics.
///
/// The reported training loss and accuracy are those of the episode's queries at φ, averaged over the
/// meta-batch: training data with `train_on_queries` (the default, which trains the inner loop on support and
/// query images, as the paper trains on more shots than it evaluates with), held-out images without it.
///
/// Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", arXiv:1803.02999, 2018.
public final class Reptile: MetaLearner {
    /// Adaptation reads the meta-trained state only, so episodes can be evaluated in parallel.
    public var adaptsConcurrently: Bool { true }

    /// The inner-loop optimiser.
    public enum InnerOptimizer: String, Sendable {
        /// Plain gradient descent: φ ← φ − α·g.
        case sgd
        /// Adam with β₁ = 0 (the paper's choice): φ ← φ − α·g/(√v̂ + 1e-8).
        case adam
    }

    public let model: Conv4
    public let innerOptimizer: InnerOptimizer
    public let innerLearningRate: Float
    public let innerSteps: Int
    /// Images per inner step; 0 (or at least the support set's size) takes the whole support set.
    public let innerBatch: Int
    /// Support images per evaluation step (0: the whole support set).
    public let evalInnerBatch: Int
    /// How inner mini-batches are drawn.
    public let innerSampling: BatchSampling
    public let evalInnerLearningRate: Float
    public let evalInnerSteps: Int
    /// ε₀, the outer step size at iteration 0.
    public let outerLearningRate: Float
    /// T, the iterations over which ε falls to 0.
    public let plannedIterations: Int
    public let transductive: Bool
    /// Whether meta-training inner loops use support and query images (the paper trains on more shots
    /// than it evaluates with); evaluation always adapts on the support set only.
    public let trainOnQueries: Bool
    let seed: UInt64
    var metaBatchSize = 1

    public var isTransductive: Bool { transductive }

    public static let hyperparameters: [HyperParameterSpec] = [
        HyperParameterSpec("inner_optimizer", .string("adam"), oneOf: ["adam", "sgd"], "inner-loop optimiser: adam (β1 = 0, as in the paper) or sgd"),
        HyperParameterSpec("inner_lr", .double(0.001), in: .learningRate, "inner-loop learning rate during meta-training (paper: 0.001)"),
        HyperParameterSpec("inner_steps", .int(5), in: .steps, "inner-loop steps per task during meta-training (paper: 5 Omniglot, 8 miniImageNet)"),
        HyperParameterSpec("inner_batch", .int(10), in: .integers(0...100_000), "images per inner step during meta-training; 0 = the whole task (paper: 10)"),
        HyperParameterSpec("eval_inner_batch", .int(5), in: .integers(0...100_000), "support images per inner step at evaluation; 0 = the whole support set (paper: 5)"),
        HyperParameterSpec("inner_batches", .string("passes"), oneOf: ["passes", "independent"], "how inner_batch and eval_inner_batch images are drawn: passes (consecutive runs of reshuffled passes, the reference code's default) or independent (each step draws its own, the reference code's --replacement)"),
        HyperParameterSpec("eval_inner_lr", .double(0.001), in: .learningRate, "inner-loop learning rate at evaluation"),
        HyperParameterSpec("eval_inner_steps", .int(50), in: .steps, "inner-loop steps at evaluation (paper: 50)"),
        HyperParameterSpec("train_on_queries", .bool(true), "meta-training inner loops train on the episode's support and query images (the paper's larger training shots: 10 Omniglot, 15 miniImageNet); false: the support set only"),
        HyperParameterSpec("outer_lr", .double(1.0), in: .learningRate, "outer step size ε₀, annealed linearly to 0 over the iterations (paper: 1.0)"),
        BatchNormMode.adaptationSpec,
    ] + BackboneOptions.specs

    public init(_ p: HyperParameters, _ setting: LearnerSetting) throws {
        innerOptimizer = InnerOptimizer(rawValue: try p.choice("inner_optimizer", ["adam", "sgd"]))!
        innerLearningRate = Float(try p.positiveDouble("inner_lr"))
        innerSteps = try p.int("inner_steps", atLeast: 1)
        innerBatch = try p.int("inner_batch", atLeast: 0)
        evalInnerBatch = try p.int("eval_inner_batch", atLeast: 0)
        innerSampling = try BatchSampling.parse(p, "inner_batches")
        evalInnerLearningRate = Float(try p.positiveDouble("eval_inner_lr"))
        evalInnerSteps = try p.int("eval_inner_steps", atLeast: 1)
        outerLearningRate = Float(try p.positiveDouble("outer_lr"))
        transductive = try BatchNormMode.parse(p, [.transductive, .support]).isTransductive
        trainOnQueries = p.bool("train_on_queries")
        plannedIterations = max(1, setting.iterations)
        metaBatchSize = max(1, setting.metaBatch)
        seed = setting.seed
        guard setting.ways == setting.trainWays else {
            throw HyperParameterError.invalid(learner: p.learner, key: "train_ways",
                                              reason: "must equal ways for Reptile (one output per class), got \(setting.trainWays) and \(setting.ways)")
        }
        model = try BackboneOptions.conv4(p, setting, classes: setting.ways)
    }

    /// The outer step size of iteration `t`: ε₀·(1 − t/T), and 0 from iteration T on.
    public func outerStepSize(iteration t: Int) -> Float {
        outerLearningRate * max(0, 1 - Float(t) / Float(plannedIterations))
    }

    /// The image indices of each of `steps` inner steps over a support set of `count` images: all of them
    /// in order when `batch` is 0 or at least `count`; else, with `.passes`, consecutive runs of `batch`
    /// indices from reshuffled passes over the set (a batch may span two passes), as the reference
    /// implementation draws by default, and with `.independent` `batch` distinct indices drawn afresh for
    /// each step (its `--replacement`).
    public static func innerBatches(count: Int, batch: Int, steps: Int, sampling: BatchSampling = .passes,
                                    using rng: inout SeededGenerator) -> [[Int]] {
        guard batch > 0, batch < count else { return Array(repeating: Array(0..<count), count: steps) }
        if sampling == .independent {
            return (0..<steps).map { _ in BatchSampling.distinct(batch, of: count, using: &rng) }
        }
        var batches: [[Int]] = []
        var current: [Int] = []
        var order = Array(0..<count)
        while batches.count < steps {
            rng.shuffle(&order)
            for index in order {
                current.append(index)
                if current.count == batch {
                    batches.append(current)
                    current = []
                    if batches.count == steps { break }
                }
            }
        }
        return batches
    }

    /// A fresh inner-loop optimiser (no state) with learning rate `lr`.
    func makeInnerStep(learningRate lr: Float) -> (Parameters, [Tensor]) -> Parameters {
        switch innerOptimizer {
        case .sgd:
            let optimizer = ParameterOptimizer(SGD(), learningRate: lr)
            return { optimizer.update($0, gradients: $1) }
        case .adam:
            let optimizer = ParameterOptimizer(Adam(beta1: 0), learningRate: lr)
            return { optimizer.update($0, gradients: $1) }
        }
    }

    /// φ: the weights after one inner step per entry of `batches` on the support set from `start`, with a
    /// fresh optimiser. Constants (leaves while stepping); nothing is recorded across steps.
    public func adapt(_ start: Parameters, support: LabelledImages, batches: [[Int]], learningRate: Float) -> Parameters {
        let step = makeInnerStep(learningRate: learningRate)
        let all = support.tensor
        var fast = start.asLeaves()
        withGradients {
            for indices in batches {
                let (images, labels) = indices.count == support.count
                    ? (all, support.labels)
                    : (all.gatherRows(indices), indices.map { support.labels[$0] })
                let logits = model.forward(images, parameters: fast, normalization: .batch).output
                let loss = Tensor.crossEntropy(logits: logits, labels: labels)
                fast = step(fast, gradients(of: loss, wrt: fast.tensors, retainGraph: false))
            }
        }
        return fast.detached()
    }

    /// φ for one training task, with the query loss and accuracy at φ.
    func adaptTask(_ theta: Parameters, episode: Episode, iteration: Int, task: Int) -> (phi: Parameters, loss: Float, accuracy: Float) {
        var rng = SeededGenerator(seed: seed, "reptile-train-batches", .int(iteration), .int(task))
        var data = episode.support
        if trainOnQueries {
            data.pixels += episode.query.pixels
            data.labels += episode.query.labels
        }
        let batches = Self.innerBatches(count: data.count, batch: innerBatch, steps: innerSteps, sampling: innerSampling,
                                        using: &rng)
        let phi = adapt(theta, support: data, batches: batches, learningRate: innerLearningRate)
        return withoutGradients {
            let logits = queryLogits(phi, support: episode.support.tensor, query: episode.query.tensor)
            let loss = Tensor.crossEntropy(logits: logits, labels: episode.query.labels)
            return (phi, loss.item, accuracy(logits: logits, labels: episode.query.labels))
        }
    }

    func queryLogits(_ fast: Parameters, support: Tensor, query: Tensor) -> Tensor {
        model.queryLogits(fast, support: support, query: query, transductive: transductive)
    }

    /// The outer update θ + ε·mean(φᵢ − θ), the differences summed in task order.
    public static func interpolated(_ theta: Parameters, toward phis: [Parameters], stepSize epsilon: Float) -> Parameters {
        precondition(!phis.isEmpty, "the outer update needs at least one task")
        let scale = epsilon / Float(phis.count)
        return theta.replacing(theta.tensors.enumerated().map { j, p in
            var sum = [Float](repeating: 0, count: p.count)
            p.scalars.withUnsafeBufferPointer { t in
                for phi in phis {
                    phi.tensors[j].scalars.withUnsafeBufferPointer { f in
                        for k in 0..<sum.count { sum[k] += f[k] - t[k] }
                    }
                }
                for k in 0..<sum.count { sum[k] = t[k] + scale * sum[k] }
            }
            return Tensor(shape: p.shape, scalars: sum, requiresGrad: true)
        })
    }

    public func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        let episodes = try source.episodes(iteration: iteration, count: metaBatchSize)
        let theta = model.parameters
        let results = ComputeThreads.map(episodes.count) { i in
            adaptTask(theta, episode: episodes[i], iteration: iteration, task: i)
        }
        let scale = 1 / Float(results.count)
        let loss = results.map(\.loss).reduce(0, +) * scale
        let acc = results.map(\.accuracy).reduce(0, +) * scale
        guard loss.isFinite else { throw DivergedError(iteration: iteration, loss: loss) }
        model.parameters = Self.interpolated(theta, toward: results.map(\.phi), stepSize: outerStepSize(iteration: iteration))
        return StepStats(loss: loss, accuracy: acc)
    }

    public func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        guard ways == model.classes else {
            throw HyperParameterError.invalid(learner: "reptile", key: "ways",
                                              reason: "the model has \(model.classes ?? 0) outputs, the episode \(ways) ways")
        }
        // The same minibatch stream for every evaluation episode, so a classifier depends only on its support set.
        var rng = SeededGenerator(seed: seed, "reptile-eval-batches")
        let batches = Self.innerBatches(count: support.count, batch: evalInnerBatch, steps: evalInnerSteps,
                                        sampling: innerSampling, using: &rng)
        let fast = adapt(model.parameters, support: support, batches: batches, learningRate: evalInnerLearningRate)
        let supportTensor = support.tensor
        return ClosureClassifier { query in self.queryLogits(fast, support: supportTensor, query: query) }
    }

    public func checkpointState() -> [String: Tensor] {
        model.parameters.dictionary.mapKeys { "model/" + $0 }
    }

    public func restore(checkpointState state: [String: Tensor]) throws {
        model.parameters = try model.parameters.loading(state, prefix: "model/")
    }

    static var descriptor: LearnerDescriptor {
        LearnerDescriptor(
            name: "reptile",
            summary: "Reptile: move the initialisation towards the weights a few Adam/SGD steps on each task reach",
            paper: "Nichol, Achiam & Schulman, On First-Order Meta-Learning Algorithms, arXiv:1803.02999, 2018",
            hyperparameters: hyperparameters,
            footprint: BackboneOptions.footprint
        ) { p, setting in
            try Reptile(p, setting)
        }
    }
}
