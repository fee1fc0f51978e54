import FewShotData
import Foundation
import Learners

/// A benchmark suite: a dataset, few-shot settings, learners with hyperparameters, a training budget and
/// an evaluation protocol, read from a YAML file under `suites/`.
public struct Suite: Sendable, Equatable {
    public var name: String
    /// The file the suite was read from (for error messages and reports).
    public var file: String
    public var summary: String?
    /// Whether a rerun with the same seeds and OpenBLAS kernels must reproduce every number exactly.
    public var exact: Bool
    public var dataset: DatasetSpec
    public var normalization: Normalization
    public var settings: [SettingSpec]
    public var learners: [LearnerEntry]
    public var training: TrainingBudget
    public var evaluation: EvaluationSpec
    public var seeds: [UInt64]
    /// Published accuracies (percent): learner label → setting short name (`5w1s`) → accuracy.
    public var published: [String: [String: Double]]

    public init(name: String, file: String, summary: String? = nil, exact: Bool = false,
                dataset: DatasetSpec = DatasetSpec(), normalization: Normalization = .none,
                settings: [SettingSpec], learners: [LearnerEntry], training: TrainingBudget,
                evaluation: EvaluationSpec = EvaluationSpec(), seeds: [UInt64] = [0],
                published: [String: [String: Double]] = [:]) {
        self.name = name
        self.file = file
        self.summary = summary
        self.exact = exact
        self.dataset = dataset
        self.normalization = normalization
        self.settings = settings
        self.learners = learners
        self.training = training
        self.evaluation = evaluation
        self.seeds = seeds
        self.published = published
    }

    /// The published accuracy for a learner label in a setting, if the suite gives one.
    public func publishedAccuracy(label: String, setting: SettingSpec) -> Double? {
        published[label]?[setting.shortName]
    }
}

/// Where the suite's data comes from and which splits it uses.
public struct DatasetSpec: Sendable, Equatable, Codable {
    /// `embedded` (MetaBench's generated dataset) or a folder or file for `DatasetLoader`.
    /// A relative path is resolved against the current directory.
    public var path: String
    public var options: LoadOptions
    public var trainSplit: String
    /// The validation split; nil when the suite turns validation off (`val: none`).
    public var valSplit: String?
    /// Whether `valSplit` was written in the suite (then a missing split is an error); when it was left
    /// at its default `val` and the dataset has no such split, validation is skipped.
    public var valSplitExplicit: Bool
    public var testSplit: String
    /// The suite-file line of `path` (for error messages).
    public var line: Int?

    public init(path: String = "embedded", options: LoadOptions = LoadOptions(), trainSplit: String = "train",
                valSplit: String? = "val", valSplitExplicit: Bool = false, testSplit: String = "test",
                line: Int? = nil) {
        self.path = path
        self.options = options
        self.trainSplit = trainSplit
        self.valSplit = valSplit
        self.valSplitExplicit = valSplitExplicit
        self.testSplit = testSplit
        self.line = line
    }

    public var isEmbedded: Bool { path == "embedded" }
}

/// One few-shot setting: evaluation ways/shots/queries and the meta-training episode shape.
public struct SettingSpec: Sendable, Hashable, Codable {
    public var ways: Int
    public var shots: Int
    /// Queries per class.
    public var queries: Int
    public var trainWays: Int
    public var trainShots: Int
    public var trainQueries: Int
    /// The name of the episode file (`evaluation.episodes_file`) a cell of this setting is evaluated on, instead
    /// of sampled test episodes; the other fields are then those of the setting whose trained model serves
    /// the file (`Suite.servingSetting(for:)`). Nil for the suite's own settings (and not encoded, so their
    /// fingerprints are as before).
    public var episodesFile: String?

    public init(ways: Int, shots: Int, queries: Int = 15, trainWays: Int? = nil, trainShots: Int? = nil,
                trainQueries: Int? = nil, episodesFile: String? = nil) {
        self.ways = ways
        self.shots = shots
        self.queries = queries
        self.trainWays = trainWays ?? ways
        self.trainShots = trainShots ?? shots
        self.trainQueries = trainQueries ?? queries
        self.episodesFile = episodesFile
    }

