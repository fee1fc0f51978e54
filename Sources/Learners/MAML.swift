import Engine
import FewShotData
import Models

/// Model-Agnostic Meta-Learning: meta-learns an initialisation θ from which a few gradient steps on a
/// task's support set give a good classifier for its queries.
///
/// Meta-objective: Σ_tasks L_query(θ′), θ′ = θ − α∇L_support(θ) (repeated for each inner step). The
/// exact meta-gradient differentiates through the inner steps (second order); the first-order variant
/// treats the inner gradients as constants, so its meta-gradient is the query gradient at θ′.
/// Batch norm uses the statistics of the batch it normalises, queries included (transductive, as in the
/// reference implementation) unless `batch_norm` is `support`, in which case queries are normalised with the
/// adapted model's support-set statistics.
///
/// Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017.
public final class MAML: MetaLearner {
    /// Adaptation reads the meta-trained state only, so episodes can be evaluated in parallel.
    public var adaptsConcurrently: Bool { true }

    public let model: Conv4
    public let innerLearningRate: Float
    public let innerSteps: Int
    public let evalInnerLearningRate: Float
    public let evalInnerSteps: Int
    public let firstOrder: Bool
    public let transductive: Bool
    let outer: ParameterOptimizer<Adam>

    public var isTransductive: Bool { transductive }

    public static let hyperparameters: [HyperParameterSpec] = [
        HyperParameterSpec("inner_lr", .double(0.4), in: .learningRate, "inner-loop (adaptation) step size α during meta-training"),
        HyperParameterSpec("inner_steps", .int(1), in: .steps, "inner-loop gradient steps during meta-training"),
        HyperParameterSpec("eval_inner_lr", .double(0.4), in: .learningRate, "adaptation step size at evaluation"),
        HyperParameterSpec("eval_inner_steps", .int(3), in: .steps, "adaptation gradient steps at evaluation"),
        HyperParameterSpec("meta_lr", .double(0.001), in: .learningRate, "Adam learning rate of the outer (meta) update β"),
        BatchNormMode.adaptationSpec,
    ] + BackboneOptions.specs

    /// The Conv4's, and with the exact meta-gradient the inner steps' graph, kept until the outer update
    /// (at most `inner_steps` forward passes over a training episode).
    static func footprint(firstOrder: Bool) -> (HyperParameters, FootprintContext) -> [MemoryFootprint] {
        { p, c in
            var parts = BackboneOptions.footprint(p, c)
            if !firstOrder {
                parts.append(MemoryFootprint("the second-order graph of the inner steps", [
                    .init("inner_steps", p.int("inner_steps")), c.trainEpisodeImages,
                    .init("width", p.int("width")), c.pixels,
                ]))
            }
            return parts
        }
    }

    public init(_ p: HyperParameters, _ setting: LearnerSetting, firstOrder: Bool) throws {
        innerLearningRate = Float(try p.positiveDouble("inner_lr"))
        innerSteps = try p.int("inner_steps", atLeast: 1)
        evalInnerLearningRate = Float(try p.positiveDouble("eval_inner_lr"))
        evalInnerSteps = try p.int("eval_inner_steps", atLeast: 1)
        transductive = try BatchNormMode.parse(p, [.transductive, .support]).isTransductive
        self.firstOrder = firstOrder
        outer = ParameterOptimizer(Adam(), learningRate: Float(try p.positiveDouble("meta_lr")))
        guard setting.ways == setting.trainWays else {
            throw HyperParameterError.invalid(learner: p.learner, key: "train_ways",
                                              reason: "must equal ways for MAML (one output per class), got \(setting.trainWays) and \(setting.ways)")
        }
        model = try BackboneOptions.conv4(p, setting, classes: setting.ways)
    }

    /// Fast weights after `steps` gradient steps on the support set from `start`. With `createGraph`, the
    /// steps are recorded, so the result is differentiable with respect to `start` (second order).
    public func adapt(_ start: Parameters, support: Tensor, labels: [Int], steps: Int, learningRate: Float,
                      createGraph: Bool) -> Parameters {
        var fast = start
        for _ in 0..<steps {
            let logits = model.forward(support, parameters: fast, normalization: .batch).output
            let loss = Tensor.crossEntropy(logits: logits, labels: labels)
            let grads = gradients(of: loss, wrt: fast.tensors, createGraph: createGraph, retainGraph: createGraph)
            fast = fast.descended(along: grads, learningRate: learningRate)
        }
        return fast
    }

    /// The meta-gradient of one task's query loss with respect to θ, with the loss and accuracy.
    public func metaGradient(_ theta: Parameters, episode: Episode) -> (gradients: [Tensor], loss: Float, accuracy: Float) {
        let support = episode.support.tensor, query = episode.query.tensor
        let fast = adapt(theta, support: support, labels: episode.support.labels, steps: innerSteps,
                         learningRate: innerLearningRate, createGraph: !firstOrder)
        let logits = queryLogits(fast, support: support, query: query)
        let loss = Tensor.crossEntropy(logits: logits, labels: episode.query.labels)
        let grads = gradients(of: loss, wrt: theta.tensors, retainGraph: false)
        return (grads, loss.item, accuracy(logits: logits, labels: episode.query.labels))
    }

    func queryLogits(_ fast: Parameters, support: Tensor, query: Tensor) -> Tensor {
        model.queryLogits(fast, support: support, query: query, transductive: transductive)
    }

    public func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        let episodes = try source.episodes(iteration: iteration, count: max(1, metaBatchSize))
        let theta = model.parameters
        // Tasks run in parallel; the average is taken in a fixed order.
        let r = MetricSupport.averaged(episodes.count) { i in metaGradient(theta, episode: episodes[i]) }
        model.parameters = outer.update(theta, gradients: r.gradients)
        return StepStats(loss: r.loss, accuracy: r.accuracy)
    }

    var metaBatchSize = 1

    public func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        let supportTensor = support.tensor
        let fast = withGradients {
            adapt(model.parameters.asLeaves(), support: supportTensor, labels: support.labels,
                  steps: evalInnerSteps, learningRate: evalInnerLearningRate, createGraph: false)
        }.detached()
        return ClosureClassifier { query in self.queryLogits(fast, support: supportTensor, query: query) }
    }

    public func checkpointState() -> [String: Tensor] {
        var state = model.parameters.dictionary.mapKeys { "model/" + $0 }
        for (k, v) in outer.stateTensors() { state["optimizer/" + k] = v }
        return state
    }

    public func restore(checkpointState state: [String: Tensor]) throws {
        model.parameters = try model.parameters.loading(state, prefix: "model/")
        try outer.restore(state.filter { $0.key.hasPrefix("optimizer/") }.mapKeys { String($0.dropFirst("optimizer/".count)) })
    }

    static func descriptor(firstOrder: Bool) -> LearnerDescriptor {
        LearnerDescriptor(
            name: firstOrder ? "fomaml" : "maml",
            summary: firstOrder
                ? "First-order MAML: the meta-gradient is the query gradient at the adapted weights"
                : "MAML with the exact second-order meta-gradient through the inner steps",
            paper: "Finn, Abbeel & Levine, Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks, ICML 2017",
            hyperparameters: hyperparameters,
            footprint: footprint(firstOrder: firstOrder)
        ) { p, setting in
            let m = try MAML(p, setting, firstOrder: firstOrder)
            m.metaBatchSize = setting.metaBatch
            return m
        }
    }
}

extension Dictionary where Key == String {
    func mapKeys(_ f: (String) -> String) -> [String: Value] {
        Dictionary(uniqueKeysWithValues: map { (f($0.key), $0.value) })
    }
}
