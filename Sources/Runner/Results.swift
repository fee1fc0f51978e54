import Engine
import FewShotData
import Foundation
import Learners

/// How a cell (learner × setting × seed) ended.
public enum CellStatus: String, Sendable, Codable, Equatable {
    /// Trained and evaluated.
    case completed
    /// The training loss became NaN or infinite; training stopped and the cell was not evaluated.
    case diverged
    /// The learner (or its data) threw; the message says why.
    case failed
}

/// One point of a learning curve: mean training loss since the previous point, and the validation
/// accuracy (percent) when the runner validated at this iteration.
public struct CurvePoint: Sendable, Codable, Equatable {
    /// Meta-iterations done (1-based: the point after the `iteration`-th step).
    public var iteration: Int
    public var loss: Double
    public var validationAccuracy: Double?

    public init(iteration: Int, loss: Double, validationAccuracy: Double? = nil) {
        self.iteration = iteration
        self.loss = loss
        self.validationAccuracy = validationAccuracy
    }
}

/// Hyperparameter values stored as plain JSON scalars (`{"inner_lr": 0.4, "first_order": true}`).
///
/// JSON does not tell `2` from `2.0`, so equality treats an int and a double of the same value as equal
/// (a learner's spec decides the type; `HyperParameters` accepts an int where a double is expected).
public struct HyperParameterValues: Sendable, Codable, Equatable {
    public var values: [String: HyperValue]

    public init(_ values: [String: HyperValue]) { self.values = values }

    public static func == (a: HyperParameterValues, b: HyperParameterValues) -> Bool {
        guard a.values.count == b.values.count else { return false }
        for (key, x) in a.values {
            guard let y = b.values[key] else { return false }
            switch (x, y) {
            case (.int(let i), .double(let d)), (.double(let d), .int(let i)):
                if Double(i) != d { return false }
            default:
                if x != y { return false }
            }
        }
        return true
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in values {
            let key = Key(stringValue: name)
            switch value {
            case .int(let v): try container.encode(v, forKey: key)
            case .double(let v): try container.encode(v, forKey: key)
            case .bool(let v): try container.encode(v, forKey: key)
            case .string(let v): try container.encode(v, forKey: key)
            }
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var values: [String: HyperValue] = [:]
        for key in container.allKeys {
            if let v = try? container.decode(Bool.self, forKey: key) {
                values[key.stringValue] = .bool(v)
            } else if let v = try? container.decode(Int.self, forKey: key) {
                values[key.stringValue] = .int(v)
            } else if let v = try? container.decode(Double.self, forKey: key) {
                values[key.stringValue] = .double(v)
            } else {
                values[key.stringValue] = .string(try container.decode(String.self, forKey: key))
            }
        }
        self.values = values
    }
}

/// What identifies a dataset in a cell's configuration: where it came from, how it was read, and what it holds.
public struct DatasetConfig: Sendable, Codable, Equatable {
    public var path: String
    public var options: LoadOptions
    public var name: String
    public var layout: String
    public var imageShape: ImageShape
    public var trainSplit: String
    /// nil when the cell ran without validation.
    public var valSplit: String?
    public var testSplit: String
    /// Classes per split used (train, val, test).
    public var classCounts: [String: Int]
    public var normalization: Normalization
}

/// Everything that determines a cell's numbers; its fingerprint decides whether a stored cell can be reused.
public struct CellConfig: Sendable, Codable, Equatable {
    public var learner: String
    public var label: String
    /// All hyperparameters, defaults filled in.
    public var hyperparameters: HyperParameterValues
    public var setting: SettingSpec
    public var seed: UInt64
    public var training: TrainingBudget
    public var evaluation: EvaluationSpec
    public var dataset: DatasetConfig
    /// The dataset the cell is evaluated on when it is not the training dataset (cross-domain); absent otherwise.
    public var evaluationDataset: DatasetConfig?
    /// The episode file the cell is evaluated on (a setting named after the file); absent otherwise.
    public var episodesFile: EpisodeFileConfig?

    /// The queries per evaluation episode the configuration implies: ways × queries of the setting; for an
    /// episode file, those of its episodes when they all have one shape, else 0 (they differ per episode).
    public var plannedQueriesPerEpisode: Int {
        if let file = episodesFile {
            guard let shape = file.summary.uniformShape else { return 0 }
            let (queries, overflow) = shape.ways.multipliedReportingOverflow(by: shape.queries)
            return overflow ? 0 : queries
        }
        let (queries, overflow) = setting.ways.multipliedReportingOverflow(by: setting.queries)
        return overflow ? 0 : queries
    }

    /// A stable hash of the configuration (16 hex digits), the same in every process.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        var hash = StableHash()
        hash.combine(String(decoding: data, as: UTF8.self))
        return String(hash.value, radix: 16).leftPadded(to: 16, with: "0")
    }
}

/// The result of one cell: its configuration, status, accuracies, learning curve, time and memory, and what
/// produced it.
public struct CellResult: Sendable, Codable, Equatable {
    /// The cell file format this version writes; a stored cell of another format is retrained.
    public static let currentFormat = 2

