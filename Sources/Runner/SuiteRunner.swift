import Engine
import FewShotData
import Foundation
import Learners

/// Options of one run of a suite (the `bench run` flags).
public struct RunOptions: Sendable, Equatable {
    /// Learner labels or names to run; empty runs every learner.
    public var only: [String]
    /// Compute threads (`ComputeThreads.set`); recorded in the results.
    public var threads: Int
    /// Where cells and reports go.
    public var outputDirectory: String
    /// Overrides the suite's number of evaluation episodes.
    public var episodes: Int?
    /// Reuse stored cells whose configuration matches, and resume a cell from its checkpoint (an interrupted
    /// run picks up where it stopped).
    public var resume: Bool
    /// Run only this shard's cells (and write no reports: `bench report` merges the shards' folder).
    public var shard: Shard?
    /// Seconds between the checkpoints of a cell in training (0: after every iteration). A SIGTERM or
    /// SIGINT saves one too.
    public var checkpointInterval: Double

    /// Never train: evaluate the models earlier runs kept in `<output>/models` (`bench evaluate`); a cell
    /// whose model is not there is an error before anything runs.
    public var evaluateOnly = false

    public static let defaultCheckpointInterval = 300.0
    public static let checkpointIntervalRange = 0.0...86_400.0

    public init(only: [String] = [], threads: Int = RunOptions.defaultThreads, outputDirectory: String,
                episodes: Int? = nil, resume: Bool = true, shard: Shard? = nil,
                checkpointInterval: Double = RunOptions.defaultCheckpointInterval) {
        self.only = only
        self.threads = threads
        self.outputDirectory = outputDirectory
        self.episodes = episodes
        self.resume = resume
        self.shard = shard
        self.checkpointInterval = checkpointInterval
    }

    /// 2, or the machine's core count when it has fewer.
    public static var defaultThreads: Int { max(1, min(2, ProcessInfo.processInfo.activeProcessorCount)) }

    /// `results/<suite name>` under the current directory.
    public static func defaultOutputDirectory(for suite: Suite) -> String {
        "results/\(suite.name)"
    }
}

/// What a run did: the result set, and how many cells it trained or took from an earlier run.
public struct RunSummary: Sendable {
    public var results: ResultSet
    /// Cells trained in this run.
    public var trainedCells: Int
    /// Cells reused from files of an earlier run with the same configuration.
    public var reusedCells: Int
    /// Cells of the suite not stored in the folder (cells of other shards, before the merge).
    public var missingCells: [CellKey]
}

/// Runs a suite, or one shard of it: the plan (`SuitePlan`) lists the cells, the store (`CellStore`) reuses
/// stored ones and writes each finished cell at once, the trainer (`CellTrainer`) meta-trains a cell with
/// checkpoints, the evaluator (`EpisodeEvaluator`) scores it on the test episodes every learner gets; then
/// the reports, built from the store like `bench report` builds them.
public final class SuiteRunner {
    public let suite: Suite
    public let registry: LearnerRegistry
    public let options: RunOptions
    public let progress: ProgressPrinter?
    var dataset: FewShotDataset?

    /// `dataset` skips loading the suite's dataset (tests pass a small in-memory one).
    public init(suite: Suite, registry: LearnerRegistry = .builtIn, dataset: FewShotDataset? = nil,
                options: RunOptions, progress: ProgressPrinter? = nil) {
        self.suite = suite
        self.registry = registry
        self.dataset = dataset
        self.options = options
        self.progress = progress
    }

    /// Loads the suite's dataset: the embedded one, or a folder or file through `DatasetLoader`.
    public static func loadDataset(_ spec: DatasetSpec, suiteFile: String) throws -> FewShotDataset {
        do {
            if spec.isEmbedded { return try EmbeddedDataset.load() }
            guard FileManager.default.fileExists(atPath: spec.path) else {
                throw RunnerError.dataset(file: suiteFile, line: spec.line,
                                          message: "no such file or folder: \(spec.path) (relative paths are resolved against the current directory, \(FileManager.default.currentDirectoryPath))")
            }
            return try DatasetLoader.load(spec.path, options: spec.options)
        } catch let error as RunnerError {
            throw error
        } catch {
            throw RunnerError.dataset(file: suiteFile, line: spec.line, message: "\(error)")
        }
    }