    /// `5w1s`: the name published numbers are keyed by (an episode file's name for its setting).
    public var shortName: String { episodesFile ?? "\(ways)w\(shots)s" }

    /// A name that tells settings of a suite apart: `5w1s`, plus the queries when not 15 and the training
    /// episode shape when it differs (`5w1s-train20w1s15q`); an episode file's name for its setting.
    public var id: String {
        if let episodesFile { return episodesFile }
        var name = shortName
        if queries != 15 { name += "\(queries)q" }
        if trainWays != ways || trainShots != shots || trainQueries != queries {
            name += "-train\(trainWays)w\(trainShots)s\(trainQueries)q"
        }
        return name
    }
}

/// One learner of a suite: a registered name, a display label and hyperparameters.
public struct LearnerEntry: Sendable, Equatable {
    public var name: String
    /// The name reports use; unique within the suite.
    public var label: String
    public var hyperparameters: [String: HyperValue]
    /// This learner's own training budget and meta-training episode shape, where it differs from the
    /// suite's (e.g. Prototypical Networks' 60-way training beside MAML's 5-way).
    public var training: TrainingOverride
    /// The ids of the suite's settings this learner runs in (`settings: [5w1s]` in the suite file: MAML's
    /// 5-way head cannot serve 20-way episodes); nil: every setting.
    public var settings: [String]?
    /// The suite-file line of the entry (for error messages).
    public var line: Int?

    public init(name: String, label: String? = nil, hyperparameters: [String: HyperValue] = [:],
                training: TrainingOverride = TrainingOverride(), settings: [String]? = nil, line: Int? = nil) {
        self.name = name
        self.label = label ?? name
        self.hyperparameters = hyperparameters
        self.training = training
        self.settings = settings
        self.line = line
    }

    /// Whether the learner runs in the suite setting `setting`.
    public func runs(in setting: SettingSpec) -> Bool { runs(inSettingNamed: setting.id) }

    /// Whether the learner runs in the setting with id `id` (an episode file's setting is its name).
    public func runs(inSettingNamed id: String) -> Bool { settings?.contains(id) ?? true }
}

/// A learner's departures from the suite's training: budget fields and the meta-training episode shape
/// (ways, shots, queries per class), each nil where the suite's value holds. Evaluation is never changed:
/// every learner is scored on the same episodes.
public struct TrainingOverride: Sendable, Equatable {
    public var iterations: Int?
    public var metaBatch: Int?
    public var validateEvery: Int?
    public var validationEpisodes: Int?
    public var trainWays: Int?
    public var trainShots: Int?
    public var trainQueries: Int?

    public init(iterations: Int? = nil, metaBatch: Int? = nil, validateEvery: Int? = nil,
                validationEpisodes: Int? = nil, trainWays: Int? = nil, trainShots: Int? = nil,
                trainQueries: Int? = nil) {
        self.iterations = iterations
        self.metaBatch = metaBatch
        self.validateEvery = validateEvery
        self.validationEpisodes = validationEpisodes
        self.trainWays = trainWays
        self.trainShots = trainShots
        self.trainQueries = trainQueries
    }

    /// The suite's budget with this learner's values in place.
    public func applied(to budget: TrainingBudget) -> TrainingBudget {
        TrainingBudget(iterations: iterations ?? budget.iterations, metaBatch: metaBatch ?? budget.metaBatch,
                       validateEvery: validateEvery ?? budget.validateEvery,
                       validationEpisodes: validationEpisodes ?? budget.validationEpisodes)
    }

    /// The setting with this learner's meta-training episode shape (evaluation ways, shots and queries kept).
    public func applied(to setting: SettingSpec) -> SettingSpec {
        SettingSpec(ways: setting.ways, shots: setting.shots, queries: setting.queries,
                    trainWays: trainWays ?? setting.trainWays, trainShots: trainShots ?? setting.trainShots,
                    trainQueries: trainQueries ?? setting.trainQueries)
    }
}

