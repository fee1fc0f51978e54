import Foundation
import Learners

/// One cell of a suite: a learner entry in a setting (with the learner's own training shape) and a seed.
public struct PlannedCell: Sendable, Equatable {
    /// Position in the suite's order (setting, then learner, then seed).
    public var index: Int
    public var entry: LearnerEntry
    /// The setting the suite lists.
    public var suiteSetting: SettingSpec
    /// The setting with the learner's own meta-training episode shape, if it has one: it names the cell.
    public var setting: SettingSpec
    public var seed: UInt64
    public var training: TrainingBudget
    public var evaluation: EvaluationSpec
    /// The static cost estimate (`CostModel`) of training and of evaluating the cell, in arbitrary units:
    /// only ratios mean anything.
    public var trainingCost: Double
    public var evaluationCost: Double
    /// The cell's training group (`SuitePlan.groups`): cells that share one meta-training.
    public var group: Int

    /// Training and evaluating it alone.
    public var cost: Double { trainingCost + evaluationCost }

    public var key: CellKey { CellKey(label: entry.label, setting: setting.id, seed: seed) }
    public var fileName: String { key.fileName }
}

/// A suite as the list of its cells, a pure function of the suite (and the evaluation override): the same
/// on every machine, so that every node of a cluster computes the same shards.
public struct SuitePlan: Sendable, Equatable {
    public var cells: [PlannedCell]
    /// Cells that share one meta-training, as indices into `cells`, in suite order (the first cell of a group
    /// comes first): the same learner entry and seed with the same training episodes, when the learner
    /// serves any episode shape (`LearnerDescriptor.evaluatesAnyEpisodeShape`) — every setting, when it does
    /// not train on episodes at all (`trainsOnEpisodes`, the baselines); else each cell alone.
    public var groups: [[Int]]

    public init(suite: Suite, registry: LearnerRegistry = .builtIn, evaluationEpisodes: Int? = nil) {
        var evaluation = suite.evaluation
        if let episodes = evaluationEpisodes { evaluation.episodes = episodes }
        var cells: [PlannedCell] = []
        var groups: [[Int]] = []
        var groupOf: [String: Int] = [:]
        /// Adds the cells of `entry` in `setting` (training shape applied; for an episode file, the serving
        /// setting's) to the training group of `trainedAs`, the setting whose model they evaluate.
        func add(_ entry: LearnerEntry, suiteSetting: SettingSpec, setting: SettingSpec, trainedAs: SettingSpec,
                 evaluation: EvaluationSpec) {
            let training = suite.training(for: entry)
            let costs = CostModel.costs(entry: entry, setting: setting, training: training, evaluation: evaluation,
                                        registry: registry)
            let descriptor = try? registry.descriptor(named: entry.name)
            let anyShape = descriptor?.evaluatesAnyEpisodeShape ?? false
            let episodic = descriptor?.trainsOnEpisodes ?? true
            for seed in suite.seeds {
                // What the training depends on: the learner entry and seed, the training episodes (for a
                // learner that draws them), and the evaluation shape (for one whose model depends on it).
                var key = "\(entry.label)\u{0}\(seed)"
                if episodic || !anyShape { key += "\u{0}\(trainedAs.trainWays)w\(trainedAs.trainShots)s\(trainedAs.trainQueries)q" }
                if !anyShape { key += "\u{0}\(trainedAs.id)" }
                let group: Int
                if let known = groupOf[key] {
                    group = known
                } else {
                    group = groups.count
                    groupOf[key] = group
                    groups.append([])
                }
                groups[group].append(cells.count)
                cells.append(PlannedCell(index: cells.count, entry: entry, suiteSetting: suiteSetting,
                                         setting: setting, seed: seed, training: training, evaluation: evaluation,
                                         trainingCost: costs.training, evaluationCost: costs.evaluation, group: group))
            }
        }
        for suiteSetting in suite.settings {
            for entry in suite.learners where entry.runs(in: suiteSetting) {
                let setting = entry.training.applied(to: suiteSetting)
                add(entry, suiteSetting: suiteSetting, setting: setting, trainedAs: setting, evaluation: evaluation)
            }
        }
        // Episode files after the suite's settings: each learner's cells join the group of its serving setting,
        // whose cell comes first, so they never train. Every episode of the file (or the first --episodes).
        for file in suite.evaluation.episodeFiles {
            let fileEvaluation = EvaluationSpec(episodes: min(evaluationEpisodes ?? file.summary.count, file.summary.count), seed: 0)
            for entry in suite.learners where entry.runs(inSettingNamed: file.name) {
                guard let serving = suite.servingSetting(for: entry) else { continue }  // refused by the suite check
                let trainedAs = entry.training.applied(to: serving)
                var setting = trainedAs
                setting.episodesFile = file.name
                add(entry, suiteSetting: SettingSpec(ways: serving.ways, shots: serving.shots, queries: serving.queries,
                                                     episodesFile: file.name),
                    setting: setting, trainedAs: trainedAs, evaluation: fileEvaluation)
            }
        }
        self.cells = cells
        self.groups = groups
    }

