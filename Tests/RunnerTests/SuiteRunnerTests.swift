import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

final class SuiteRunnerTests: XCTestCase {
    var folder = ""

    override func setUp() {
        folder = Fixtures.temporaryFolder()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func testRunWritesCellsAndResumes() throws {
        let log = LearnerLog()
        let registry = Fixtures.registry(log: log)
        let suite = try Fixtures.suite(registry: registry)
        let first = try Fixtures.run(suite, registry: registry, output: folder)
        XCTAssertEqual(first.trainedCells, 4)
        XCTAssertEqual(first.reusedCells, 0)
        XCTAssertEqual(log.made, 4)
        XCTAssertEqual(log.steps, 4 * 6)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/cells").sorted()
        XCTAssertEqual(files, ["nearest-3w1s2q-seed0.json", "nearest-3w1s2q-seed1.json",
                               "nearest-b-3w1s2q-seed0.json", "nearest-b-3w1s2q-seed1.json"])
        XCTAssertFalse(files.contains { $0.hasPrefix(".") }, "no temporary files are left")

        for cell in first.results.cells {
            XCTAssertEqual(cell.status, .completed)
            XCTAssertEqual(cell.episodeCorrect.count, 12)
            XCTAssertEqual(cell.queriesPerEpisode, 6)
            XCTAssertEqual(cell.accuracy ?? -1, Statistics.mean(cell.episodeAccuracies) * 100, accuracy: 1e-9)
            XCTAssertEqual(cell.ci95 ?? -1, Statistics.ci95(cell.episodeAccuracies) * 100, accuracy: 1e-9)
            // Validation at iterations 3 and 6; a curve point at every iteration (6 iterations < 100).
            XCTAssertEqual(cell.learningCurve.map(\.iteration), [1, 2, 3, 4, 5, 6])
            XCTAssertEqual(cell.learningCurve.compactMap(\.validationAccuracy).count, 2)
            XCTAssertEqual(cell.transductive, false)
            XCTAssertEqual(cell.threads, 1)
            XCTAssertNotNil(cell.adaptMillisecondsPerEpisode)
            XCTAssertEqual(cell.config.hyperparameters.values["meta_batch"], .int(1), "defaults are filled in")
        }
        // Results are read back from the cell files, where JSON does not tell 2 from 2.0: equal as values.
        XCTAssertEqual(HyperParameterValues(["scale": first.results.cells[0].config.hyperparameters.values["scale"] ?? .int(0)]),
                       HyperParameterValues(["scale": .double(2)]))
        XCTAssertEqual(log.settings.map(\.metaBatch), [2, 2, 2, 2])
        XCTAssertEqual(log.settings.map(\.iterations), [6, 6, 6, 6])
        XCTAssertEqual(log.settings.map(\.seed), [0, 1, 0, 1])
        XCTAssertEqual(log.settings.first?.trainClassCount, 8)
        XCTAssertEqual(first.results.publishedAccuracy(label: "nearest", setting: "3w1s"), 50)
        XCTAssertEqual(Report.rows(first.results).map(\.published), [50, nil])

        // The evaluation episodes are the same for every learner: two identical learners score identically.
        let a = first.results.cells.first { $0.key == CellKey(label: "nearest", setting: "3w1s2q", seed: 0) }
        let b = first.results.cells.first { $0.key == CellKey(label: "nearest-b", setting: "3w1s2q", seed: 1) }
        XCTAssertEqual(a?.episodeCorrect, b?.episodeCorrect)

        // A second run trains nothing and reproduces the results.
        let second = try Fixtures.run(suite, registry: registry, output: folder)
        XCTAssertEqual(second.trainedCells, 0)
        XCTAssertEqual(second.reusedCells, 4)
        XCTAssertEqual(log.made, 4)
        XCTAssertEqual(second.results.cells, first.results.cells)

        // Changing the configuration (here the evaluation episodes) retrains.
        let third = try Fixtures.run(suite, registry: registry, output: folder, episodes: 5)
        XCTAssertEqual(third.trainedCells, 4)
        XCTAssertEqual(third.results.cells[0].episodeCorrect, Array(first.results.cells[0].episodeCorrect.prefix(5)),
                       "evaluation episodes depend only on the evaluation seed, split and index")

        // An interrupted run (a cell file missing) trains only that cell.
        try FileManager.default.removeItem(atPath: folder + "/cells/nearest-b-3w1s2q-seed0.json")
        let fourth = try Fixtures.run(suite, registry: registry, output: folder, episodes: 5)
        XCTAssertEqual(fourth.trainedCells, 1)
        XCTAssertEqual(fourth.reusedCells, 3)
    }

    func testDivergedAndFailedCellsAreReportedAndTheSuiteGoesOn() throws {
        let registry = Fixtures.registry()
        let yaml = """
        settings: [{ways: 3, shots: 1, queries: 2}]
        learners:
          - name: diverging
          - name: throwing
          - name: nearest
        training: {iterations: 5}
        evaluation: {episodes: 4}
        """
        let suite = try Suite.parse(yaml: yaml, file: "mixed.yaml", registry: registry)
        let summary = try Fixtures.run(suite, registry: registry, output: folder)
        let cells = Dictionary(uniqueKeysWithValues: summary.results.cells.map { ($0.config.label, $0) })
        XCTAssertEqual(cells["diverging"]?.status, .diverged)
        XCTAssertEqual(cells["diverging"]?.divergedAtIteration, 3)
        XCTAssertNil(cells["diverging"]?.accuracy)
        XCTAssertEqual(cells["throwing"]?.status, .failed)
        XCTAssertEqual(cells["throwing"]?.message, "boom at iteration 0")
        XCTAssertEqual(cells["nearest"]?.status, .completed)

        let table = Report.table(summary.results)
        XCTAssertTrue(table.contains("diverged"), table)
        XCTAssertTrue(table.contains("failed"), table)
        XCTAssertTrue(table.contains("boom at iteration 0"), table)
        let markdown = try String(contentsOfFile: folder + "/REPORT.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("## Diverged or failed"), markdown)

        // A failed cell is retried on the next run; a diverged one is kept.
        let again = try Fixtures.run(suite, registry: registry, output: folder)
        XCTAssertEqual(again.trainedCells, 1)
        XCTAssertEqual(again.reusedCells, 2)
    }

    func testReportsAreWritten() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        let summary = try Fixtures.run(suite, registry: registry, output: folder)
        let stored = try ResultSet.load(folder)
        XCTAssertEqual(stored, summary.results)
        XCTAssertEqual(try ResultSet.load(folder + "/results.json"), stored)
        XCTAssertEqual(stored.suite, "tiny")
        XCTAssertEqual(stored.dataset.validationSplit, "val")
        XCTAssertEqual(stored.producers.count, 1)
        XCTAssertEqual(stored.producers.first?.cells.count, 4)
        for cell in stored.cells {
            let p = try XCTUnwrap(cell.provenance)
            XCTAssertEqual(p.threads, 1)
            XCTAssertFalse(p.cpuModel.isEmpty)
            XCTAssertFalse(p.gitCommit.isEmpty)
            XCTAssertFalse(p.openblasKernels.isEmpty)
            XCTAssertFalse(p.date.isEmpty)
        }

        let json = try String(contentsOfFile: folder + "/results.json", encoding: .utf8)
        XCTAssertTrue(json.contains("\"episodeCorrect\""))
        XCTAssertTrue(json.contains("\"scale\" : 2"), "hyperparameters are plain JSON values")

        let csv = try String(contentsOfFile: folder + "/results.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 5)
        XCTAssertTrue(csv[0].hasPrefix("label,learner,setting,ways,shots"))
        XCTAssertTrue(csv[1].hasPrefix("nearest,nearest,3w1s2q,3,1,2,3,1,2,0,completed,"), String(csv[1]))

        let markdown = try String(contentsOfFile: folder + "/REPORT.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| Learner | Setting | Accuracy (%) | Over seeds (%) | Published |"), markdown)
        XCTAssertTrue(markdown.contains("| nearest | 3w1s2q | "), markdown)
        XCTAssertTrue(markdown.contains("| 50.00 |"), markdown)

        let svg = try String(contentsOfFile: folder + "/learning-curves.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(svg.components(separatedBy: "stroke-width=\"2\" points").count - 1, 2, "one line per learner")
        XCTAssertEqual(svg.components(separatedBy: "stroke-opacity").count - 1, 4, "and a faint one per seed")
        XCTAssertTrue(svg.contains("validation accuracy (%)"))
        XCTAssertTrue(svg.contains(">nearest-b<"))

        let rows = Report.rows(stored)
        XCTAssertEqual(rows.map(\.label), ["nearest", "nearest-b"])
        XCTAssertEqual(rows[0].seeds, 2)
        let pooled = stored.cells.filter { $0.config.label == "nearest" }.flatMap(\.episodeAccuracies)
        XCTAssertEqual(rows[0].accuracy ?? -1, Statistics.mean(pooled) * 100, accuracy: 1e-9)
    }