    /// The learners `options.only` selects (by label or name), in suite order.
    public func selectedLearners() throws -> [LearnerEntry] {
        let wanted = options.only.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard !wanted.isEmpty else { return suite.learners }
        for name in wanted where !suite.learners.contains(where: { $0.label == name || $0.name == name }) {
            throw RunnerError.unknownLearnerSelection(name, labels: suite.learners.map(\.label))
        }
        return suite.learners.filter { wanted.contains($0.label) || wanted.contains($0.name) }
    }

    /// Runs every selected cell of the shard (reusing stored ones that match) and, for a whole-suite run,
    /// writes the reports.
    @discardableResult
    public func run() throws -> RunSummary {
        guard SuiteLimits.threads.contains(options.threads) else {
            throw RunnerError.invalidOption("--threads must be in \(SuiteLimits.threads.lowerBound)…\(SuiteLimits.threads.upperBound), got \(options.threads)")
        }
        if let episodes = options.episodes, !SuiteLimits.episodes.contains(episodes) {
            throw RunnerError.invalidOption("--episodes must be in \(SuiteLimits.episodes.lowerBound)…\(SuiteLimits.episodes.upperBound), got \(episodes)")
        }
        guard RunOptions.checkpointIntervalRange.contains(options.checkpointInterval) else {
            throw RunnerError.invalidOption("--checkpoint-interval must be in 0…\(Int(RunOptions.checkpointIntervalRange.upperBound)) seconds, got \(options.checkpointInterval)")
        }
        if let message = Convolutions.fromEnvironment.error { throw RunnerError.invalidOption(message) }
        let learners = try selectedLearners()
        ComputeThreads.set(options.threads)

        let dataset = try self.dataset ?? Self.loadDataset(suite.dataset, suiteFile: suite.file)
        self.dataset = dataset
        let data = try DataPlan(suite: suite, dataset: dataset, evaluationDataset: evaluationDataset)
        if let note = data.validationNote { progress?.message("note: \(note)") }
        if let note = data.crossDomainNote { progress?.message("note: \(note)") }
        try data.checkSamplers(learners: learners, normalization: suite.normalization, suite: suite)
        // Sizes that depend on the images (weights, activations, episode batches) fit in memory, before any training.
        try suite.validate(imageShape: dataset.imageShape, trainClassCount: data.train.classes.count,
                           registry: registry, learners: learners)
        try checkEpisodeFiles(imageShape: dataset.imageShape)

        let plan = SuitePlan(suite: suite, registry: registry, evaluationEpisodes: options.episodes)
        let configs = try plan.cells.map { try cellConfig(entry: $0.entry, setting: $0.setting, seed: $0.seed,
                                                          evaluation: $0.evaluation, plan: data) }
        // One whole-suite run per folder, or the shards of one suite side by side.
        let store = try CellStore(folder: options.outputDirectory, shared: options.shard != nil)
        defer { store.release() }
        for path in store.removeStaleTemporaries() {
            progress?.message("note: removed \(path), left by an interrupted run")
        }
        try store.writeManifest(manifest(plan: plan, configs: configs, data: data))

        let selected = Set(learners.map(\.label))
        // Whole training groups (one training, several settings evaluated), in suite order.
        let groups = (options.shard.map { plan.groups(of: $0) } ?? Array(plan.groups.indices)).sorted()
            .map { plan.groups[$0].map { plan.cells[$0] } }
            .filter { $0.first.map { selected.contains($0.entry.label) } ?? false }
        let total = groups.reduce(0) { $0 + $1.count }
        var trainer = CellTrainer(registry: registry, data: data, normalization: suite.normalization, progress: progress)
        trainer.interruptBeforeIteration = interruptBeforeIteration
        // Each group's cells still to run (stored ones are reused), decided before anything runs.
        var work: [(leader: PlannedCell, pending: [(cell: PlannedCell, name: String)])] = []
        var reused = 0, number = 0
        for members in groups {
            guard let leader = members.first else { continue }
            var pending: [(cell: PlannedCell, name: String)] = []
            for cell in members {
                number += 1
                let name = "[\(number)/\(total)] \(cell.entry.label) \(cell.setting.id) seed \(cell.seed)"
                if options.resume {
                    switch store.read(cell.key, fingerprint: configs[cell.index].fingerprint) {
                    case .valid(let stored) where stored.trainedWith == Self.trainedWith(cell, leader: leader):
                        reused += 1
                        progress?.cellFinished("\(name): \(Self.summary(of: stored)) (stored)")
                        continue
                    case .invalid(let reason):
                        progress?.message("warning: \(store.path(of: cell.key)): \(reason); retraining the cell")
                    case .valid, .absent, .otherConfiguration, .failed:
                        break
                    }
                }
                pending.append((cell, name))
            }
            guard !pending.isEmpty else {
                // A checkpoint left by a process killed between writing the cells and removing it.
                try? FileManager.default.removeItem(atPath: store.checkpointPath(of: leader.key))
                continue
            }
            work.append((leader, pending))
        }
        if options.evaluateOnly {
            let missing = work.filter { !TrainedModel.isStored(at: store.modelPath(of: $0.leader.key),
                                                                fingerprint: TrainedModel.fingerprint(of: configs[$0.leader.index])) }
            if !missing.isEmpty {
                throw RunnerError.invalidOption("no trained model in \(store.folder)/models for "
                    + missing.map { "\($0.leader.key) (\((store.modelPath(of: $0.leader.key) as NSString).lastPathComponent))" }.joined(separator: ", ")
                    + ": train them with bench run (models are kept where the cells are written), or give the --output of that run")
            }
        }
        // The episode files still to evaluate are read now: a file the suite cannot use fails before any training.
        let files = Set(work.flatMap { $0.pending.compactMap { $0.cell.setting.episodesFile } })
        for file in suite.evaluation.episodeFiles where files.contains(file.name) {
            do {
                _ = try episodes(ofFile: file.name, data: data)
            } catch {
                throw SuiteError(file: suite.file, line: file.line, "evaluation.episodes_file: \(error)")
            }
        }
        var trained = 0
        for (leader, pending) in work {
            try Interruption.check()
            let claim = try store.claim(leader.key)
            defer { claim.release() }
            trained += try runGroup(leader: leader, pending: pending, configs: configs, trainer: trainer, store: store)
        }

        let (results, missing) = try store.merge()
        if options.shard == nil { try Report.writeAll(results, to: options.outputDirectory) }
        return RunSummary(results: results, trainedCells: trained, reusedCells: reused, missingCells: missing)
    }

