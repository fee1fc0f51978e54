import FewShotData
import Foundation
@testable import Runner
import XCTest

/// The paired comparisons, Holm's marks, the between-seed intervals and the distributions behind them. Reference
/// quantiles and p-values are SciPy 1.17's (`scipy.stats.t.ppf`, `ttest_1samp`, `binomtest`).
final class PairedStatisticsTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    // MARK: - Distributions

    func testTQuantilesMatchReferenceValues() {
        let cases: [(p: Double, nu: Double, t: Double)] = [
            (0.975, 1, 12.706204736174694), (0.975, 3, 3.1824463052837078), (0.975, 7, 2.364624251592784),
            (0.975, 10, 2.228138851986274), (0.975, 30, 2.0422724563012378), (0.975, 1000, 1.9623390808264083),
            (0.975, 1e7, 1.959964221767205), (0.995, 5, 4.032142983555228), (0.9, 2, 1.8856180831641272),
        ]
        for c in cases {
            let t = Statistics.tQuantile(c.p, degreesOfFreedom: c.nu)
            XCTAssertEqual(t, c.t, accuracy: 1e-9 * c.t, "t(\(c.p), \(c.nu))")
            XCTAssertEqual(Statistics.tQuantile(1 - c.p, degreesOfFreedom: c.nu), -t, "symmetric")
        }
        XCTAssertEqual(Statistics.tTwoSidedTail(3, degreesOfFreedom: 4), 0.03994196807171883, accuracy: 1e-12)
        XCTAssertEqual(Statistics.tTwoSidedTail(0.5, degreesOfFreedom: 2.5), 0.6576979198697148, accuracy: 1e-12)
        XCTAssertEqual(Statistics.tTwoSidedTail(0, degreesOfFreedom: 3), 1)
        XCTAssertEqual(Statistics.tTwoSidedTail(.infinity, degreesOfFreedom: 3), 0)
        XCTAssertTrue(Statistics.tQuantile(0, degreesOfFreedom: 3).isNaN)
    }

    func testIncompleteBetaClosedForms() {
        for x in [0.0, 0.1, 0.37, 0.5, 0.93, 1.0] {
            XCTAssertEqual(Statistics.regularizedIncompleteBeta(x, a: 1, b: 1), x, accuracy: 1e-13)
            XCTAssertEqual(Statistics.regularizedIncompleteBeta(x, a: 3, b: 1), x * x * x, accuracy: 1e-13)
            XCTAssertEqual(Statistics.regularizedIncompleteBeta(x, a: 1, b: 4), 1 - pow(1 - x, 4), accuracy: 1e-13)
        }
        XCTAssertEqual(Statistics.regularizedIncompleteBeta(0.5, a: 7.5, b: 7.5), 0.5, accuracy: 1e-13)
    }

    func testSignTestIsTheExactBinomialTail() {
        // 1 of 10 the other way: 2·(1 + 10)/2¹⁰.
        XCTAssertEqual(Statistics.signTestP(positives: 9, negatives: 1), 2 * 11 / 1024, accuracy: 1e-14)
        XCTAssertEqual(Statistics.signTestP(positives: 0, negatives: 20), 2 / 1_048_576, accuracy: 1e-18)
        XCTAssertEqual(Statistics.signTestP(positives: 5, negatives: 2), 0.453125, accuracy: 1e-14)
        XCTAssertEqual(Statistics.signTestP(positives: 5, negatives: 5), 1)
        XCTAssertEqual(Statistics.signTestP(positives: 0, negatives: 0), 1)
    }

    /// p = 0.01, 0.04, 0.30: α = 0.05 marks two, Holm (×3, ×2, ×1) one.
    func testHolmMarksFewerThanUncorrectedTests() {
        let p = [0.04, 0.30, 0.01]
        let adjusted = Statistics.holmAdjusted(p)
        XCTAssertEqual(p.filter { $0 < 0.05 }.count, 2)
        XCTAssertEqual(adjusted[0], 0.08, accuracy: 1e-15)
        XCTAssertEqual(adjusted[1], 0.30, accuracy: 1e-15)
        XCTAssertEqual(adjusted[2], 0.03, accuracy: 1e-15)
        XCTAssertEqual(adjusted.filter { $0 < 0.05 }.count, 1)
        // Step-down: an adjusted p is never below an earlier one, and never above 1.
        let stepped = Statistics.holmAdjusted([0.01, 0.011, 0.1, 0.6])
        XCTAssertEqual(stepped[0], 0.04, accuracy: 1e-15)
        XCTAssertEqual(stepped[1], 0.04, accuracy: 1e-15)
        XCTAssertEqual(stepped[2], 0.2, accuracy: 1e-15)
        XCTAssertEqual(stepped[3], 0.6, accuracy: 1e-15)
        XCTAssertEqual(Statistics.holmAdjusted([0.5, 0.6]), [1, 1])
    }

    /// Three learners whose pairs have p = 0.0341, 0.0341 and 1: uncorrected, two pairs are below 0.05; Holm
    /// multiplies the smallest by 3 (0.102) and marks none. A fourth learner, constantly better, is marked.
    func testHolmMarksInTheReport() throws {
        let template = try templateCell()
        // B − A per episode: 2, 1, 1, 1, 0 correct queries of 5 (40, 20, 20, 20, 0 points): t = √10 with 4 df.
        let a = [2, 2, 2, 2, 2], b = [4, 3, 3, 3, 2], d = [4, 4, 4, 4, 4]
        var cells = [cell(template, "A", correct: a), cell(template, "B", correct: b), cell(template, "C", correct: b)]
        let comparisons = PairedComparison.all(cells)
        XCTAssertEqual(comparisons.map { "\($0.labelA)-\($0.labelB)" }, ["A-B", "A-C", "B-C"])
        let tP = 0.03410942316740963  // SciPy's ttest_1samp([40, 20, 20, 20, 0])
        XCTAssertEqual(try XCTUnwrap(comparisons[0].interval.tTestP), tP, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(comparisons[1].interval.tTestP), tP, accuracy: 1e-12)
        XCTAssertEqual(comparisons[2].interval.tTestP, 1)
        XCTAssertEqual(comparisons.filter { ($0.interval.tTestP ?? 1) < 0.05 }.count, 2)
        XCTAssertEqual(try XCTUnwrap(comparisons[0].holmP), 3 * tP, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(comparisons[1].holmP), 3 * tP, accuracy: 1e-12)
        XCTAssertEqual(comparisons[2].holmP, 1)
        XCTAssertEqual(comparisons.filter(\.significant).count, 0)

        // D scores 2 more than A on every episode: p = 0, marked; the other pairs (Holm over six) are not.
        cells.append(cell(template, "D", correct: d))
        let four = PairedComparison.all(cells)
        XCTAssertEqual(four.filter(\.significant).map { "\($0.labelA)-\($0.labelB)" }, ["A-D"])
        let markdown = Report.markdown(results(cells))
        XCTAssertTrue(markdown.contains("| D | +40.00 ± 0.00* | "), markdown)
        // Half-width t(0.975, 4)·s/√5 = 17.56 (SciPy).
        XCTAssertTrue(markdown.contains("| A | | -20.00 ± 17.56 | -20.00 ± 17.56 | -40.00 ± 0.00* |"), markdown)
        XCTAssertTrue(markdown.contains("| A | | 0.171 | 0.171 | <0.001 |"), markdown)
        XCTAssertTrue(markdown.contains("Holm-corrected over the setting's pairs"), markdown)
    }

    // MARK: - Paired intervals

    /// Two learners, two seeds of four episodes of 5 queries; the interval computed by hand.
    func testPairedIntervalByHandEqualsTheReports() throws {
        let template = try templateCell()
        let cells = [
            cell(template, "A", seed: 0, correct: [3, 4, 2, 5]), cell(template, "A", seed: 1, correct: [1, 2, 3, 4]),
            cell(template, "B", seed: 0, correct: [4, 4, 3, 5]), cell(template, "B", seed: 1, correct: [2, 4, 3, 3]),
        ]
        // B − A: seed 0: 20, 0, 20, 0; seed 1: 20, 40, 0, -20 (percentage points). Mean 80/8 = 10; squared
        // deviations 100·6 + 900·2 = 2400, s² = 2400/7; half-width t(0.975, 7)·√(s²/8); t = 10/√(s²/8) → p = 0.17047.
        let halfWidth = 2.364624251592784 * (2400.0 / 7 / 8).squareRoot()
        let set = results(cells)
        let pair = try XCTUnwrap(set.pairedComparisons?.first)
        XCTAssertEqual(set.pairedComparisons?.count, 1)
        XCTAssertEqual(pair.labelA, "A")
        XCTAssertEqual(pair.labelB, "B")
        XCTAssertEqual(pair.seeds, [0, 1])
        XCTAssertEqual(pair.interval.pairs, 8)
        XCTAssertEqual(pair.interval.difference, 10, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(pair.interval.halfWidth), halfWidth, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(pair.interval.tTestP), 0.1704706607870538, accuracy: 1e-9)
        // Sign test: 4 positive, 1 negative, 3 ties → 2·(1 + 5)/2⁵.
        XCTAssertEqual(pair.interval.signTestP, 0.375, accuracy: 1e-14)
        XCTAssertEqual(pair.holmP, pair.interval.tTestP, "one pair: Holm changes nothing")
        XCTAssertFalse(pair.significant)

        let markdown = Report.markdown(set)
        XCTAssertTrue(markdown.contains("| B | +10.00 ± \(Format.fixed(halfWidth, 2)) | |"), markdown)
        XCTAssertTrue(markdown.contains("| A | | -10.00 ± 15.48 |"), markdown)
        XCTAssertTrue(markdown.contains("| A | | 0.170 |\n| B | 0.375 | |"), markdown)
        XCTAssertTrue(markdown.contains("Paired episodes per pair: 8 (seeds 0, 1)."), markdown)

        // results.json holds the same numbers, and reads back equal.
        try Report.writeAll(set, to: folder)
        let stored = try ResultSet.load(folder)
        XCTAssertEqual(stored.pairedComparisons, set.pairedComparisons)
        XCTAssertEqual(stored, set)
        let json = try String(contentsOfFile: folder + "/results.json", encoding: .utf8)
        XCTAssertTrue(json.contains("\"pairedComparisons\""), json)

        // A seed one learner did not complete is left out of the pairs.
        var failed = cells
        failed[3].status = .failed
        XCTAssertEqual(PairedComparison.all(failed).first?.seeds, [0])
        XCTAssertEqual(PairedComparison.all(failed).first?.interval.pairs, 4)
        // Another evaluation seed or episode count: not the same episodes, no pair.
        var otherEpisodes = cells
        otherEpisodes[2].config.evaluation.seed = 8
        otherEpisodes[3].config.evaluation.seed = 8
        XCTAssertNil(results(otherEpisodes).pairedComparisons)
        XCTAssertFalse(Report.markdown(results(otherEpisodes)).contains("## Paired differences"))
        // Keeping the statistics in step with the cells: editing a cell updates them.
        var edited = set
        edited.cells[2].config.evaluation.seed = 8
        XCTAssertEqual(edited.pairedComparisons?.first?.seeds, [1])
    }

    /// A learner listed twice under two labels scores the same on every episode: exactly 0, a zero-width
    /// interval, p = 1 and no mark; and a nonzero constant difference gets p = 0 and a mark.
    func testDuplicatedLearnerGivesExactlyZero() throws {
        let registry = Fixtures.registry()
        let yaml = Fixtures.suiteYAML.replacingOccurrences(of: "hyperparameters: {scale: 2}", with: "label: first")
            .replacingOccurrences(of: "label: nearest-b", with: "label: second")
            .replacingOccurrences(of: "nearest: {3w1s: 50.0}", with: "first: {3w1s: 50.0}")
        let summary = try Fixtures.run(try Fixtures.suite(yaml, registry: registry), registry: registry, output: folder)
        let pair = try XCTUnwrap(summary.results.pairedComparisons?.first)
        XCTAssertEqual(summary.results.pairedComparisons?.count, 1)
        XCTAssertEqual([pair.labelA, pair.labelB], ["first", "second"])
        XCTAssertEqual(pair.interval.pairs, 24, "12 episodes × 2 seeds")
        XCTAssertEqual(pair.interval.difference, 0)
        XCTAssertEqual(pair.interval.halfWidth, 0)
        XCTAssertEqual(pair.interval.tTestP, 1)
        XCTAssertEqual(pair.interval.signTestP, 1)
        XCTAssertEqual(pair.holmP, 1)
        XCTAssertFalse(pair.significant)
        let report = try String(contentsOfFile: folder + "/REPORT.md", encoding: .utf8)
        XCTAssertTrue(report.contains("| first | | +0.00 ± 0.00 |\n| second | +0.00 ± 0.00 | |"), report)

        let constant = try XCTUnwrap(PairedInterval(differences: [5, 5, 5]))
        XCTAssertEqual(constant.difference, 5)
        XCTAssertEqual(constant.halfWidth, 0)
        XCTAssertEqual(constant.tTestP, 0)
        XCTAssertTrue(constant.excludesZero)
        let single = try XCTUnwrap(PairedInterval(differences: [5]))
        XCTAssertNil(single.halfWidth)
        XCTAssertNil(single.tTestP)
        XCTAssertFalse(single.excludesZero)
        XCTAssertNil(PairedInterval(differences: []))
    }

    /// A hand-edited results file (extreme counts, no queries, accuracies near Double's range) gives no NaN or
    /// infinity to results.json and no crash: such cells are left out or compared without an interval.
    func testExtremeValuesStayFiniteAndEncodable() throws {
        let template = try templateCell()
        var huge = cell(template, "A", correct: [Int.max, 0, Int.min, 3])
        huge.accuracy = 100 * (Double(Int.max) + Double(Int.min) + 3) / (4 * 5)
        let zero = cell(template, "B", correct: [0, 0, 0, 0])
        var noQueries = cell(template, "C", correct: [0, 0, 0, 0])
        noQueries.queriesPerEpisode = 0
        var wild = [cell(template, "D", seed: 0, correct: [1, 1, 1, 1]), cell(template, "D", seed: 1, correct: [1, 1, 1, 1])]
        wild[0].episodeAccuracies = [1e308, 1e308, 1e308, 1e308]
        let set = results([huge, zero, noQueries] + wild)
        XCTAssertEqual(set.pairedComparisons?.contains { $0.labelA == "C" || $0.labelB == "C" }, false, "no queries: no pair")
        for pair in set.pairedComparisons ?? [] {
            XCTAssertTrue(pair.interval.difference.isFinite)
            XCTAssertTrue(pair.interval.halfWidth?.isFinite ?? true)
            XCTAssertTrue(pair.interval.tTestP.map { $0 >= 0 && $0 <= 1 } ?? true)
        }
        XCTAssertNil(set.seedStatistics, "D's seeds average to infinity: no between-seed interval")
        XCTAssertNoThrow(try StoredJSON.data(set, for: folder + "/results.json"))
        XCTAssertFalse(Report.markdown(set).isEmpty)
        XCTAssertFalse(Comparison(set, set).render().isEmpty)
    }

    // MARK: - Seeds

    func testBetweenSeedIntervalByHand() throws {
        let template = try templateCell()
        let cells = [
            cell(template, "A", seed: 0, correct: [3, 4, 2, 5]), cell(template, "A", seed: 1, correct: [1, 2, 3, 4]),
            cell(template, "A", seed: 2, correct: [5, 5, 2, 4]),
            cell(template, "B", seed: 0, correct: [4, 4, 3, 5]),
        ]
        // A's seeds: 14/20, 10/20, 16/20 → 70, 50, 80 %; mean 200/3; s² = ((10/3)² + (50/3)² + (40/3)²)/2 = 700/3.
        let set = results(cells)
        let spread = try XCTUnwrap(set.seedStatistics)
        XCTAssertEqual(spread.count, 1, "B has one seed: no between-seed interval")
        XCTAssertEqual(spread[0].label, "A")
        XCTAssertEqual(spread[0].seeds, [0, 1, 2])
        XCTAssertEqual(spread[0].accuracies, [70, 50, 80].map { Double($0) }, accuracy: 1e-12)
        XCTAssertEqual(spread[0].mean, 200.0 / 3, accuracy: 1e-12)
        let ci = 4.302652729749464 * (700.0 / 3 / 3).squareRoot()  // t(0.975, 2), SciPy
        XCTAssertEqual(spread[0].ci95, ci, accuracy: 1e-9)

        let rows = Report.rows(set)
        XCTAssertEqual(rows[0].seedMean ?? -1, 200.0 / 3, accuracy: 1e-12)
        XCTAssertNil(rows[1].seedMean)
        let table = Report.table(set)
        XCTAssertTrue(table.contains("Over seeds (%)"), table)
        XCTAssertTrue(table.contains("66.67 ± \(Format.fixed(ci, 2)) (3 seeds)"), table)
        let markdown = Report.markdown(set)
        XCTAssertTrue(markdown.contains("| Learner | Setting | Accuracy (%) | Over seeds (%) | Published |"), markdown)
        XCTAssertTrue(markdown.contains("t(0.975, k − 1)·σ/√k"), markdown)
        let csv = Report.csv(set).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let column = try XCTUnwrap(csv[0].firstIndex(of: "ci95_over_seeds"))
        XCTAssertEqual(Double(String(csv[1][column])) ?? -1, ci, accuracy: 1e-9)
        XCTAssertEqual(csv[4][column], "", "one seed: empty")

        // One seed everywhere: no column, no field.
        let single = results(Array(cells.prefix(1)))
        XCTAssertFalse(Report.table(single).contains("Over seeds"))
        XCTAssertNil(single.seedStatistics)

        // The learning curves draw a faint line per seed of A (three), none for B's single seed.
        let svg = LearningCurvePlot.svg(set)
        XCTAssertEqual(svg.components(separatedBy: "stroke-opacity=\"0.3\"").count - 1, 3, svg)
        XCTAssertFalse(LearningCurvePlot.svg(single).contains("stroke-opacity"))
    }

    // MARK: - Order

    /// The report keeps the order of the cells (the suite's), not the alphabet's; a learner that appears only in
    /// a later setting takes its place there.
    func testReportKeepsSuiteOrder() throws {
        let template = try templateCell()
        var cells = [cell(template, "zeta", correct: [1, 2]), cell(template, "alpha", correct: [2, 2])]
        for (label, correct) in [("zeta", [1, 1]), ("mid", [3, 3]), ("alpha", [2, 3])] {
            var c = cell(template, label, correct: correct)
            c.config.setting = SettingSpec(ways: 5, shots: 5, queries: 1)
            cells.append(c)
        }
        let set = results(cells)
        XCTAssertEqual(Report.rows(set).map { "\($0.label) \($0.setting)" },
                       ["zeta 5w1s1q", "alpha 5w1s1q", "zeta 5w5s1q", "mid 5w5s1q", "alpha 5w5s1q"])
        let markdown = Report.markdown(set)
        let order = ["| zeta | 5w1s1q", "| alpha | 5w1s1q", "| zeta | 5w5s1q", "| mid | 5w5s1q", "| alpha | 5w5s1q"]
            .map { markdown.range(of: $0)?.lowerBound }
        XCTAssertEqual(order.compactMap { $0 }.count, 5, markdown)
        XCTAssertEqual(order.compactMap { $0 }, order.compactMap { $0 }.sorted(), markdown)
        XCTAssertTrue(markdown.contains("| | zeta | mid | alpha |"), markdown)
        XCTAssertEqual(set.pairedComparisons?.map { "\($0.labelA)-\($0.labelB)" },
                       ["zeta-alpha", "zeta-mid", "zeta-alpha", "mid-alpha"])

        // The same from a run: learners listed zz, aa keep that order.
        let registry = Fixtures.registry()
        let yaml = Fixtures.suiteYAML.replacingOccurrences(of: "label: nearest-b", with: "label: aa")
            .replacingOccurrences(of: "hyperparameters: {scale: 2}", with: "label: zz")
            .replacingOccurrences(of: "nearest: {3w1s: 50.0}", with: "zz: {3w1s: 50.0}")
        let summary = try Fixtures.run(try Fixtures.suite(yaml, registry: registry), registry: registry, output: folder)
        XCTAssertEqual(Report.rows(summary.results).map(\.label), ["zz", "aa"])
        let table = Report.table(summary.results).split(separator: "\n")
        XCTAssertTrue(table[2].hasPrefix("zz "), "\(table)")
        XCTAssertTrue(table[3].hasPrefix("aa "), "\(table)")
    }

    // MARK: - Helpers

    /// A completed cell of the fixture suite, to copy.
    func templateCell() throws -> CellResult {
        let registry = Fixtures.registry()
        let yaml = Fixtures.suiteYAML.replacingOccurrences(of: "seeds: [0, 1]", with: "seeds: [0]")
        let summary = try Fixtures.run(try Fixtures.suite(yaml, registry: registry), registry: registry,
                                       output: folder + "/template", only: ["nearest"])
        return try XCTUnwrap(summary.results.cells.first)
    }

    /// `template` as learner `label`, seed `seed`, 5-way 1-shot with one query per class, scoring `correct`.
    func cell(_ template: CellResult, _ label: String, seed: UInt64 = 0, correct: [Int]) -> CellResult {
        var c = template
        c.config.label = label
        c.config.seed = seed
        c.config.setting = SettingSpec(ways: 5, shots: 1, queries: 1)
        c.config.evaluation = EvaluationSpec(episodes: correct.count, seed: 7)
        c.status = .completed
        c.queriesPerEpisode = 5
        c.episodeCorrect = correct
        c.episodeAccuracies = correct.map { Double($0) / 5 }
        c.accuracy = Statistics.mean(c.episodeAccuracies) * 100
        c.ci95 = Statistics.ci95(c.episodeAccuracies) * 100
        c.fingerprint = c.config.fingerprint
        return c
    }

    func results(_ cells: [CellResult]) -> ResultSet {
        ResultSet(suite: "paired", suiteFile: "paired.yaml", exact: true,
                  dataset: DatasetInfo(name: "tiny", layout: "in-memory", path: "memory",
                                       imageShape: ImageShape(channels: 1, height: 4, width: 4), splits: ["test": 6],
                                       validationSplit: nil),
                  seeds: cells.map(\.config.seed).uniqued(), notes: [], cells: cells)
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
