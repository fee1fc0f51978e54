import Engine
import FewShotData
import Models

/// The fine-tuning baselines: a Conv4 pre-trained as an ordinary classifier over all training classes,
/// then, for each episode, frozen while a new classifier head is trained on its support set.
///
/// Pre-training: cross-entropy of head(f(x)) over the `trainClassCount` training classes on plain batches
/// (Adam). Adaptation: the support features f(x_i) (no gradients) train a new head by PyTorch's SGD
/// (`torch.optim.SGD`: momentum 0.9, dampening 0.9 and weight decay 0.001 as the reference code's
/// `baselinefinetune.py`, optional Nesterov) for `finetune_steps` optimizer steps, each on a mini-batch of
/// `finetune_batch` (4) support examples (by default 100 passes over the support set, as the reference
/// code's 100 epochs: 200 steps at 5-way 1-shot, 2500 at 20-way 5-shot): consecutive batches of reshuffled
/// passes over the support set, the last of a pass possibly smaller, as the reference loop cuts them, or with `finetune_batches: independent` a fresh draw per step. Queries are scored with the
/// frozen features and that head. Batch norm (`batch_norm`): `running` (default) extracts features with the
/// running statistics of pre-training, so each query is scored independently; `transductive` normalises
/// the support set and the queries each as a batch of its own (pre-training always uses batch statistics).
/// `baseline` uses a linear head
/// W f(x) + b; `baseline++` a cosine head, logits_k = s · g_k · cos(f(x), w_k), with the reference code's
/// class-wise learnable norm g_k (weight normalisation, g_k starting at ‖w_k‖; `class_norm` false drops it)
/// and its scale rule s = 2 for at most 200 classes, 10 above (`scale` overrides it). The per-episode
/// randomness (head initialisation, mini-batch order) is drawn from a generator seeded by the learner's
/// seed and the support set's content, so adapting to the same episode twice gives the same classifier.
///
/// Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot Classification", ICLR 2019.
public final class Baseline: MetaLearner {
    /// Adaptation reads the meta-trained state only, so episodes can be evaluated in parallel.
    public var adaptsConcurrently: Bool { true }

    public var isTransductive: Bool { batchNorm.isTransductive }

    /// How a new head is trained on an episode's support features: PyTorch's SGD for a number of steps.
    public struct FineTuning: Sendable, Equatable {
        public var learningRate: Float
        public var momentum: Float
        public var dampening: Float
        public var weightDecay: Float
        public var nesterov: Bool
        /// Optimizer steps; 0 for 100 passes over the support set (the reference code's 100 epochs).
        public var steps: Int

        /// The optimizer steps for a support set of `count` examples.
        public func steps(forSupport count: Int) -> Int {
            steps > 0 ? steps : 100 * ((count + batch - 1) / max(1, batch))
        }
        /// Support examples per step.
        public var batch: Int
        public var sampling: BatchSampling

        /// The optimiser rule.
        public var rule: SGD {
            SGD(momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov)
        }
    }

    /// The classifier head: linear (Baseline) or cosine (Baseline++).
    public enum Head: String, Sendable { case linear, cosine }

    public let kind: Head
    public let model: Conv4
    /// The pre-training head over the training classes (`head.weight`, and `head.bias` or `head.gain`).
    public internal(set) var head: Parameters
    /// The fixed scale of cosine logits (0: the reference code's rule for the head's class count).
    public let scale: Float
    public let classNorm: Bool
    public let batchSize: Int
    public let fineTuning: FineTuning
    public let batchNorm: BatchNormMode
    let seed: UInt64
    let optimizer: ParameterOptimizer<Adam>