    /// Tests: the suite's `evaluation.dataset`, already loaded (else it is loaded from its path).
    var evaluationDataset: FewShotDataset?

    /// Tests: every cell stops as if SIGTERM arrived before this training iteration.
    var interruptBeforeIteration: Int?

    func manifest(plan: SuitePlan, configs: [CellConfig], data: DataPlan) -> PlanManifest {
        let dataset = data.dataset
        return PlanManifest(
            format: PlanManifest.currentFormat, suite: suite.name, suiteFile: suite.file, exact: suite.exact,
            dataset: DatasetInfo(name: dataset.name, layout: dataset.layout, path: suite.dataset.path,
                                 imageShape: dataset.imageShape,
                                 splits: Dictionary(dataset.splits.map { ($0.name, $0.classes.count) },
                                                    uniquingKeysWith: { a, _ in a }),
                                 validationSplit: data.validation?.name),
            seeds: suite.seeds,
            notes: [data.validationNote, data.crossDomainNote].compactMap { $0 }
                + suite.evaluation.episodeFiles.compactMap { file in fileConfigs[file.name]?.note(setting: file.name) },
            published: suite.published,
            cells: plan.cells.map { cell in
                PlanManifest.Cell(label: cell.entry.label, setting: cell.setting.id, seed: cell.seed,
                                  file: cell.fileName, fingerprint: configs[cell.index].fingerprint)
            })
    }