    public var format: Int?
    public var config: CellConfig
    public var fingerprint: String
    public var status: CellStatus
    /// Why the cell failed, or at which point it diverged.
    public var message: String?
    /// The iteration (1-based) whose loss was not finite or out of bounds.
    public var divergedAtIteration: Int?
    /// Mean accuracy over evaluation episodes, percent.
    public var accuracy: Double?
    /// Half-width of the 95% confidence interval, percent: 1.96·σ/√n over episodes (σ the sample standard deviation).
    public var ci95: Double?
    /// Queries in every evaluation episode; 0 when they differ between episodes (an episode file of several
    /// shapes), which `episodeQueries` then lists.
    public var queriesPerEpisode: Int
    /// The queries of each evaluation episode, in episode order, when they are not all the same; absent otherwise.
    public var episodeQueries: [Int]?
    /// Correct queries in each evaluation episode, in episode order (exact, for comparisons).
    public var episodeCorrect: [Int]
    /// Accuracy of each evaluation episode (fraction), in episode order.
    public var episodeAccuracies: [Double]
    public var learningCurve: [CurvePoint]
    /// Wall-clock seconds of meta-training, validation excluded.
    public var trainingSeconds: Double
    /// Mean wall-clock milliseconds of `adapt` plus scoring the queries, per evaluation episode.
    public var adaptMillisecondsPerEpisode: Double?
    /// Peak resident memory of the whole process while the cell ran (bytes): the kernel's high-water mark
    /// (VmHWM), reset at the start of the cell where the kernel allows it.
    public var peakResidentBytes: Int?
    /// Whether `peakResidentBytes` is this cell's own peak (the high-water mark was reset at its start); false
    /// when it may include an earlier peak of the process.
    public var peakMemoryPerCell: Bool?
    public var transductive: Bool?
    /// The iterations at which training resumed from a checkpoint (after a SIGTERM, a preemption, a kill);
    /// absent when it ran in one go. The numbers are those of an uninterrupted run; times add up the parts.
    public var resumedAtIterations: [Int]?
    /// The setting whose cell trained the model this cell evaluates, when it is not this cell's own: the
    /// learner serves any episode shape, so one training serves every setting with the same training episodes
    /// (the learning curve's validation ran on that setting's episodes). Absent for a cell trained for itself.
    public var trainedWith: String?
    public var threads: Int
    /// What produced the numbers (code, compiler, kernels, machine, date).
    public var provenance: Provenance?

    public var key: CellKey { CellKey(label: config.label, setting: config.setting.id, seed: config.seed) }

    /// The queries of each evaluated episode.
    public var queryCounts: [Int] {
        episodeQueries ?? [Int](repeating: queriesPerEpisode, count: episodeCorrect.count)
    }
}

/// Names a cell across result sets: learner label, setting id, seed.
public struct CellKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var label: String
    public var setting: String
    public var seed: UInt64

    public init(label: String, setting: String, seed: UInt64) {
        self.label = label
        self.setting = setting
        self.seed = seed
    }

    public var description: String { "\(label) \(setting) seed \(seed)" }

    public static func < (a: CellKey, b: CellKey) -> Bool {
        (a.label, a.setting, a.seed) < (b.label, b.setting, b.seed)
    }

    /// A file name for the cell, `maml-5w1s-seed0.json`: one name per key (injective). In the label, every
    /// character but ASCII letters, digits and `+-_.` is written `%XX` (its UTF-8 bytes), so `a/b`, `a_b` and
    /// `a b` get different files; a setting id has a fixed form (`5w1s`, `20w1s5q-train60w1s5q`), so the name
    /// still splits one way into label, setting and seed.
    public var fileName: String {
        func escaped(_ text: String) -> String {
            var out = ""
            for byte in text.utf8 {
                let c = Character(UnicodeScalar(byte))
                if byte < 0x80, c.isLetter || c.isNumber || "+-_.".contains(c) {
                    out.append(c)
                } else {
                    out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2, with: "0")
                }
            }
            return out
        }
        let settingPart = setting.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } ? setting : escaped(setting)
        return "\(escaped(label))-\(settingPart)-seed\(seed).json"
    }
}

/// The machine a result set was measured on.
public struct MachineInfo: Sendable, Codable, Equatable {
    public var cpuModel: String
    public var coreCount: Int
    public var memoryBytes: UInt64

    public static func current() -> MachineInfo {
        var model = "unknown"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return MachineInfo(cpuModel: model, coreCount: ProcessInfo.processInfo.activeProcessorCount,
                           memoryBytes: ProcessInfo.processInfo.physicalMemory)
    }
}

/// The dataset a result set ran on.
public struct DatasetInfo: Sendable, Codable, Equatable {
    public var name: String
    public var layout: String
    public var path: String
    public var imageShape: ImageShape
    /// Classes per split.
    public var splits: [String: Int]
    /// The validation split used, or nil when none (see `notes`).
    public var validationSplit: String?
}

