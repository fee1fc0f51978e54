import Foundation

/// The mean of paired differences with its 95% interval, a paired t-test and a sign test.
///
/// For differences d₁…dₙ (percentage points): the mean d̄; the half-width t(0.975, n − 1)·s/√n (s the sample
/// standard deviation); the paired t-test's two-sided p-value for t = d̄/(s/√n) with n − 1 degrees of freedom;
/// and the two-sided sign test's p-value (zero differences left out). Differences that are all equal have no
/// spread: the interval has width 0 and p is 1 when they are 0 (identical results), 0 otherwise. With fewer
/// than two differences there is no interval and no t-test.
public struct PairedInterval: Sendable, Codable, Equatable {
    /// Paired differences.
    public var pairs: Int
    /// Mean difference, percentage points.
    public var difference: Double
    /// Half-width of the paired 95% interval, percentage points; nil for fewer than two pairs.
    public var halfWidth: Double?
    /// Two-sided p-value of the paired t-test; nil for fewer than two pairs.
    public var tTestP: Double?
    /// Two-sided p-value of the sign test.
    public var signTestP: Double

    public init?(differences: [Double]) {
        guard !differences.isEmpty, differences.allSatisfy(\.isFinite) else { return nil }
        let n = differences.count
        pairs = n
        signTestP = Statistics.signTestP(positives: differences.filter { $0 > 0 }.count,
                                         negatives: differences.filter { $0 < 0 }.count)
        let constant = differences.allSatisfy { $0 == differences[0] }
        difference = constant ? differences[0] : Statistics.mean(differences)
        // Values near Double's range (a hand-edited file) can overflow: say nothing rather than something wrong.
        guard difference.isFinite else { return nil }
        guard n > 1 else { return }
        let spread = constant ? 0 : Statistics.sampleStandardDeviation(differences)
        guard spread.isFinite else { return }
        guard spread > 0 else {
            halfWidth = 0
            tTestP = difference == 0 ? 1 : 0
            return
        }
        let standardError = spread / Double(n).squareRoot()
        let nu = Double(n - 1)
        halfWidth = Statistics.tQuantile(0.975, degreesOfFreedom: nu) * standardError
        tTestP = Statistics.tTwoSidedTail(difference / standardError, degreesOfFreedom: nu)
        if halfWidth?.isFinite != true || tTestP?.isFinite != true {
            halfWidth = nil
            tTestP = nil
        }
    }

    /// Whether the interval leaves out 0 (a nonzero constant difference does; no interval does not).
    public var excludesZero: Bool {
        guard let halfWidth else { return false }
        return abs(difference) > halfWidth
    }
}

/// Whether two cells were evaluated on the same test episodes, and their per-episode differences.
public enum EpisodePairing {
    /// True when episode i of `a` and of `b` are the same episode: both completed, with the same evaluation
    /// (seed, episode count), the same evaluation shape (ways, shots, queries), the same test data (dataset
    /// name, layout, image shape, test split and its class count, options, normalization) and a full record of
    /// per-episode correct counts that the stored accuracy summarises (a record that contradicts its own
    /// accuracy, say a hand-edited file, is not paired).
    public static func sharesEpisodes(_ a: CellResult, _ b: CellResult) -> Bool {
        let x = a.config, y = b.config
        let count = x.evaluation.episodes
        // An episode file's episodes are the file's (its digest), whatever setting's model serves them.
        let sameEpisodes = x.episodesFile != nil || y.episodesFile != nil
            ? x.episodesFile == y.episodesFile && x.setting.episodesFile == y.setting.episodesFile
            : x.setting.ways == y.setting.ways && x.setting.shots == y.setting.shots && x.setting.queries == y.setting.queries
        return a.status == .completed && b.status == .completed
            && x.evaluation == y.evaluation && sameEpisodes
            && x.dataset.name == y.dataset.name && x.dataset.layout == y.dataset.layout
            && x.dataset.imageShape == y.dataset.imageShape && x.dataset.testSplit == y.dataset.testSplit
            && x.dataset.classCounts[x.dataset.testSplit] == y.dataset.classCounts[y.dataset.testSplit]
            && x.dataset.options == y.dataset.options && x.dataset.normalization == y.dataset.normalization
            && x.evaluationDataset == y.evaluationDataset
            && a.queryCounts == b.queryCounts
            && count > 0 && a.episodeCorrect.count == count && b.episodeCorrect.count == count
            && summarisesEpisodes(a) && summarisesEpisodes(b)
    }

    /// Whether a cell's accuracy is the mean of its per-episode correct counts (to 1e-6 percentage points).
    static func summarisesEpisodes(_ cell: CellResult) -> Bool {
        let counts = cell.queryCounts
        guard let accuracy = cell.accuracy, !cell.episodeCorrect.isEmpty, counts.count == cell.episodeCorrect.count,
              counts.allSatisfy({ $0 > 0 }) else { return false }
        let total = zip(cell.episodeCorrect, counts).reduce(0.0) { $0 + Double($1.0) / Double($1.1) }
        let mean = 100 * total / Double(cell.episodeCorrect.count)
        return abs(mean - accuracy) <= 1e-6
    }