    static func summary(of cell: CellResult) -> String {
        switch cell.status {
        case .completed:
            let acc = cell.accuracy.map { "\(Format.fixed($0, 2)) ± \(Format.fixed(cell.ci95 ?? 0, 2))%" } ?? "–"
            return "\(acc), train \(Format.fixed(cell.trainingSeconds, 1))s, adapt \(Format.fixed(cell.adaptMillisecondsPerEpisode ?? 0, 2)) ms/episode, peak \(Format.mebibytes(cell.peakResidentBytes)) MiB"
        case .diverged:
            return "diverged at iteration \(cell.divergedAtIteration ?? 0)"
        case .failed:
            return "failed: \(cell.message ?? "unknown error")"
        }
    }

    func cellConfig(entry: LearnerEntry, setting: SettingSpec, seed: UInt64, evaluation: EvaluationSpec,
                    plan: DataPlan) throws -> CellConfig {
        var resolved = entry.hyperparameters
        if let descriptor = try? registry.descriptor(named: entry.name),
           let full = try? HyperParameters(learner: entry.name, specs: descriptor.hyperparameters, given: resolved) {
            resolved = full.values
        }
        return CellConfig(learner: entry.name, label: entry.label, hyperparameters: HyperParameterValues(resolved),
                          setting: setting, seed: seed, training: suite.training(for: entry), evaluation: evaluation,
                          dataset: plan.config(suite: suite),
                          evaluationDataset: setting.episodesFile == nil ? plan.evaluationConfig(suite: suite) : nil,
                          episodesFile: try setting.episodesFile.map { try episodeFileConfig(named: $0) })
    }

    // MARK: - Episode files

    /// The episode files' configurations (digests), by setting name, computed once per run.
    var fileConfigs: [String: EpisodeFileConfig] = [:]
    /// The episode files' episodes as the learners see them, read on first use and kept for the run.
    var fileEpisodes: [String: [Episode]] = [:]

    /// How the suite turns a file's images into what the learners see: resized by its `image_size` (uint8
    /// images), normalised as its dataset.
    func episodeFileConversion(imageShape: ImageShape) -> EpisodeFile.Conversion {
        EpisodeFile.Conversion(imageShape: imageShape, resize: suite.dataset.options.imageSize == nil ? nil : suite.dataset.options.resize,
                               normalization: suite.normalization)
    }

    /// Every episode file's images can be converted to the dataset's shape and held in memory: checked
    /// before anything trains.
    func checkEpisodeFiles(imageShape: ImageShape) throws {
        for file in suite.evaluation.episodeFiles {
            do {
                try EpisodeFile.check(file.summary, against: episodeFileConversion(imageShape: imageShape), file: file.path)
            } catch {
                throw SuiteError(file: suite.file, line: file.line, "evaluation.episodes_file: \(error)")
            }
        }
    }

    func episodeFileConfig(named name: String) throws -> EpisodeFileConfig {
        if let known = fileConfigs[name] { return known }
        guard let spec = suite.evaluation.episodeFiles.first(where: { $0.name == name }) else {
            throw RunnerError.invalidOption("no episode file named \(name) in suite \(suite.name)")
        }
        let config = try EpisodeFileConfig(spec)
        fileConfigs[name] = config
        return config
    }

    /// The episodes of the file named `name`, converted for `data`'s images.
    func episodes(ofFile name: String, data: DataPlan) throws -> [Episode] {
        if let known = fileEpisodes[name] { return known }
        let config = try episodeFileConfig(named: name)
        let episodes = try EpisodeFile.read(config.path, conversion: episodeFileConversion(imageShape: data.dataset.imageShape))
        // The file changed since its digest was taken (the cells would record a digest of other episodes).
        guard try EpisodeFileConfig.digest(ofFileAt: config.path) == config.digest else {
            throw RunnerError.invalidOption("the episode file \(config.path) changed during the run; run again")
        }
        fileEpisodes[name] = episodes
        return episodes
    }