/// A suite's results: every cell, the suite's facts, and what produced the cells. Stored as `results.json`.
///
/// Nothing in it describes the run that wrote it (no date, machine or commit of its own): a set rebuilt
/// from the same cells is the same file, and what produced each number is the cell's own `provenance`,
/// summarised in `producers` (more than one producer: the set mixes them, and the report says so).
public struct ResultSet: Sendable, Codable, Equatable {
    /// The format this version writes and reads.
    public static let currentFormat = 2

    public var formatVersion: Int
    public var suite: String
    public var suiteFile: String
    public var exact: Bool
    public var dataset: DatasetInfo
    public var seeds: [UInt64]
    /// Remarks for the report, e.g. that the dataset has no validation split.
    public var notes: [String]
    /// The suite's published accuracies (percent), by learner label, then setting id.
    public var published: [String: [String: Double]]
    /// The distinct producers of the cells.
    public var producers: [ProducerSummary]
    /// The cells, in the order the runner writes them: setting, then learner in suite order, then seed. The
    /// statistics below follow every change.
    public var cells: [CellResult] { didSet { refreshStatistics() } }
    /// Every pair of learners of each setting compared on their shared episodes, with Holm's correction per
    /// setting (`PairedComparison.all(cells)`); absent when no pair shares episodes.
    public var pairedComparisons: [PairedComparison]?
    /// The spread over training seeds of each row with two completed seeds or more (`SeedStatistics.all(cells)`);
    /// absent when no row has two.
    public var seedStatistics: [SeedStatistics]?
    /// Cells of the suite's plan with no stored result (a merge of shards that did not all finish); absent
    /// when none is missing.
    public var missingCells: [String]?

    public init(suite: String, suiteFile: String, exact: Bool, dataset: DatasetInfo, seeds: [UInt64],
                notes: [String], published: [String: [String: Double]] = [:], cells: [CellResult]) {
        self.formatVersion = Self.currentFormat
        self.suite = suite
        self.suiteFile = suiteFile
        self.exact = exact
        self.dataset = dataset
        self.seeds = seeds
        self.notes = notes
        self.published = published
        self.cells = cells
        self.producers = ProducerSummary.summarize(cells)
        refreshStatistics()
    }

    /// Recomputes `pairedComparisons` and `seedStatistics` from the cells (a pure function of them).
    mutating func refreshStatistics() {
        let paired = PairedComparison.all(cells)
        pairedComparisons = paired.isEmpty ? nil : paired
        let seeds = SeedStatistics.all(cells)
        seedStatistics = seeds.isEmpty ? nil : seeds
    }

    /// The published accuracy of a row (learner label × the suite setting the row's setting id names).
    public func publishedAccuracy(label: String, setting: String) -> Double? { published[label]?[setting] }

    /// Reads `results.json` from a file, or from a folder that holds one.
    public static func load(_ path: String) throws -> ResultSet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RunnerError.noResults(path: path, reason: "no such file or folder")
        }
        let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("results.json") : path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw RunnerError.noResults(path: file, reason: isDirectory.boolValue ? "the folder has no results.json" : "cannot read the file")
        }
        struct Header: Decodable { var formatVersion: Int? }
        if let header = try? JSONDecoder().decode(Header.self, from: data), let format = header.formatVersion,
           format != currentFormat {
            throw RunnerError.noResults(path: file, reason: "results format \(format), but this MetaBench reads format \(currentFormat) (rerun the suite to rewrite it)")
        }
        do {
            return try JSONDecoder().decode(ResultSet.self, from: data)
        } catch {
            throw RunnerError.noResults(path: file, reason: "not a MetaBench results file (\(error))")
        }
    }

    public func cell(_ key: CellKey) -> CellResult? { cells.first { $0.key == key } }
}

/// MetaBench's version and the compiler it was built with.
public enum MetaBenchInfo {
    public static let version = "0.1.0-dev"

    public static var compilerVersion: String {
        #if compiler(>=6.4)
        return "Swift 6.4 or later"
        #elseif compiler(>=6.3)
        return "Swift 6.3"
        #elseif compiler(>=6.2)
        return "Swift 6.2"
        #elseif compiler(>=6.1)
        return "Swift 6.1"
        #else
        return "Swift before 6.1"
        #endif
    }
}

/// How MetaBench stores JSON: sorted keys, pretty-printed, a final newline, so stored results diff well
/// and the same value always gives the same bytes.
public enum StoredJSON {
    public static func data<T: Encodable>(_ value: T, for path: String) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            return try encoder.encode(value) + Data("\n".utf8)
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "cannot encode JSON: \(error)")
        }
    }
}

/// Summary statistics of per-episode accuracies.
public enum Statistics {
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// The sample standard deviation (n − 1 in the denominator); 0 for fewer than two values.
    public static func sampleStandardDeviation(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        let ss = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (ss / Double(values.count - 1)).squareRoot()
    }

    /// Half-width of the 95% confidence interval of the mean: 1.96·σ/√n.
    public static func ci95(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        return 1.96 * sampleStandardDeviation(values) / Double(values.count).squareRoot()
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }

    func rightPadded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
