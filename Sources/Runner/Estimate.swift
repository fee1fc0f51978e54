import Engine
import FewShotData
import Foundation
import Learners

/// A cell's estimated time: from its stored result when the folder holds one of the same configuration
/// (then a rerun reuses it), else timed from a few training steps and episodes on this machine.
public struct CellEstimate: Sendable {
    public enum Source: String, Sendable { case measured, stored }

    public var cell: PlannedCell
    /// Meta-training, validation included: 0 for a cell that shares the training of an earlier cell of its
    /// group (`SuitePlan.groups`).
    public var trainingSeconds: Double
    public var evaluationSeconds: Double
    public var source: Source
    /// The cell whose training this one shares, if any.
    public var sharesTrainingWith: CellKey?

    public var seconds: Double { trainingSeconds + evaluationSeconds }
    /// Seconds a rerun would spend on it: 0 for a stored cell.
    public var remainingSeconds: Double { source == .stored ? 0 : seconds }
}

/// The estimated time of every cell of a suite, and the wall time of n shards (the static partition of
/// `SuitePlan`, so the same shards `bench run --shard` runs).
public struct SuiteEstimate: Sendable {
    public var plan: SuitePlan
    public var cells: [CellEstimate]

    public var totalSeconds: Double { cells.reduce(0) { $0 + $1.seconds } }
    public var remainingSeconds: Double { cells.reduce(0) { $0 + $1.remainingSeconds } }

    /// The remaining seconds of each of `shards` shards: its training groups, each trained once when any of
    /// its cells is still to run.
    public func shardSeconds(_ shards: Int) -> [Double] {
        SuitePlan.partition(costs: plan.groupCosts, count: shards).map { groups in
            groups.reduce(0) { total, group in total + groupSeconds(group) }
        }
    }

    /// The remaining seconds of one training group.
    func groupSeconds(_ group: Int) -> Double {
        let members = plan.groups[group].map { cells[$0] }
        let remaining = members.filter { $0.source != .stored }
        guard !remaining.isEmpty else { return 0 }
        let training = members.map(\.trainingSeconds).max() ?? 0
        return training + remaining.reduce(0) { $0 + $1.evaluationSeconds }
    }

    /// The remaining wall time with `shards` shards running at once: the slowest shard.
    public func wallSeconds(shards: Int) -> Double { shardSeconds(shards).max() ?? 0 }

    /// The fewest shards whose wall time is within 10% of the longest training group (more shards cannot
    /// beat it).
    public var suggestedShards: Int {
        let longest = plan.groups.indices.map(groupSeconds).max() ?? 0
        guard longest > 0 else { return 1 }
        for n in 1...max(1, plan.groups.count) where wallSeconds(shards: n) <= longest * 1.1 { return n }
        return max(1, plan.groups.count)
    }
}

/// Time estimates for planning cluster jobs.
public enum ClusterEstimate {
    /// Estimates every cell of `suite` (see `CellEstimate`); `output` is where stored cells are looked for.
    public static func estimate(suite: Suite, registry: LearnerRegistry = .builtIn, output: String,
                                episodes: Int? = nil, threads: Int = RunOptions.defaultThreads,
                                dataset: FewShotDataset? = nil, progress: ProgressPrinter? = nil) throws -> SuiteEstimate {
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: dataset,
                                 options: RunOptions(threads: threads, outputDirectory: output, episodes: episodes),
                                 progress: progress)
        return try runner.estimate()
    }

    /// The estimated wall seconds of the slowest of `shards` shards of `suite`, each running on `threads`
    /// compute threads, stored cells in `output` counted as done.
    public static func shardSeconds(suite: Suite, shards: Int, output: String,
                                    threads: Int = RunOptions.defaultThreads) throws -> Double {
        try estimate(suite: suite, output: output, threads: threads).wallSeconds(shards: shards)
    }
}