    /// The static cost of each training group: one training, every member's evaluation.
    public var groupCosts: [Double] {
        groups.map { members in
            (members.first.map { cells[$0].trainingCost } ?? 0) + members.reduce(0) { $0 + cells[$1].evaluationCost }
        }
    }

    /// The training groups of `shard` (indices into `groups`), balanced by `groupCosts`.
    public func groups(of shard: Shard) -> [Int] {
        Self.partition(costs: groupCosts, count: shard.count)[shard.index]
    }

    /// The cells of `shard`, in suite order: whole training groups, never split.
    public func cells(of shard: Shard) -> [PlannedCell] {
        groups(of: shard).flatMap { groups[$0] }.sorted().map { cells[$0] }
    }

    /// Splits items with the given costs into `count` groups of balanced total cost: largest first, each to
    /// the group with the least cost so far (ties: the lower group; equal costs: the earlier item first).
    /// Deterministic; each group lists its item indices in increasing order. A group's total never exceeds
    /// the mean total plus the largest single cost (the greedy bound); empty groups when items are fewer.
    public static func partition(costs: [Double], count: Int) -> [[Int]] {
        let count = max(1, count)
        var groups = [[Int]](repeating: [], count: count)
        var loads = [Double](repeating: 0, count: count)
        let order = costs.indices.sorted { a, b in costs[a] != costs[b] ? costs[a] > costs[b] : a < b }
        for item in order {
            var best = 0
            for group in 1..<count where loads[group] < loads[best] { best = group }
            groups[best].append(item)
            loads[best] += costs[item]
        }
        return groups.map { $0.sorted() }
    }
}

/// Which part of a plan one process runs: shard `index` (0-based) of `count`.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public static let maximumCount = 10_000

    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws {
        guard (1...Self.maximumCount).contains(count) else {
            throw RunnerError.invalidOption("the shard count must be in 1…\(Self.maximumCount), got \(count)")
        }
        guard (0..<count).contains(index) else {
            throw RunnerError.invalidOption("the shard index must be in 0…\(count - 1) for \(count) shards, got \(index)")
        }
        self.index = index
        self.count = count
    }

    /// "i/n", as `--shard` takes it.
    public var description: String { "\(index)/\(count)" }

    /// Parses `i/n` (0-based index).
    public static func parse(_ text: String) throws -> Shard {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw RunnerError.invalidOption("--shard takes INDEX/COUNT with a 0-based index, as 0/4, got '\(text)'")
        }
        return try Shard(index: index, count: count)
    }

    /// The shard a process runs and where it came from.
    public struct Selection: Sendable, Equatable {
        public var shard: Shard
        /// What gave the index and count: `--shard`, the Slurm array variables, or the Kubernetes index.
        public var source: String
    }

    /// The shard from `--shard`, else from a Slurm array task (`SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN`, count `SLURM_ARRAY_TASK_COUNT` or MAX − MIN + 1), else from a Kubernetes Indexed
    /// Job (`JOB_COMPLETION_INDEX`, count from `--shards`); nil when none applies (the whole suite).
    public static func select(explicit: String?, count: Int?, environment: [String: String]) throws -> Selection? {
        if let explicit {
            let shard = try parse(explicit)
            if let count, count != shard.count {
                throw RunnerError.invalidOption("--shard \(explicit) and --shards \(count) disagree on the shard count")
            }
            return Selection(shard: shard, source: "--shard \(explicit)")
        }
        func number(_ name: String) throws -> Int? {
            guard let text = environment[name] else { return nil }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw RunnerError.invalidOption("\(name) is '\(text)', not a whole number")
            }
            return value
        }
        if let id = try number("SLURM_ARRAY_TASK_ID") {
            if let step = try number("SLURM_ARRAY_TASK_STEP"), step != 1 {
                throw RunnerError.invalidOption("SLURM_ARRAY_TASK_STEP is \(step): submit the array as a contiguous range (--array=0-N) so that task ids number the shards")
            }
            let minimum = try number("SLURM_ARRAY_TASK_MIN") ?? 0
            var tasks = try number("SLURM_ARRAY_TASK_COUNT")
            if tasks == nil, let maximum = try number("SLURM_ARRAY_TASK_MAX") {
                let (span, overflow) = maximum.subtractingReportingOverflow(minimum)
                tasks = overflow || span == .max ? nil : span + 1
            }
            guard let slurmCount = tasks ?? count else {
                throw RunnerError.invalidOption("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is: give --shards COUNT")
            }
            if let count, count != slurmCount {
                throw RunnerError.invalidOption("--shards \(count), but the Slurm array has \(slurmCount) tasks")
            }
            let (index, overflow) = id.subtractingReportingOverflow(minimum)
            guard !overflow else { throw RunnerError.invalidOption("SLURM_ARRAY_TASK_ID \(id) is out of range") }
            return Selection(shard: try Shard(index: index, count: slurmCount),
                             source: "the Slurm array (SLURM_ARRAY_TASK_ID=\(id), \(slurmCount) tasks)")
        }
        if let index = try number("JOB_COMPLETION_INDEX") {
            guard let count else {
                throw RunnerError.invalidOption("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give the number of shards with --shards COUNT")
            }
            return Selection(shard: try Shard(index: index, count: count),
                             source: "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=\(index))")
        }
        if let count {
            throw RunnerError.invalidOption("--shards \(count) needs a shard index: from --shard INDEX/\(count), a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)")
        }
        return nil
    }
}

