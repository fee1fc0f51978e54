import Engine
import FewShotData

/// The few-shot setting a learner is built for: image shape, ways/shots/queries, and the seed.
public struct LearnerSetting: Sendable, Equatable {
    public var imageShape: ImageShape
    /// Ways of evaluation episodes.
    public var ways: Int
    public var shots: Int
    public var queriesPerClass: Int
    /// Ways of meta-training episodes (Prototypical Networks often train with more, e.g. 60).
    public var trainWays: Int
    /// Number of classes in the training split (for learners that pre-train a classifier over all of them).
    public var trainClassCount: Int
    /// Fixes the learner's initialisation and any randomness of its own.
    public var seed: UInt64
    /// Episodes per meta-training iteration (the meta-batch).
    public var metaBatch: Int
    /// Meta-training iterations planned (for schedules such as Reptile's annealed step size).
    public var iterations: Int

    public init(imageShape: ImageShape, ways: Int, shots: Int, queriesPerClass: Int, trainWays: Int,
                trainClassCount: Int, seed: UInt64, metaBatch: Int = 1, iterations: Int = 1) {
        self.metaBatch = metaBatch
        self.iterations = iterations
        self.imageShape = imageShape
        self.ways = ways
        self.shots = shots
        self.queriesPerClass = queriesPerClass
        self.trainWays = trainWays
        self.trainClassCount = trainClassCount
        self.seed = seed
    }
}

/// Where meta-training data comes from: episodes for episodic learners, plain labelled batches for
/// learners that pre-train a classifier (the fine-tuning baseline). Both are pure functions of the
/// iteration, so a run is reproducible.
public protocol TrainingSource {
    /// The `count` training episodes (`trainWays`-way) of meta-iteration `iteration`.
    func episodes(iteration: Int, count: Int) throws -> [Episode]
    /// A batch of `size` training images labelled by their class index in the training split
    /// (0..<`classCount`).
    func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages
    /// Number of classes in the training split.
    var classCount: Int { get }
}

/// What one meta-training iteration reports.
public struct StepStats: Sendable, Equatable {
    /// The training loss of the iteration (query loss for episodic learners).
    public var loss: Float
    /// Training accuracy on the iteration's queries, when the learner measures it.
    public var accuracy: Float?

    public init(loss: Float, accuracy: Float? = nil) {
        self.loss = loss
        self.accuracy = accuracy
    }
}

/// A classifier for one episode, made from its support set.
public protocol EpisodeClassifier {
    /// Logits for the queries: shape [queries × ways]. `queries` is NCHW.
    ///
    /// A transductive learner may use statistics of the whole query batch; a non-transductive one
    /// scores each query independently of the others.
    func logits(queries: Tensor) throws -> Tensor
}

/// A few-shot learning algorithm: it meta-trains on episodes, then turns a support set into a classifier.
///
/// The evaluation interface takes two calls, as easyfsl's `FewShotClassifier` does: `adapt` sees the
/// labelled support set, then the classifier scores the queries. One episode loop serves every learner.
public protocol MetaLearner: AnyObject {
    /// Whether the classifier uses statistics of the query batch (MAML with batch norm in training mode).
    var isTransductive: Bool { get }

    /// One meta-training iteration (one meta-batch, or one pre-training batch).
    func trainStep(iteration: Int, source: TrainingSource) throws -> StepStats

    /// A classifier for an episode with `ways` classes, from its labelled support set.
    func adapt(support: LabelledImages, ways: Int) throws -> EpisodeClassifier

    /// Whether `adapt` and the classifiers it returns may run on several threads at once, for different
    /// episodes (they read the learner and change nothing in it). The runner then evaluates episodes in
    /// parallel. False by default.
    var adaptsConcurrently: Bool { get }

    /// The meta-trained state, as named tensors (a checkpoint is one HDF5 dataset per name).
    func checkpointState() -> [String: Tensor]

    /// Restores a state produced by `checkpointState()`; throws if names or shapes do not match.
    func restore(checkpointState: [String: Tensor]) throws
}

/// The one rule for a learner that diverged, applied by the runner to every learner: a training step whose
/// loss is not finite or exceeds `lossBound`, a step that throws `DivergedError`, or evaluation logits that
/// are not all finite. The cell is then reported "diverged" (a result, reused on later runs), never "failed".
public enum Divergence {
    /// Cross-entropy losses of a learner that is learning stay near ln(ways) or below (ln 10 000 ≈ 9.2);
    /// a loss above 10⁴ means logits have blown up.
    public static let lossBound: Float = 1e4

    /// Whether a training loss means training diverged.
    public static func diverged(loss: Float) -> Bool { !loss.isFinite || loss > lossBound }
}

extension MetaLearner {
    public var isTransductive: Bool { false }
    public var adaptsConcurrently: Bool { false }
}
