import FewShotData

/// How to make a learner: its name, what it is, the paper, its hyperparameters and a factory.
public struct LearnerDescriptor {
    public var name: String
    public var summary: String
    public var paper: String
    public var hyperparameters: [HyperParameterSpec]
    /// The memory the learner holds at once for given hyperparameters and episode sizes, checked against
    /// the memory budget before training (none by default).
    public var footprint: (HyperParameters, FootprintContext) -> [MemoryFootprint]
    public var make: (HyperParameters, LearnerSetting) throws -> MetaLearner
    /// Whether a trained learner serves episodes of any ways, shots and queries: `make` and `trainStep` use
    /// only the training side of `LearnerSetting` (image shape, training ways, class count, seed, meta-batch,
    /// iterations), never `ways`, `shots` or `queriesPerClass`. Then the runner trains it once for every
    /// setting of a suite that shares its training episodes and evaluates that one model on each
    /// (the papers' protocol: Prototypical Networks trained at 60-way, evaluated 5- and 20-way). False by
    /// default, so a learner whose model depends on the evaluation shape (MAML's head) is trained per setting.
    public var evaluatesAnyEpisodeShape: Bool
    /// Whether meta-training draws episodes (`TrainingSource.episodes`); false for learners that pre-train on
    /// classification batches only (the baselines), whose training then does not depend on the training
    /// episode shape either: with `evaluatesAnyEpisodeShape`, one training serves every setting.
    public var trainsOnEpisodes: Bool

    public init(name: String, summary: String, paper: String, hyperparameters: [HyperParameterSpec],
                footprint: @escaping (HyperParameters, FootprintContext) -> [MemoryFootprint] = { _, _ in [] },
                evaluatesAnyEpisodeShape: Bool = false, trainsOnEpisodes: Bool = true,
                make: @escaping (HyperParameters, LearnerSetting) throws -> MetaLearner) {
        self.name = name
        self.summary = summary
        self.paper = paper
        self.hyperparameters = hyperparameters
        self.footprint = footprint
        self.evaluatesAnyEpisodeShape = evaluatesAnyEpisodeShape
        self.trainsOnEpisodes = trainsOnEpisodes
        self.make = make
    }

    /// Checks `given` hyperparameters and builds the learner.
    public func instantiate(_ given: [String: HyperValue], setting: LearnerSetting) throws -> MetaLearner {
        try make(HyperParameters(learner: name, specs: hyperparameters, given: given), setting)
    }
}

/// A learner name that no registration provides.
public struct UnknownLearnerError: Error, Equatable, CustomStringConvertible {
    public var name: String
    public var known: [String]
    public var description: String {
        "unknown learner '\(name)' (known learners: \(known.joined(separator: ", ")))"
    }
}

/// Maps learner names to descriptors. Adding a learner is one new file and one line in `builtIn`.
public struct LearnerRegistry {
    public private(set) var descriptors: [LearnerDescriptor]

    public init(_ descriptors: [LearnerDescriptor] = []) {
        self.descriptors = descriptors
    }

    /// Every learner MetaBench ships, in the order reports list them.
    public static var builtIn: LearnerRegistry {
        LearnerRegistry(builtInLearners)
    }

    /// Adds (or replaces) a learner.
    public mutating func register(_ descriptor: LearnerDescriptor) {
        descriptors.removeAll { $0.name == descriptor.name }
        descriptors.append(descriptor)
    }

    public var names: [String] { descriptors.map(\.name) }

    /// The descriptor called `name`, or an error listing the known names.
    public func descriptor(named name: String) throws -> LearnerDescriptor {
        if let d = descriptors.first(where: { $0.name == name }) { return d }
        throw UnknownLearnerError(name: name, known: names)
    }
}

/// The registration lines: one per learner.
let builtInLearners: [LearnerDescriptor] = [
    MAML.descriptor(firstOrder: false),
    MAML.descriptor(firstOrder: true),
    Reptile.descriptor,
    ProtoNet.descriptor,
    MatchingNet.descriptor,
    Baseline.descriptor(.linear),
    Baseline.descriptor(.cosine),
]
