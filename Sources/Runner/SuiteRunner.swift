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
    /// Reuse stored cells whose configuration matches (an interrupted run picks up where it stopped).
    public var resume: Bool

    public init(only: [String] = [], threads: Int = RunOptions.defaultThreads, outputDirectory: String,
                episodes: Int? = nil, resume: Bool = true) {
        self.only = only
        self.threads = threads
        self.outputDirectory = outputDirectory
        self.episodes = episodes
        self.resume = resume
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
}

/// Meta-training data for one cell: training-split episodes and classification batches, both pure
/// functions of the iteration and the cell's seed.
public struct SamplerTrainingSource: TrainingSource {
    public let episodeSampler: EpisodeSampler
    public let classificationSampler: ClassificationSampler

    public init(episodeSampler: EpisodeSampler, classificationSampler: ClassificationSampler) {
        self.episodeSampler = episodeSampler
        self.classificationSampler = classificationSampler
    }

    public func episodes(iteration: Int, count: Int) throws -> [Episode] {
        episodeSampler.metaBatch(iteration, size: count)
    }

    public func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages {
        classificationSampler.batch(iteration, size: size)
    }

    public var classCount: Int { episodeSampler.split.classes.count }
}

/// Runs a suite: every learner × setting × seed cell, meta-training, validation, evaluation on the same
/// test episodes for every learner; writes each finished cell at once, then the reports.
public final class SuiteRunner {
    public let suite: Suite
    public let registry: LearnerRegistry
    public let options: RunOptions
    public let progress: ProgressPrinter?
    private var dataset: FewShotDataset?

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