    static let sharedSpecs: [HyperParameterSpec] = [
        HyperParameterSpec("batch_size", .int(64), in: .integers(1...100_000), "pre-training batch size (the paper uses 16; 64 is faster here)"),
    ] + AdamOptions.specs(decayEvery: 0) + [
        HyperParameterSpec("finetune_lr", .double(0.01), in: .learningRate, "SGD learning rate of the per-episode head"),
        HyperParameterSpec("finetune_steps", .int(0), in: .integers(0...10_000), "SGD steps (one mini-batch each) when training the per-episode head; 0: 100 passes over the support set, 100·⌈support/finetune_batch⌉ steps, as the reference code's 100 epochs (200 at 5-way 1-shot, 2500 at 20-way 5-shot)"),
        HyperParameterSpec("finetune_batch", .int(4), in: .integers(1...100_000), "support examples per fine-tuning step"),
        HyperParameterSpec("finetune_batches", .string("passes"), oneOf: ["passes", "independent"], "passes: reshuffled passes over the support set cut into batches, the last one of a pass possibly smaller (the reference loop); independent: each step draws its own batch"),
        HyperParameterSpec("finetune_momentum", .double(0.9), in: .closed(0, 1), "SGD momentum μ of the fine-tuning (torch.optim.SGD)"),
        HyperParameterSpec("finetune_dampening", .double(0.9), in: .closed(0, 1), "SGD dampening τ of the fine-tuning (0.9 as the reference code; PyTorch's default is 0)"),
        HyperParameterSpec("finetune_weight_decay", .double(0.001), in: .closed(0, 1000), "SGD weight decay (L2) of the fine-tuning"),
        HyperParameterSpec("finetune_nesterov", .bool(false), "Nesterov momentum in the fine-tuning (needs momentum > 0 and dampening 0, as PyTorch)"),
        BatchNormMode.fineTuningSpec,
    ] + BackboneOptions.specs

    public static let hyperparameters: [HyperParameterSpec] = sharedSpecs

    /// The Conv4's on episodes, a pre-training batch (its images and first-block activations) and the
    /// pre-training head over every training class.
    static func footprint(_ p: HyperParameters, _ c: FootprintContext) -> [MemoryFootprint] {
        let batch = MemoryFootprint.Factor("batch_size", p.int("batch_size"))
        return BackboneOptions.footprint(p, c) + [
            MemoryFootprint("the images of a pre-training batch", [batch, c.imageValues]),
            MemoryFootprint("first-block activations of a pre-training batch",
                            [batch, .init("width", p.int("width")), c.pixels]),
            MemoryFootprint("the pre-training head", [c.trainClasses, BackboneOptions.features(p, c)]),
        ]
    }

    public static let cosineHyperparameters: [HyperParameterSpec] = sharedSpecs + [
        HyperParameterSpec("scale", .double(0), in: .closed(0, 1000), "scale of the cosine logits (0: 2 for at most 200 classes, else 10, as the reference code)"),
        HyperParameterSpec("class_norm", .bool(true), "class-wise learnable norm of the cosine head's weights (weight normalisation, as the reference code)"),
    ]

    public init(_ p: HyperParameters, _ setting: LearnerSetting, head kind: Head) throws {
        self.kind = kind
        batchSize = try p.int("batch_size", atLeast: 1)
        optimizer = try AdamOptions.optimizer(p)
        fineTuning = FineTuning(learningRate: Float(try p.positiveDouble("finetune_lr")),
                                momentum: Float(try p.nonNegativeDouble("finetune_momentum")),
                                dampening: Float(try p.nonNegativeDouble("finetune_dampening")),
                                weightDecay: Float(try p.nonNegativeDouble("finetune_weight_decay")),
                                nesterov: p.bool("finetune_nesterov"),
                                steps: try p.int("finetune_steps", atLeast: 0),
                                batch: try p.int("finetune_batch", atLeast: 1),
                                sampling: try BatchSampling.parse(p, "finetune_batches"))
        if fineTuning.nesterov && (fineTuning.momentum == 0 || fineTuning.dampening != 0) {
            throw HyperParameterError.invalid(learner: p.learner, key: "finetune_nesterov",
                                              reason: "needs finetune_momentum > 0 and finetune_dampening 0 (as torch.optim.SGD), got momentum \(fineTuning.momentum) and dampening \(fineTuning.dampening)")
        }
        batchNorm = try BatchNormMode.parse(p, [.running, .transductive])
        if kind == .cosine {
            scale = Float(try p.nonNegativeDouble("scale"))
            classNorm = p.bool("class_norm")
        } else {
            scale = 0
            classNorm = false
        }
        guard setting.trainClassCount >= 2 else {
            throw HyperParameterError.invalid(learner: p.learner, key: "train_class_count",
                                              reason: "must be at least 2 for pre-training, got \(setting.trainClassCount)")
        }
        seed = setting.seed
        model = try BackboneOptions.conv4(p, setting, classes: nil)
        var rng = SeededGenerator(seed: setting.seed, "head")
        head = Self.makeHead(kind, features: model.featureCount, classes: setting.trainClassCount, classNorm: classNorm,
                             using: &rng)
    }