    func testNoValidationSplitMeansNoValidation() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        let summary = try Fixtures.run(suite, registry: registry, output: folder, validation: false)
        XCTAssertNil(summary.results.dataset.validationSplit)
        XCTAssertTrue(summary.results.notes.first?.contains("no 'val' split") ?? false)
        XCTAssertTrue(summary.results.cells.allSatisfy { $0.learningCurve.allSatisfy { $0.validationAccuracy == nil } })
        let svg = try String(contentsOfFile: folder + "/learning-curves.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("training loss"))

        // A val split named in the suite must exist.
        let explicit = try Suite.parse(yaml: Fixtures.suiteYAML + "\ndataset: {splits: {val: validation}}", file: "v.yaml",
                                       registry: registry)
        XCTAssertThrowsError(try Fixtures.run(explicit, registry: registry, output: folder)) { error in
            XCTAssertTrue("\(error)".contains("no split named 'validation'"), "\(error)")
        }
    }

    /// A learner's `training:` block changes its own budget and meta-training episodes, never the
    /// evaluation episodes: the other learner keeps the suite's, and both are scored on the same episodes.
    func testPerLearnerTraining() throws {
        let log = LearnerLog()
        let registry = Fixtures.registry(log: log)
        let yaml = Fixtures.suiteYAML.replacingOccurrences(
            of: "    hyperparameters: {scale: 2}",
            with: "    hyperparameters: {scale: 2}\n    training: {iterations: 3, meta_batch: 1, train_ways: 5, train_queries: 1}")
        let suite = try Fixtures.suite(yaml, registry: registry)
        let summary = try Fixtures.run(suite, registry: registry, output: folder)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/cells").sorted()
        XCTAssertEqual(files, ["nearest-3w1s2q-train5w1s1q-seed0.json", "nearest-3w1s2q-train5w1s1q-seed1.json",
                               "nearest-b-3w1s2q-seed0.json", "nearest-b-3w1s2q-seed1.json"])
        let own = summary.results.cells.filter { $0.config.label == "nearest" }
        let plain = summary.results.cells.filter { $0.config.label == "nearest-b" }
        XCTAssertEqual(plain.map(\.config.training), Array(repeating: suite.training, count: 2))
        XCTAssertEqual(plain.map(\.config.setting), Array(repeating: suite.settings[0], count: 2))
        XCTAssertEqual(own.map(\.config.training.iterations), [3, 3])
        XCTAssertEqual(own.map(\.config.training.metaBatch), [1, 1])
        XCTAssertEqual(own.map(\.config.training.validateEvery), [3, 3], "unset fields keep the suite's value")
        XCTAssertEqual(own.map(\.config.setting), Array(repeating: SettingSpec(ways: 3, shots: 1, queries: 2, trainWays: 5,
                                                                                trainQueries: 1), count: 2))
        XCTAssertEqual(own.map(\.learningCurve.count), [3, 3])
        XCTAssertEqual(log.settings.map(\.trainWays), [5, 5, 3, 3])
        XCTAssertEqual(log.settings.map(\.iterations), [3, 3, 6, 6])
        XCTAssertEqual(log.settings.map(\.metaBatch), [1, 1, 2, 2])
        XCTAssertEqual(Report.rows(summary.results).filter { $0.label == "nearest" }.map(\.published), [50],
                       "published numbers are keyed by the evaluation setting")
        // Same evaluation episodes: the two nearest-mean learners (which do not learn) score identically.
        XCTAssertEqual(plain.map(\.episodeCorrect), own.map(\.episodeCorrect))
    }