    /// Runs every selected cell (reusing stored ones that match) and writes the reports.
    @discardableResult
    public func run() throws -> RunSummary {
        guard SuiteLimits.threads.contains(options.threads) else {
            throw RunnerError.invalidOption("--threads must be in \(SuiteLimits.threads.lowerBound)…\(SuiteLimits.threads.upperBound), got \(options.threads)")
        }
        if let episodes = options.episodes, !SuiteLimits.episodes.contains(episodes) {
            throw RunnerError.invalidOption("--episodes must be in \(SuiteLimits.episodes.lowerBound)…\(SuiteLimits.episodes.upperBound), got \(episodes)")
        }
        let learners = try selectedLearners()
        ComputeThreads.set(options.threads)

        let dataset = try self.dataset ?? Self.loadDataset(suite.dataset, suiteFile: suite.file)
        self.dataset = dataset
        let plan = try DataPlan(suite: suite, dataset: dataset)
        var notes: [String] = []
        if let note = plan.validationNote {
            notes.append(note)
            progress?.message("note: \(note)")
        }
        var evaluation = suite.evaluation
        if let episodes = options.episodes { evaluation.episodes = episodes }
        try plan.checkSamplers(learners: learners, normalization: suite.normalization, suite: suite)
        // Sizes that depend on the images (weights, activations, episode batches) fit in memory, before any training.
        try suite.validate(imageShape: dataset.imageShape, trainClassCount: plan.train.classes.count,
                           registry: registry, learners: learners)

        // One writer per output folder; a lock left by a killed process is released by the kernel.
        let lock = try OutputLock.acquire(folder: options.outputDirectory)
        defer { lock.release() }
        let cellsFolder = (options.outputDirectory as NSString).appendingPathComponent("cells")
        // Temporary files of writers that were killed (in the folder and its cells/).
        for path in AtomicFile.removeStaleTemporaries(in: options.outputDirectory) {
            progress?.message("note: removed \(path), left by an interrupted run")
        }
        let selected = Set(learners.map(\.label))
        var cells: [CellResult] = []
        var trained = 0, reused = 0
        let total = learners.count * suite.settings.count * suite.seeds.count
        var index = 0
        for setting in suite.settings {
            // Every learner of the suite, so that a run with --only keeps the others' stored cells in the reports.
            for entry in suite.learners {
                for seed in suite.seeds {
                    // The learner's own meta-training episode shape, if it has one, names the cell.
                    let cellSetting = entry.training.applied(to: setting)
                    let config = try cellConfig(entry: entry, setting: cellSetting, seed: seed, evaluation: evaluation,
                                                plan: plan)
                    let key = CellKey(label: entry.label, setting: cellSetting.id, seed: seed)
                    let path = (cellsFolder as NSString).appendingPathComponent(key.fileName)
                    guard selected.contains(entry.label) else {
                        if case .valid(let stored) = StoredCell.read(at: path, config: config) { cells.append(stored) }
                        continue
                    }
                    index += 1
                    let name = "[\(index)/\(total)] \(entry.label) \(cellSetting.id) seed \(seed)"
                    if options.resume {
                        switch StoredCell.read(at: path, config: config) {
                        case .valid(let stored):
                            cells.append(stored)
                            reused += 1
                            progress?.cellFinished("\(name): \(Self.summary(of: stored)) (stored)")
                            continue
                        case .invalid(let reason):
                            progress?.message("warning: \(path): \(reason); retraining the cell")
                        case .absent, .otherConfiguration, .failed:
                            break
                        }
                    }
                    try Interruption.check()
                    progress?.cellStarted(name)
                    let result = try runCell(entry: entry, config: config, plan: plan)
                    try AtomicFile.writeJSON(result, to: path)
                    cells.append(result)
                    trained += 1
                    progress?.cellFinished("\(name): \(Self.summary(of: result))")
                }
            }
        }

        let results = ResultSet(
            suite: suite.name, suiteFile: suite.file, exact: suite.exact,
            dataset: DatasetInfo(name: dataset.name, layout: dataset.layout,
                                 path: suite.dataset.path, imageShape: dataset.imageShape,
                                 splits: Dictionary(dataset.splits.map { ($0.name, $0.classes.count) },
                                                    uniquingKeysWith: { a, _ in a }),
                                 validationSplit: plan.validation?.name),
            seeds: suite.seeds, notes: notes, published: suite.published, cells: cells)
        try Report.writeAll(results, to: options.outputDirectory)
        return RunSummary(results: results, trainedCells: trained, reusedCells: reused)
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
                          dataset: plan.config(suite: suite))
    }

    // MARK: - One cell

    /// Trains and evaluates one cell. Throws only when the run is interrupted (`Interruption`): the cell is
    /// then not written, and a rerun trains it again.
    func runCell(entry: LearnerEntry, config: CellConfig, plan: DataPlan) throws -> CellResult {
        let memory = PeakMemorySampler()
        var result = CellResult(format: CellResult.currentFormat, config: config, fingerprint: config.fingerprint,
                                status: .completed, queriesPerEpisode: config.setting.queries * config.setting.ways,
                                episodeCorrect: [], episodeAccuracies: [], learningCurve: [], trainingSeconds: 0,
                                threads: options.threads)
        do {
            try train(entry: entry, config: config, plan: plan, result: &result, memory: memory)
        } catch let error as DivergedError {
            result.status = .diverged
            result.divergedAtIteration = error.iteration
            result.message = "\(error)"
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
        if result.status != .completed {
            result.accuracy = nil
            result.ci95 = nil
            result.episodeCorrect = []
            result.episodeAccuracies = []
            result.adaptMillisecondsPerEpisode = nil
        }
        result.peakResidentBytes = memory.stop()
        result.peakMemoryPerCell = memory.isExact
        result.provenance = .current(threads: options.threads)
        return result
    }

    private func train(entry: LearnerEntry, config: CellConfig, plan: DataPlan, result: inout CellResult,
                       memory: PeakMemorySampler) throws {
        let setting = config.setting
        let seed = config.seed
        let descriptor = try registry.descriptor(named: entry.name)
        let learnerSetting = LearnerSetting(imageShape: plan.dataset.imageShape, ways: setting.ways,
                                            shots: setting.shots, queriesPerClass: setting.queries,
                                            trainWays: setting.trainWays, trainClassCount: plan.train.classes.count,
                                            seed: seed, metaBatch: config.training.metaBatch,
                                            iterations: config.training.iterations)
        let learner = try descriptor.instantiate(config.hyperparameters.values, setting: learnerSetting)
        result.transductive = learner.isTransductive

        let normalization = suite.normalization
        let trainSettings = EpisodeSettings(ways: setting.trainWays, shots: setting.trainShots,
                                            queriesPerClass: setting.trainQueries, normalization: normalization)
        let evalSettings = EpisodeSettings(ways: setting.ways, shots: setting.shots, queriesPerClass: setting.queries,
                                           normalization: normalization)
        let source = SamplerTrainingSource(
            episodeSampler: try EpisodeSampler(split: plan.train, imageShape: plan.dataset.imageShape,
                                               settings: trainSettings, seed: Seeds.derive(seed, "train")),
            classificationSampler: try ClassificationSampler(split: plan.train, imageShape: plan.dataset.imageShape,
                                                             normalization: normalization,
                                                             seed: Seeds.derive(seed, "train", "classification")))
        var validationSampler: EpisodeSampler?
        if let val = plan.validation, config.training.validateEvery > 0 {
            validationSampler = try EpisodeSampler(split: val, imageShape: plan.dataset.imageShape,
                                                   settings: evalSettings, seed: Seeds.derive(seed, "validation"))
        }

        // Meta-training.
        let budget = config.training
        let curveStride = max(1, budget.iterations / 100)
        var trainingNanoseconds: UInt64 = 0
        var lossSum = 0.0, lossCount = 0
        var lastLoss: Double?
        var lastValidation: Double?
        for iteration in 0..<budget.iterations {
            try Interruption.check()
            let start = DispatchTime.now().uptimeNanoseconds
            let stats = try learner.trainStep(iteration: iteration, source: source)
            trainingNanoseconds += DispatchTime.now().uptimeNanoseconds - start
            memory.sample()
            let done = iteration + 1
            guard !Divergence.diverged(loss: stats.loss) else {
                result.status = .diverged
                result.divergedAtIteration = done
                result.message = stats.loss.isFinite
                    ? "training loss \(stats.loss) at iteration \(done) exceeds the divergence bound \(Divergence.lossBound)"
                    : "training loss became \(stats.loss) at iteration \(done)"
                result.trainingSeconds = Double(trainingNanoseconds) / 1e9
                if lossCount > 0 {
                    result.learningCurve.append(CurvePoint(iteration: iteration, loss: lossSum / Double(lossCount)))
                }
                return
            }
            lossSum += Double(stats.loss)
            lossCount += 1
            lastLoss = Double(stats.loss)

            var validation: Double?
            if let sampler = validationSampler,
               done % budget.validateEvery == 0 || done == budget.iterations {
                let outcome = try evaluate(learner: learner, label: entry.label, sampler: sampler,
                                           episodes: budget.validationEpisodes, memory: memory, showProgress: false)
                validation = Statistics.mean(outcome.accuracies) * 100
                lastValidation = validation
            }
            if validation != nil || done % curveStride == 0 || done == budget.iterations {
                result.learningCurve.append(CurvePoint(iteration: done, loss: lossSum / Double(max(lossCount, 1)),
                                                       validationAccuracy: validation))
                lossSum = 0
                lossCount = 0
            }
            progress?.training(done: done, total: budget.iterations, loss: lastLoss, validation: lastValidation,
                               elapsed: Double(trainingNanoseconds) / 1e9)
        }
        result.trainingSeconds = Double(trainingNanoseconds) / 1e9

        // Evaluation on the suite's test episodes: the same for every learner.
        let testSampler = try EvaluationEpisodes.sampler(plan: plan, setting: setting, normalization: normalization,
                                                         seed: config.evaluation.seed)
        let outcome = try evaluate(learner: learner, label: entry.label, sampler: testSampler,
                                   episodes: config.evaluation.episodes, memory: memory, showProgress: true)
        result.episodeCorrect = outcome.correct
        result.episodeAccuracies = outcome.accuracies
        result.queriesPerEpisode = outcome.queries
        result.accuracy = Statistics.mean(outcome.accuracies) * 100
        result.ci95 = Statistics.ci95(outcome.accuracies) * 100
        result.adaptMillisecondsPerEpisode = outcome.seconds * 1000 / Double(max(1, config.evaluation.episodes))
    }

    struct EvaluationOutcome {
        var correct: [Int] = []
        var accuracies: [Double] = []
        var queries = 0
        /// Time spent in `adapt` and `logits`.
        var seconds = 0.0
    }

    /// Adapts to each episode's support set and scores its queries; accuracy is argmax == label. Learners
    /// that adapt concurrently are evaluated a block of episodes at a time on `ComputeThreads` threads;
    /// results are gathered in episode order, so they do not depend on the thread count or scheduling.
    func evaluate(learner: MetaLearner, label: String, sampler: EpisodeSampler, episodes: Int,
                  memory: PeakMemorySampler, showProgress: Bool) throws -> EvaluationOutcome {
        var outcome = EvaluationOutcome()
        var nanoseconds: UInt64 = 0
        let parallel = learner.adaptsConcurrently && ComputeThreads.count > 1
        let block = parallel ? ComputeThreads.count * 4 : 1
        var first = 0
        while first < episodes {
            try Interruption.check()
            let count = min(block, episodes - first)
            let results = try ComputeThreads.map(parallel ? count : 0) { i in
                try self.evaluateEpisode(learner: learner, label: label, episode: sampler.episode(first + i), index: first + i)
            } + (parallel ? [] : [try evaluateEpisode(learner: learner, label: label, episode: sampler.episode(first),
                                                      index: first)])
            for (offset, r) in results.enumerated() {
                nanoseconds += r.nanoseconds
                outcome.correct.append(r.correct)
                outcome.accuracies.append(r.queries > 0 ? Double(r.correct) / Double(r.queries) : 0)
                outcome.queries = r.queries
                if showProgress {
                    progress?.evaluation(done: first + offset + 1, total: episodes,
                                         accuracy: Statistics.mean(outcome.accuracies) * 100)
                }
            }
            memory.sample()
            first += count
        }
        outcome.seconds = Double(nanoseconds) / 1e9
        return outcome
    }

    /// One episode: adapt, score, count the correct queries; with the time spent in the learner.
    private func evaluateEpisode(learner: MetaLearner, label: String, episode: Episode, index: Int) throws
        -> (correct: Int, queries: Int, nanoseconds: UInt64) {
        let n = episode.query.count
        let shape = episode.query.shape
        let queries = Tensor(shape: [n, shape.channels, shape.height, shape.width], scalars: episode.query.pixels)
        let start = DispatchTime.now().uptimeNanoseconds
        let classifier = try learner.adapt(support: episode.support, ways: episode.ways)
        let logits = try classifier.logits(queries: queries)
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        guard logits.shape == [n, episode.ways] else {
            throw RunnerError.invalidLogits(learner: label, expected: [n, episode.ways], got: logits.shape)
        }
        if let bad = logits.scalars.first(where: { !$0.isFinite }) {
            throw NonFiniteLogits(episode: index, value: bad)
        }
        return (Self.correctCount(logits: logits.scalars, labels: episode.query.labels, ways: episode.ways), n, elapsed)
    }

    /// Queries whose largest logit (the first, on ties; NaN logits never win) is at their label.
    static func correctCount(logits: [Float], labels: [Int], ways: Int) -> Int {
        var correct = 0
        for (row, label) in labels.enumerated() {
            var best = -1
            var bestValue = -Float.infinity
            for column in 0..<ways {
                let value = logits[row * ways + column]
                if !value.isNaN, best < 0 || value > bestValue {
                    best = column
                    bestValue = value
                }
            }
            if best >= 0, best == label { correct += 1 }
        }
        return correct
    }
}