    /// The scale of cosine logits over `classes` classes: `scale` when set, else 2 up to 200 classes and
    /// 10 above (CloserLookFewShot's `distLinear`).
    public func cosineScale(classes: Int) -> Float {
        scale > 0 ? scale : (classes <= 200 ? 2 : 10)
    }

    /// A new head for `features` inputs and `classes` outputs (PyTorch's `Linear` initialisation; the
    /// cosine head's gains start at the norms of its weight rows, as weight normalisation does).
    public static func makeHead<G: RandomNumberGenerator>(_ kind: Head, features: Int, classes: Int, classNorm: Bool,
                                                          using rng: inout G) -> Parameters {
        let (w, b) = Initializer.pytorchDefault(weight: [classes, features], fanIn: features, using: &rng)
        switch kind {
        case .linear:
            return Parameters([("head.weight", w), ("head.bias", b)])
        case .cosine:
            var p = Parameters([("head.weight", w)])
            if classNorm {
                let norms = (0..<classes).map { k in
                    w.scalars[(k * features)..<((k + 1) * features)].reduce(0) { $0 + $1 * $1 }.squareRoot()
                }
                p["head.gain"] = Tensor(shape: [classes], scalars: norms, requiresGrad: true)
            }
            return p
        }
    }

    /// Logits [n × classes] of features [n × d] under a head: W x + b, or s · g ⊙ cos(x, w_k).
    public func headLogits(_ features: Tensor, _ p: Parameters) -> Tensor {
        switch kind {
        case .linear:
            return Layers.linear(features, p, "head")
        case .cosine:
            let w = p.require("head.weight")
            var cos = Tensor.cosineSimilarity(features, w, epsilon: 1e-10)
            if let gain = p["head.gain"] { cos = cos * gain.reshaped([1, w.shape[0]]) }
            return cos.scaled(by: cosineScale(classes: w.shape[0]))
        }
    }

    /// Features [n × d] of `images` at evaluation (constants): with the running batch-norm statistics, or
    /// with the batch's own when transductive (support set and queries are then separate batches).
    public func features(_ images: Tensor) -> Tensor {
        withoutGradients {
            model.forward(images, parameters: model.parameters, normalization: model.evaluationNormalization(batchNorm)).output
        }
    }

    public func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats {
        let classes = head.require("head.weight").shape[0]
        guard source.classCount <= classes else {
            throw ParameterMismatch("the training split has \(source.classCount) classes, the head was built for \(classes)")
        }
        let batch = try source.classificationBatch(iteration: iteration, size: batchSize)
        let backbone = model.parameters, theta = backbone.appending(head)
        // The backbone alone (the same tensors as in `theta`): Conv4 would apply a `head.*` linear layer itself.
        let result = model.forward(batch.tensor, parameters: backbone, normalization: .batch)
        let logits = headLogits(result.output, theta)
        let loss = Tensor.crossEntropy(logits: logits, labels: batch.labels)
        guard loss.item.isFinite else { throw DivergedError(iteration: iteration, loss: loss.item) }
        let updated = optimizer.update(theta, gradients: gradients(of: loss, wrt: theta.tensors, retainGraph: false))
        model.parameters = model.parameters.map { name, _ in updated.require(name) }
        head = head.map { name, _ in updated.require(name) }
        model.updateRunningStatistics(result.statistics, count: batch.count)
        return StepStats(loss: loss.item, accuracy: accuracy(logits: logits, labels: batch.labels))
    }

    /// The support indices of each fine-tuning step over `count` examples: `.passes` cuts reshuffled passes
    /// into consecutive batches of `batch` (the last of a pass possibly smaller, as the reference loop);
    /// `.independent` draws `batch` distinct examples afresh for each step.
    public static func fineTuneBatches(count: Int, batch: Int, steps: Int, sampling: BatchSampling,
                                       using rng: inout SeededGenerator) -> [[Int]] {
        if sampling == .independent {
            return (0..<steps).map { _ in BatchSampling.distinct(batch, of: count, using: &rng) }
        }
        var batches: [[Int]] = []
        var order = Array(0..<count)
        while batches.count < steps {
            rng.shuffle(&order)
            for start in stride(from: 0, to: count, by: batch) where batches.count < steps {
                batches.append(Array(order[start..<min(start + batch, count)]))
            }
        }
        return batches
    }

