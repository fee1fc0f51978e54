import FewShotData
import Foundation

extension Suite {
    /// The setting of the suite that `name` names: `<ways>w<shots>s` (`5w1s`), or `<ways>w<shots>s<queries>q`
    /// (`20w1s5q`, needed only when two settings differ in their queries alone). Settings that differ only in
    /// their meta-training episodes share their evaluation episodes, so either of them is returned.
    public func evaluationSetting(named name: String) throws -> SettingSpec {
        guard let wanted = SettingName(name) else {
            throw SuiteError(file: file, line: nil,
                             "'\(name)' is not a setting name (ways w shots s, as 5w1s, optionally followed by queries q, as 5w1s15q); the suite's settings: \(evaluationSettingNames.joined(separator: ", "))")
        }
        let matching = settings.filter { setting in
            setting.ways == wanted.ways && setting.shots == wanted.shots
                && (wanted.queries == nil || wanted.queries == setting.queries)
        }
        guard let first = matching.first else {
            throw SuiteError(file: file, line: nil,
                             "suite \(self.name) has no setting \(name); its settings: \(evaluationSettingNames.joined(separator: ", "))")
        }
        guard matching.allSatisfy({ $0.queries == first.queries }) else {
            let choices = Set(matching.map(\.queries)).sorted().map { "\(name)\($0)q" }
            throw SuiteError(file: file, line: nil,
                             "setting \(name) of suite \(self.name) is ambiguous: it has settings with different queries; name one of \(choices.joined(separator: ", "))")
        }
        return first
    }

    /// The names `evaluationSetting(named:)` takes, one per distinct evaluation shape, in suite order: the
    /// short name (`5w1s`), with the queries added where the short name alone would be ambiguous.
    public var evaluationSettingNames: [String] {
        var seen = Set<String>()
        return settings.compactMap { setting in
            let ambiguous = settings.contains { $0.shortName == setting.shortName && $0.queries != setting.queries }
            let name = ambiguous ? "\(setting.shortName)\(setting.queries)q" : setting.shortName
            return seen.insert(name).inserted ? name : nil
        }
    }
}

/// `<ways>w<shots>s` or `<ways>w<shots>s<queries>q`, parsed.
struct SettingName {
    var ways: Int
    var shots: Int
    var queries: Int?

    init?(_ text: String) {
        var numbers: [Int] = []
        var letters: [Character] = []
        var digits = ""
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
            } else {
                guard !digits.isEmpty, let value = Int(digits) else { return nil }
                numbers.append(value)
                letters.append(character)
                digits = ""
            }
        }
        guard digits.isEmpty, letters == ["w", "s"] || letters == ["w", "s", "q"] else { return nil }
        ways = numbers[0]
        shots = numbers[1]
        queries = numbers.count == 3 ? numbers[2] : nil
    }
}

/// The test episodes of a suite, as the runner evaluates every learner on them.
public enum EvaluationEpisodes {
    /// The most episodes `episodes(suite:dataset:setting:count:)` returns.
    public static let maxCount = 100_000
    /// The most bytes of float32 pixels it holds: 8 GiB, or the memory budget when that is lower.
    public static var byteLimit: Int { min(8 << 30, MemoryBudget.bytes) }

    /// The sampler whose episode `i` is the test episode `i` of every cell of `setting`: the suite's test
    /// split, its evaluation seed and normalisation, the setting's ways, shots and queries.
    static func sampler(plan: DataPlan, setting: SettingSpec, normalization: Normalization,
                        seed: UInt64) throws -> EpisodeSampler {
        let settings = EpisodeSettings(ways: setting.ways, shots: setting.shots, queriesPerClass: setting.queries,
                                       normalization: normalization)
        return try EpisodeSampler(split: plan.test, imageShape: plan.dataset.imageShape, settings: settings, seed: seed)
    }

    /// The sampler of `setting`'s test episodes for the suite run on `dataset` (the suite's dataset, loaded
    /// with `SuiteRunner.loadDataset`); `normalized: false` leaves out the suite's normalisation (the same
    /// episodes, pixels in [0, 1], as an episode file stores them).
    public static func sampler(suite: Suite, dataset: FewShotDataset, setting: SettingSpec,
                               normalized: Bool = true) throws -> EpisodeSampler {
        let plan = try DataPlan(suite: suite, dataset: dataset)
        do {
            return try sampler(plan: plan, setting: setting, normalization: normalized ? suite.normalization : .none,
                               seed: suite.evaluation.seed)
        } catch {
            throw RunnerError.dataset(file: suite.file, line: nil, message: "setting \(setting.id): \(error)")
        }
    }

    /// Test episodes `0..<count` of `setting`, after checking that they fit `maxCount` and `byteLimit`
    /// (`normalized` as for `sampler`).
    public static func episodes(suite: Suite, dataset: FewShotDataset, setting: SettingSpec,
                                count: Int, normalized: Bool = true) throws -> [Episode] {
        guard (1...maxCount).contains(count) else {
            throw RunnerError.invalidOption("the episode count must be in 1…\(maxCount), got \(count)")
        }
        let images = Suite.product(setting.ways, Suite.sum(setting.shots, setting.queries))
        let bytes = Suite.product(Suite.product(Suite.product(count, images), dataset.imageShape.count), 4)
        guard bytes <= byteLimit else {
            let size = bytes == .max ? "more bytes than a 64-bit integer counts" : MemoryBudget.gibibytes(bytes)
            throw RunnerError.invalidOption(
                "\(count) episodes of \(setting.shortName) with \(setting.queries) queries per class and "
                + "\(dataset.imageShape) images need \(size) of float32 pixels, more than the limit of "
                + "\(MemoryBudget.gibibytes(byteLimit)) (8 GiB, or half of this machine's memory); export fewer")
        }
        let sampler = try sampler(suite: suite, dataset: dataset, setting: setting, normalized: normalized)
        return (0..<count).map(sampler.episode)
    }
}