    // MARK: - One training group

    /// The `trainedWith` a stored cell of `cell` must record: the leader's setting when the cell shares the
    /// leader's training.
    static func trainedWith(_ cell: PlannedCell, leader: PlannedCell) -> String? {
        cell.index == leader.index ? nil : leader.setting.id
    }

    /// How a group's meta-training ended.
    enum GroupTraining {
        case trained(learner: MetaLearner, model: TrainedModel.Info)
        case diverged(iteration: Int?, message: String, model: TrainedModel.Info)
        case failed(message: String)
    }

    /// Meta-trains the group's learner once (or loads the model a run saved before), then evaluates and writes
    /// each pending cell. Returns the number of cells written. Throws only when the run is interrupted (the
    /// training checkpoint, or the saved model, lets a rerun go on from there).
    func runGroup(leader: PlannedCell, pending: [(cell: PlannedCell, name: String)], configs: [CellConfig],
                  trainer: CellTrainer, store: CellStore) throws -> Int {
        let leaderConfig = configs[leader.index]
        let identity = TrainedModel.fingerprint(of: leaderConfig)
        let modelPath = store.modelPath(of: leader.key)
        let checkpointPath = store.checkpointPath(of: leader.key)
        if !options.resume {
            try? FileManager.default.removeItem(atPath: checkpointPath)
            try? FileManager.default.removeItem(atPath: modelPath)
        }
        let trainingMemory = PeakMemorySampler()
        var training: GroupTraining
        do {
            if options.resume, let (learner, model) = TrainedModel.load(from: modelPath, fingerprint: identity,
                                                                      registry: registry, config: leaderConfig,
                                                                      data: trainer.data, progress: progress) {
                progress?.message("note: \(leader.entry.label) seed \(leader.seed): the model trained for \(leader.setting.id) is loaded from \(modelPath)")
                training = .trained(learner: learner, model: model)
            } else if options.evaluateOnly {
                training = .failed(message: "bench evaluate: the trained model \(modelPath) cannot be used (see the warning above); rerun bench run to train it")
            } else {
                let shared = pending.count > 1 || pending.first?.cell.index != leader.index
                progress?.cellStarted(shared ? "training \(leader.entry.label) \(leader.setting.id) seed \(leader.seed) (for \(pending.map { $0.cell.setting.id }.joined(separator: ", ")))"
                                             : pending.first?.name ?? "")
                let result = try trainer.train(leader, config: leaderConfig, memory: trainingMemory,
                                               checkpoint: CheckpointPolicy(path: checkpointPath,
                                                                            interval: options.checkpointInterval))
                var model = TrainedModel.Info(fingerprint: identity, learningCurve: result.learningCurve,
                                              trainingSeconds: result.trainingSeconds, transductive: result.transductive,
                                              resumedAt: result.resumedAt, peakResidentBytes: nil, peakExact: nil)
                model.peakResidentBytes = trainingMemory.stop()
                model.peakExact = trainingMemory.isExact
                switch result.end {
                case .trained:
                    do {
                        try TrainedModel.save(learner: result.learner, model: model, to: modelPath)
                    } catch {
                        // The cells do not need it: only a later evaluation without training would.
                        progress?.message("warning: the trained model could not be kept: \(error)")
                    }
                    training = .trained(learner: result.learner, model: model)
                case .diverged(let iteration, let message):
                    training = .diverged(iteration: iteration, message: message, model: model)
                }
            }
        } catch let error as RunnerError {
            if case .interrupted = error { throw error }
            training = .failed(message: "\(error)")
        } catch {
            training = .failed(message: "\(error)")
        }
        // The model (or the outcome) is settled: the training checkpoint is no longer needed.
        try? FileManager.default.removeItem(atPath: checkpointPath)

        var written = 0
        for (cell, name) in pending {
            let config = configs[cell.index]
            if pending.count > 1 || cell.index != leader.index { progress?.cellStarted(name) }
            var result = try evaluateCell(cell, config: config, training: training, data: trainer.data)
            result.trainedWith = Self.trainedWith(cell, leader: leader)
            try store.write(result)
            written += 1
            progress?.cellFinished("\(name): \(Self.summary(of: result))")
        }
        return written
    }