    /// A new head trained on support `features` [n × d], its initialisation and mini-batches drawn from a
    /// generator seeded by `seed` (head first, then the batches): a pure function of its inputs.
    public func fineTune(features: Tensor, labels: [Int], ways: Int, seed: UInt64,
                         recordLosses: Bool = false) -> (head: Parameters, losses: [Float]) {
        var rng = SeededGenerator(seed: seed, "finetune")
        let head = Self.makeHead(kind, features: features.shape[1], classes: ways, classNorm: classNorm, using: &rng)
        let batches = Self.fineTuneBatches(count: labels.count, batch: fineTuning.batch,
                                           steps: fineTuning.steps(forSupport: labels.count),
                                           sampling: fineTuning.sampling, using: &rng)
        return fineTune(features: features, labels: labels, head: head, batches: batches, recordLosses: recordLosses)
    }

    /// `head` trained on support `features` [n × d] by one SGD step per entry of `batches` (support indices);
    /// with `recordLosses`, `losses` holds the loss on the whole support set before training and after
    /// each step.
    public func fineTune(features: Tensor, labels: [Int], head: Parameters, batches: [[Int]],
                         recordLosses: Bool = false) -> (head: Parameters, losses: [Float]) {
        withGradients {
            let optimizer = ParameterOptimizer(fineTuning.rule, learningRate: fineTuning.learningRate)
            var p = head
            func supportLoss() -> Float {
                withoutGradients { Tensor.crossEntropy(logits: headLogits(features, p), labels: labels).item }
            }
            var losses = recordLosses ? [supportLoss()] : []
            for idx in batches {
                let leaves = p.asLeaves()
                let loss = Tensor.crossEntropy(logits: headLogits(features.gatherRows(idx), leaves),
                                               labels: idx.map { labels[$0] })
                p = optimizer.update(p, gradients: gradients(of: loss, wrt: leaves.tensors, retainGraph: false))
                if recordLosses { losses.append(supportLoss()) }
            }
            return (p, losses)
        }
    }

    public func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier {
        let supportFeatures = features(support.tensor)
        let tuned = fineTune(features: supportFeatures, labels: support.labels, ways: ways,
                             seed: MetricSupport.contentSeed(support, seed: seed)).head
        return ClosureClassifier { queries in self.headLogits(self.features(queries), tuned) }
    }

    public func checkpointState() -> [String: Tensor] {
        var state = model.parameters.appending(head).dictionary.mapKeys { "model/" + $0 }
        state.merge(MetricSupport.statisticsState(model.runningStatistics)) { a, _ in a }
        state.merge(MetricSupport.optimizerState(optimizer)) { a, _ in a }
        return state
    }

    public func restore(checkpointState state: [String: Tensor]) throws {
        let backbone = try model.parameters.loading(state, prefix: "model/")
        let restoredHead = try head.loading(state, prefix: "model/")
        let statistics = try MetricSupport.loadStatistics(state, like: model.runningStatistics)
        try MetricSupport.restoreOptimizer(optimizer, from: state, parameters: backbone.appending(restoredHead))
        model.parameters = backbone
        head = restoredHead
        model.runningStatistics = statistics
    }

    static func descriptor(_ kind: Head) -> LearnerDescriptor {
        LearnerDescriptor(
            name: kind == .linear ? "baseline" : "baseline++",
            summary: kind == .linear
                ? "Fine-tune baseline: pre-trained Conv4, a new linear head trained on each support set"
                : "Baseline++: pre-trained Conv4 with a cosine head, a new cosine head trained on each support set",
            paper: "Chen, Liu, Kira, Wang & Huang, A Closer Look at Few-shot Classification, ICLR 2019",
            hyperparameters: kind == .linear ? hyperparameters : cosineHyperparameters,
            footprint: footprint,
            evaluatesAnyEpisodeShape: true,
            trainsOnEpisodes: false
        ) { p, setting in try Baseline(p, setting, head: kind) }
    }
}