/// A static estimate of a cell's compute, from the suite alone (never from timings, so every node agrees):
/// images pushed through the network, forward and backward counted as 3 passes, scaled by the square of the
/// network width. Only ratios between cells matter; `bench plan` times the learners for seconds.
public enum CostModel {
    public static func cost(entry: LearnerEntry, setting: SettingSpec, training: TrainingBudget,
                            evaluation: EvaluationSpec, registry: LearnerRegistry) -> Double {
        let parts = costs(entry: entry, setting: setting, training: training, evaluation: evaluation, registry: registry)
        return parts.training + parts.evaluation
    }

    /// The cost of meta-training (validation included) and of evaluating, apart.
    public static func costs(entry: LearnerEntry, setting: SettingSpec, training: TrainingBudget,
                             evaluation: EvaluationSpec, registry: LearnerRegistry) -> (training: Double, evaluation: Double) {
        var values = entry.hyperparameters
        if let descriptor = try? registry.descriptor(named: entry.name),
           let full = try? HyperParameters(learner: entry.name, specs: descriptor.hyperparameters, given: values) {
            values = full.values
        }
        func number(_ key: String, _ fallback: Double) -> Double {
            switch values[key] {
            case .int(let v)?: return Double(v)
            case .double(let v)?: return v
            default: return fallback
            }
        }
        func flag(_ key: String) -> Bool { if case .bool(true)? = values[key] { return true } else { return false } }
        let trainSupport = Double(setting.trainWays) * Double(setting.trainShots)
        let trainQueries = Double(setting.trainWays) * Double(setting.trainQueries)
        let support = Double(setting.ways) * Double(setting.shots)
        let queries = Double(setting.ways) * Double(setting.queries)
        let metaBatch = Double(training.metaBatch)
        let step: Double, episode: Double
        switch entry.name {
        case "maml", "fomaml":
            let order = entry.name == "maml" && !flag("first_order") ? 2.0 : 1.0
            step = metaBatch * order * (number("inner_steps", 5) * 3 * trainSupport + 3 * trainQueries)
            episode = number("eval_inner_steps", 10) * 3 * support + queries
        case "reptile":
            step = metaBatch * number("inner_steps", 5) * 3 * number("inner_batch", 10)
            episode = number("eval_inner_steps", 50) * 3 * number("eval_inner_batch", 5) + support + queries
        case "baseline", "baseline++":
            step = 3 * number("batch_size", 64)
            let passes = number("finetune_steps", 0) > 0 ? number("finetune_steps", 0)
                : 100 * (support / max(1, number("finetune_batch", 4))).rounded(.up)
            episode = support + queries + 0.05 * passes * number("finetune_batch", 4)
        default:  // protonet, matchingnet, and learners of unknown cost
            step = metaBatch * 3 * (trainSupport + trainQueries)
            episode = support + queries
        }
        let validations = training.validateEvery > 0 ? Double(training.iterations / training.validateEvery + 1) : 0
        let width = number("width", 64) / 64
        let scale = width * width
        let trainingImages = Double(training.iterations) * step + validations * Double(training.validationEpisodes) * episode
        return (max(1, trainingImages * scale), max(1, Double(evaluation.episodes) * episode * scale))
    }
}