    func testInputErrors() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        XCTAssertThrowsError(try Fixtures.run(suite, registry: registry, output: folder, only: ["protonet"])) { error in
            XCTAssertEqual("\(error)", "--only protonet: no learner of the suite has that label or name (the suite has: nearest, nearest-b)")
        }
        let onlyB = try Fixtures.run(suite, registry: registry, output: folder, only: ["nearest-b"])
        XCTAssertEqual(Set(onlyB.results.cells.map(\.config.label)), ["nearest-b"])
        XCTAssertThrowsError(try Fixtures.run(suite, registry: registry, output: folder, threads: 0))
        XCTAssertThrowsError(try Fixtures.run(suite, registry: registry, output: folder, episodes: 0))

        let tooWide = try Suite.parse(yaml: Fixtures.suiteYAML.replacingOccurrences(of: "ways: 3", with: "ways: 7"),
                                      file: "w.yaml", registry: registry)
        XCTAssertThrowsError(try Fixtures.run(tooWide, registry: registry, output: folder)) { error in
            XCTAssertTrue("\(error)".hasPrefix("w.yaml: dataset: setting 7w1s2q:"), "\(error)")
        }
        // A learner's own training shape that the data cannot serve: the error names the learner and its line.
        let ownTooWide = try Suite.parse(yaml: Fixtures.suiteYAML.replacingOccurrences(
            of: "    label: nearest-b", with: "    label: nearest-b\n    training: {train_ways: 9}"),
            file: "o.yaml", registry: registry)
        XCTAssertThrowsError(try Fixtures.run(ownTooWide, registry: registry, output: folder)) { error in
            XCTAssertTrue("\(error)".hasPrefix("o.yaml:8: dataset: learner nearest-b, setting 3w1s2q-train9w1s2q:"), "\(error)")
        }
        var missing = suite
        missing.dataset = DatasetSpec(path: "/nonexistent/omniglot", line: 3)
        XCTAssertThrowsError(try SuiteRunner.loadDataset(missing.dataset, suiteFile: "m.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("m.yaml:3: dataset: no such file or folder: /nonexistent/omniglot"), "\(error)")
        }
    }
}