extension SuiteRunner {
    /// Times each learner × setting of the plan for a few steps and episodes (seeds share the time).
    func estimate() throws -> SuiteEstimate {
        guard SuiteLimits.threads.contains(options.threads) else {
            throw RunnerError.invalidOption("--threads must be in \(SuiteLimits.threads.lowerBound)…\(SuiteLimits.threads.upperBound), got \(options.threads)")
        }
        if let message = Convolutions.fromEnvironment.error { throw RunnerError.invalidOption(message) }
        ComputeThreads.set(options.threads)
        let learners = try selectedLearners()
        let dataset = try loadedDataset()
        let data = try DataPlan(suite: suite, dataset: dataset)
        try data.checkSamplers(learners: learners, normalization: suite.normalization, suite: suite)
        try suite.validate(imageShape: dataset.imageShape, trainClassCount: data.train.classes.count,
                           registry: registry, learners: learners)
        let plan = SuitePlan(suite: suite, registry: registry, evaluationEpisodes: options.episodes)
        let store = CellStore(readingFolder: options.outputDirectory)
        var timed: [String: (step: Double, episode: Double)] = [:]
        var estimates: [CellEstimate] = []
        for cell in plan.cells {
            let config = try cellConfig(entry: cell.entry, setting: cell.setting, seed: cell.seed,
                                        evaluation: cell.evaluation, plan: data)
            let budget = cell.training
            let validations = data.validation != nil && budget.validateEvery > 0
                ? budget.iterations / budget.validateEvery + (budget.iterations % budget.validateEvery == 0 ? 0 : 1) : 0
            let validationEpisodes = Double(validations * budget.validationEpisodes)
            let leader = plan.groups[cell.group].first ?? cell.index
            let shared = leader == cell.index ? nil : plan.cells[leader].key
            let adaptMilliseconds: Double, trainingSeconds: Double, source: CellEstimate.Source
            if case .valid(let stored) = store.read(cell.key, fingerprint: config.fingerprint) {
                adaptMilliseconds = stored.adaptMillisecondsPerEpisode ?? 0
                trainingSeconds = stored.trainingSeconds
                source = .stored
            } else {
                let id = "\(cell.entry.label) \(cell.setting.id)"
                if timed[id] == nil {
                    progress?.message("timing \(id)")
                    timed[id] = try time(cell, config: config, data: data)
                }
                let t = timed[id] ?? (0, 0)
                adaptMilliseconds = t.episode * 1000
                trainingSeconds = Double(budget.iterations) * t.step
                source = .measured
            }
            // Validation runs in the shared training, on the first cell's episodes.
            estimates.append(CellEstimate(
                cell: cell, trainingSeconds: shared == nil ? trainingSeconds + adaptMilliseconds / 1000 * validationEpisodes : 0,
                evaluationSeconds: adaptMilliseconds / 1000 * Double(cell.evaluation.episodes), source: source,
                sharesTrainingWith: shared))
        }
        return SuiteEstimate(plan: plan, cells: estimates)
    }

    func loadedDataset() throws -> FewShotDataset {
        if let dataset { return dataset }
        let loaded = try Self.loadDataset(suite.dataset, suiteFile: suite.file)
        dataset = loaded
        return loaded
    }

    /// Seconds per training step and per evaluation episode: the mean of up to 3 steps and 3 episodes after
    /// a first one (allocations, caches) that is not counted.
    private func time(_ cell: PlannedCell, config: CellConfig, data: DataPlan) throws -> (step: Double, episode: Double) {
        let setting = config.setting
        let learner = try data.makeLearner(config, registry: registry)
        let normalization = suite.normalization
        let source = try data.trainingSource(config, normalization: normalization)
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        let steps = min(3, max(0, config.training.iterations - 1))
        var step = 0.0
        if config.training.iterations > 0 {
            _ = try learner.trainStep(iteration: 0, source: source)
            for i in 0..<steps { step += try seconds { _ = try learner.trainStep(iteration: i + 1, source: source) } }
            if steps > 0 { step /= Double(steps) }
        }
        try Interruption.check()
        let sampler = try EvaluationEpisodes.sampler(plan: data, setting: setting, normalization: normalization,
                                                     seed: config.evaluation.seed)
        let evaluator = EpisodeEvaluator(label: cell.entry.label, progress: nil)
        _ = try evaluator.score(learner, episode: sampler.episode(0), index: 0)
        var episode = 0.0
        for i in 1...3 { episode += try seconds { _ = try evaluator.score(learner, episode: sampler.episode(i), index: i) } }
        episode /= 3
        // Learners that adapt concurrently evaluate `threads` episodes at once.
        if learner.adaptsConcurrently { episode /= Double(max(1, ComputeThreads.count)) }
        return (step, episode)
    }
}