/// Evaluation logits that are not all finite: the learner diverged (see `Divergence`).
struct NonFiniteLogits: Error, CustomStringConvertible {
    var episode: Int
    var value: Float
    var description: String { "evaluation episode \(episode): the learner's logits are not finite (\(value))" }
}

/// Seeds for the random streams of a cell, derived from its seed and a purpose.
public enum Seeds {
    public static func derive(_ seed: UInt64, _ parts: String...) -> UInt64 {
        var hash = StableHash()
        hash.combine(seed)
        for part in parts { hash.combine(part) }
        return hash.value
    }
}

/// The splits a suite runs on, resolved against the loaded dataset.
struct DataPlan {
    let dataset: FewShotDataset
    let train: Split
    let validation: Split?
    let test: Split
    let validationNote: String?

    init(suite: Suite, dataset: FewShotDataset) throws {
        self.dataset = dataset
        let spec = suite.dataset
        do {
            train = try dataset.split(named: spec.trainSplit)
            test = try dataset.split(named: spec.testSplit)
        } catch {
            throw RunnerError.dataset(file: suite.file, line: spec.line, message: "\(error)")
        }
        if let valName = spec.valSplit {
            if let split = dataset.splits.first(where: { $0.name == valName }) {
                validation = split
                validationNote = nil
            } else if spec.valSplitExplicit {
                throw RunnerError.dataset(file: suite.file, line: spec.line,
                                          message: "\(DataError.unknownSplit(valName, available: dataset.splits.map(\.name)))")
            } else {
                validation = nil
                validationNote = "the dataset has no '\(valName)' split, so there is no validation (learning curves show training loss only; the test split is never used for validation)"
            }
        } else {
            validation = nil
            let validates = suite.learners.contains { suite.training(for: $0).validateEvery > 0 }
            validationNote = validates ? "validation is turned off (splits.val: none)" : nil
        }
    }