extension Suite {
    /// The training budget of one learner of the suite.
    public func training(for entry: LearnerEntry) -> TrainingBudget { entry.training.applied(to: training) }
}

/// How long each learner meta-trains and how it is validated meanwhile.
public struct TrainingBudget: Sendable, Equatable, Codable {
    public var iterations: Int
    /// Episodes per meta-iteration (`LearnerSetting.metaBatch`).
    public var metaBatch: Int
    /// Validate every this many iterations (0: never).
    public var validateEvery: Int
    public var validationEpisodes: Int

    public init(iterations: Int, metaBatch: Int = 1, validateEvery: Int = 0, validationEpisodes: Int = 100) {
        self.iterations = iterations
        self.metaBatch = metaBatch
        self.validateEvery = validateEvery
        self.validationEpisodes = validationEpisodes
    }
}

/// The evaluation protocol: how many test episodes, and the seed that fixes them for every learner.
public struct EvaluationSpec: Sendable, Equatable, Codable {
    public var episodes: Int
    public var seed: UInt64
    /// Cross-domain evaluation: the dataset whose test split (`splits.test`) the learners are evaluated on,
    /// instead of the training dataset's. Not encoded: a cell's configuration records the dataset itself
    /// (`CellConfig.evaluationDataset`).
    public var dataset: DatasetSpec?
    /// Published episode sets (`episodes_file`): every learner is also evaluated on exactly the episodes of
    /// each file, reported as a setting named after the file. Not encoded: a cell of such a setting records
    /// the file itself (`CellConfig.episodesFile`).
    public var episodeFiles: [EpisodeFileSpec]

    enum CodingKeys: String, CodingKey { case episodes, seed }

    public init(episodes: Int = 600, seed: UInt64 = 0, dataset: DatasetSpec? = nil, episodeFiles: [EpisodeFileSpec] = []) {
        self.episodes = episodes
        self.seed = seed
        self.dataset = dataset
        self.episodeFiles = episodeFiles
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(episodes: try c.decode(Int.self, forKey: .episodes), seed: try c.decode(UInt64.self, forKey: .seed))
    }
}

/// A mistake in a suite file: the file, the line when known, and what was expected.
public struct SuiteError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }

    public var errorDescription: String? { description }
}

extension Suite {
    /// Finds a suite by name (`smoke` → `suites/smoke.yaml` under `directory`) or by path.
    public static func locate(_ nameOrPath: String,
                              in directory: String = FileManager.default.currentDirectoryPath) throws -> String {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: nameOrPath, isDirectory: &isDirectory), !isDirectory.boolValue {
            return nameOrPath
        }
        let suitesFolder = (directory as NSString).appendingPathComponent("suites")
        for candidate in [nameOrPath + ".yaml", nameOrPath + ".yml", nameOrPath] {
            let path = (suitesFolder as NSString).appendingPathComponent(candidate)
            if fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                // Relative to the working directory when found there, so stored results name no machine.
                return directory == fm.currentDirectoryPath ? "suites/" + candidate : path
            }
        }
        let known = ((try? fm.contentsOfDirectory(atPath: suitesFolder)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .map { ($0 as NSString).deletingPathExtension }
            .sorted()
        // The folder as the user would type it: relative when it is the working directory's.
        let shown = directory == fm.currentDirectoryPath ? "suites/" : suitesFolder
        let hint = known.isEmpty ? "no YAML files in \(shown)"
            : "suites in \(shown): \(known.joined(separator: ", "))"
        throw SuiteError(file: nameOrPath, line: nil,
                         "no such suite: not a file, and no suites/\(nameOrPath).yaml (\(hint))")
    }

    /// Reads and checks a suite file (learners and hyperparameters against `registry`).
    public static func load(_ path: String, registry: LearnerRegistry = .builtIn) throws -> Suite {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SuiteError(file: path, line: nil, "cannot read the suite file: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: path, registry: registry)
    }

    /// Parses suite YAML; `file` names it in errors and its base name is the default suite name.
    public static func parse(yaml: String, file: String, registry: LearnerRegistry = .builtIn) throws -> Suite {
        try SuiteParser(file: file, registry: registry).parse(yaml)
    }
}