    /// B − A per episode, percentage points: 100·(correct_B − correct_A)/queries; nil unless the cells share episodes.
    public static func differences(_ a: CellResult, _ b: CellResult) -> [Double]? {
        guard sharesEpisodes(a, b) else { return nil }
        return zip(zip(a.episodeCorrect, b.episodeCorrect), a.queryCounts).map { pair, queries in
            100 * (Double(pair.1) - Double(pair.0)) / Double(queries)
        }
    }
}

/// Two learners of one setting compared on the episodes both were evaluated on: B − A per episode, episode i
/// of seed s of A paired with episode i of seed s of B, over the seeds both completed on the same episodes.
/// `holmP` and `significant` come from Holm's correction over the pairs of the setting.
public struct PairedComparison: Sendable, Codable, Equatable {
    public var setting: String
    public var labelA: String
    public var labelB: String
    /// The training seeds whose episodes were paired.
    public var seeds: [UInt64]
    public var interval: PairedInterval
    /// The t-test's p-value after Holm's correction over the setting's pairs; nil without a t-test.
    public var holmP: Double?
    /// Whether `holmP` < `PairedComparison.alpha`.
    public var significant: Bool

    /// The name of a setting's test episodes: `5w1s`, with the queries when not 15 (`20w1s5q`); the training
    /// shape, which does not change the test episodes, left out.
    public static func evaluationName(_ setting: SettingSpec) -> String {
        if let file = setting.episodesFile { return file }
        return setting.shortName + (setting.queries == 15 ? "" : "\(setting.queries)q")
    }

    /// The family-wise error rate of the marks.
    public static let alpha = 0.05

    /// Every pair of learner labels in every setting, in the order of `cells` (settings, then labels as they
    /// first appear in the setting), with Holm's correction applied per setting. A pair with no seed on shared
    /// episodes is left out.
    public static func all(_ cells: [CellResult]) -> [PairedComparison] {
        var result: [PairedComparison] = []
        // By evaluation setting: a learner with its own training episodes (`5w1s-train60w1s5q`) is scored on
        // the same test episodes as the others of `5w1s`.
        for setting in cells.map({ evaluationName($0.config.setting) }).uniqued() {
            let inSetting = cells.filter { evaluationName($0.config.setting) == setting }
            let labels = inSetting.map(\.config.label).uniqued()
            // Each label's completed cells, one per seed (the first), in order.
            var completed: [String: [CellResult]] = [:]
            for cell in inSetting where cell.status == .completed
                && !(completed[cell.config.label] ?? []).contains(where: { $0.config.seed == cell.config.seed }) {
                completed[cell.config.label, default: []].append(cell)
            }
            var family: [PairedComparison] = []
            for i in labels.indices {
                for j in labels.indices where j > i {
                    var seeds: [UInt64] = []
                    var differences: [Double] = []
                    for cellA in completed[labels[i]] ?? [] {
                        guard let cellB = completed[labels[j]]?.first(where: { $0.config.seed == cellA.config.seed }),
                              let d = EpisodePairing.differences(cellA, cellB) else { continue }
                        seeds.append(cellA.config.seed)
                        differences += d
                    }
                    guard let interval = PairedInterval(differences: differences) else { continue }
                    family.append(PairedComparison(setting: setting, labelA: labels[i], labelB: labels[j], seeds: seeds,
                                                   interval: interval, holmP: nil, significant: false))
                }
            }
            let tested = family.indices.filter { family[$0].interval.tTestP != nil }
            let adjusted = Statistics.holmAdjusted(tested.map { family[$0].interval.tTestP ?? 1 })
            for (index, p) in zip(tested, adjusted) {
                family[index].holmP = p
                family[index].significant = p < alpha
            }
            result += family
        }
        return result
    }
}

/// A row's spread over training seeds: each completed seed's accuracy (mean over its episodes, percent), their
/// mean and the between-seed 95% interval t(0.975, k − 1)·σ/√k over the k seeds. Only rows with two seeds or more.
public struct SeedStatistics: Sendable, Codable, Equatable {
    public var label: String
    public var setting: String
    public var seeds: [UInt64]
    /// Accuracy of each seed, percent, in the order of `seeds`.
    public var accuracies: [Double]
    public var mean: Double
    public var ci95: Double

    /// The rows of `cells` (settings, then labels in order of appearance) with at least two completed seeds.
    public static func all(_ cells: [CellResult]) -> [SeedStatistics] {
        var result: [SeedStatistics] = []
        for setting in cells.map(\.config.setting.id).uniqued() {
            let inSetting = cells.filter { $0.config.setting.id == setting }
            for label in inSetting.map(\.config.label).uniqued() {
                let done = inSetting.filter { $0.config.label == label && $0.status == .completed && !$0.episodeAccuracies.isEmpty }
                guard done.count > 1 else { continue }
                let accuracies = done.map { Statistics.mean($0.episodeAccuracies) * 100 }
                let mean = Statistics.mean(accuracies)
                guard let ci95 = Statistics.tInterval95(accuracies), mean.isFinite, ci95.isFinite,
                      accuracies.allSatisfy(\.isFinite) else { continue }
                result.append(SeedStatistics(label: label, setting: setting, seeds: done.map(\.config.seed),
                                             accuracies: accuracies, mean: mean, ci95: ci95))
            }
        }
        return result
    }
}