    /// Builds every sampler once so that a setting (with each learner's own training shape) the data
    /// cannot serve fails before any training.
    func checkSamplers(learners: [LearnerEntry], normalization: Normalization, suite: Suite) throws {
        if case .meanStd(let mean, _) = normalization, mean.count != dataset.imageShape.channels {
            throw RunnerError.dataset(file: suite.file, line: nil,
                                      message: "normalization has \(mean.count) mean/std values, but images have \(dataset.imageShape.channels) channels")
        }
        // (setting with the learner's training shape, whether that learner validates), each checked once.
        var checked = Set<String>()
        for entry in learners {
            let validates = suite.training(for: entry).validateEvery > 0
            for suiteSetting in suite.settings {
                let setting = entry.training.applied(to: suiteSetting)
                guard checked.insert("\(setting.id) \(validates)").inserted else { continue }
                do {
                    let trainSettings = EpisodeSettings(ways: setting.trainWays, shots: setting.trainShots,
                                                        queriesPerClass: setting.trainQueries, normalization: normalization)
                    let evalSettings = EpisodeSettings(ways: setting.ways, shots: setting.shots,
                                                       queriesPerClass: setting.queries, normalization: normalization)
                    _ = try EpisodeSampler(split: train, imageShape: dataset.imageShape, settings: trainSettings, seed: 0)
                    _ = try EpisodeSampler(split: test, imageShape: dataset.imageShape, settings: evalSettings, seed: 0)
                    if let validation, validates {
                        _ = try EpisodeSampler(split: validation, imageShape: dataset.imageShape, settings: evalSettings, seed: 0)
                    }
                } catch {
                    // Name the learner when its own training shape is the one the data cannot serve.
                    let own = setting != suiteSetting
                    throw RunnerError.dataset(file: suite.file, line: own ? entry.line : nil,
                                              message: (own ? "learner \(entry.label), " : "") + "setting \(setting.id): \(error)")
                }
            }
        }
    }

    func config(suite: Suite) -> DatasetConfig {
        var counts = ["train": train.classes.count, "test": test.classes.count]
        if let validation { counts["val"] = validation.classes.count }
        return DatasetConfig(path: suite.dataset.path, options: suite.dataset.options, name: dataset.name,
                             layout: dataset.layout, imageShape: dataset.imageShape,
                             trainSplit: train.name, valSplit: validation?.name, testSplit: test.name,
                             classCounts: counts, normalization: suite.normalization)
    }
}