    /// One cell's result from its group's training: evaluated on the suite's test episodes when the training
    /// succeeded. Throws only when the run is interrupted.
    func evaluateCell(_ cell: PlannedCell, config: CellConfig, training: GroupTraining, data: DataPlan) throws -> CellResult {
        let memory = PeakMemorySampler()
        var result = CellResult(format: CellResult.currentFormat, config: config, fingerprint: config.fingerprint,
                                status: .completed, queriesPerEpisode: config.plannedQueriesPerEpisode,
                                episodeCorrect: [], episodeAccuracies: [], learningCurve: [], trainingSeconds: 0,
                                threads: options.threads)
        var trainingPeak: Int?
        var trainingPeakExact = true
        func take(_ model: TrainedModel.Info) {
            result.transductive = model.transductive
            result.learningCurve = model.learningCurve
            result.trainingSeconds = model.trainingSeconds
            result.resumedAtIterations = model.resumedAt.isEmpty ? nil : model.resumedAt
            trainingPeak = model.peakResidentBytes
            trainingPeakExact = model.peakExact ?? false
        }
        switch training {
        case .failed(let message):
            result.status = .failed
            result.message = message
        case .diverged(let iteration, let message, let model):
            take(model)
            result.status = .diverged
            result.divergedAtIteration = iteration
            result.message = message
        case .trained(let learner, let model):
            take(model)
            do {
                // Evaluation on the suite's test episodes, or on an episode file's: the same for every learner.
                let evaluator = EpisodeEvaluator(label: cell.entry.label, progress: progress)
                let outcome: EpisodeEvaluator.Outcome
                if let name = config.setting.episodesFile {
                    let episodes = try self.episodes(ofFile: name, data: data)
                    outcome = try evaluator.evaluate(learner, episodes: min(config.evaluation.episodes, episodes.count),
                                                     episode: { episodes[$0] }, memory: memory, showProgress: true)
                } else {
                    let sampler = try EvaluationEpisodes.sampler(plan: data, setting: config.setting, normalization: suite.normalization,
                                                                 seed: config.evaluation.seed)
                    outcome = try evaluator.evaluate(learner, sampler: sampler, episodes: config.evaluation.episodes,
                                                     memory: memory, showProgress: true)
                }
                result.episodeCorrect = outcome.correct
                result.episodeAccuracies = outcome.accuracies
                let queries = outcome.queries.first ?? 0
                let uniform = outcome.queries.allSatisfy { $0 == queries }
                result.queriesPerEpisode = uniform ? queries : 0
                result.episodeQueries = uniform ? nil : outcome.queries
                result.accuracy = outcome.meanAccuracy
                result.ci95 = Statistics.ci95(outcome.accuracies) * 100
                result.adaptMillisecondsPerEpisode = outcome.seconds * 1000 / Double(max(1, config.evaluation.episodes))
            } catch let error as NonFiniteLogits {
                result.status = .diverged
                result.message = "\(error)"
            } catch let error as RunnerError {
                if case .interrupted = error { throw error }
                result.status = .failed
                result.message = "\(error)"
            } catch {
                result.status = .failed
                result.message = "\(error)"
            }
        }
        if result.status != .completed {
            result.accuracy = nil
            result.ci95 = nil
            result.episodeCorrect = []
            result.episodeAccuracies = []
            result.adaptMillisecondsPerEpisode = nil
        }
        // The peak of the training (which this cell's model needed) and of this evaluation.
        let evaluationPeak = memory.stop()
        result.peakResidentBytes = [trainingPeak, evaluationPeak].compactMap { $0 }.max()
        result.peakMemoryPerCell = memory.isExact && trainingPeakExact
        result.provenance = .current(threads: options.threads)
        return result
    }
}
