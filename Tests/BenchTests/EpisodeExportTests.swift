import FewShotData
import Foundation
import Runner
import XCTest

/// `bench episodes export`: the file holds the runner's test episodes, and every mistake is a clear error.
extension BenchOutputTests {
    /// A suite on the shipped Omniglot subset, written to a scratch folder (the dataset by absolute path).
    func exportSuite(in folder: URL, settings: String, episodes: Int = 3, extra: String = "") throws -> URL {
        let dataset = Self.packageRoot.appendingPathComponent("datasets/omniglot-small").path
        let yaml = """
        name: export-test
        dataset:
          path: \(dataset)
          image_size: 28
          rotations: true
        settings:
        \(settings)
        learners:
          - name: protonet
        training:
          iterations: 1
        evaluation:
          episodes: \(episodes)
          seed: 11
        \(extra)
        """
        let file = folder.appendingPathComponent("export-test.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    func scratchFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Episode i of the file is test episode i of the suite, rebuilt here from the protocol the README states
    /// (the suite's test split, evaluation seed, ways, shots and queries): the episodes every learner is scored on.
    func testEpisodesExportWritesTheTestEpisodes() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let suiteFile = try exportSuite(in: folder, settings: """
          - {ways: 5, shots: 1, queries: 15}
          - {ways: 20, shots: 1, queries: 5, train_ways: 30}
        """)
        let twenty = folder.appendingPathComponent("20w1s.h5"), five = folder.appendingPathComponent("5w1s.h5")
        let first = try Self.bench(["episodes", "export", "--suite", suiteFile.path, "--setting", "20w1s", twenty.path])
        XCTAssertTrue(first.contains("exit status 0\n"), first)
        XCTAssertTrue(first.contains("3 test episodes of suite export-test, 20w1s with 5 queries per class"), first)
        let second = try Self.bench(["episodes", "export", "--suite", suiteFile.path, "--setting", "5w1s15q",
                                     "--count", "4", five.path])
        XCTAssertTrue(second.contains("exit status 0\n"), second)

        let suite = try Suite.load(suiteFile.path)
        let dataset = try DatasetLoader.load(suite.dataset.path, options: suite.dataset.options)
        let test = try dataset.split(named: "test")
        for (file, ways, queries, count) in [(twenty, 20, 5, 3), (five, 5, 15, 4)] {
            let episodes = try EpisodeFile.read(file.path)
            XCTAssertEqual(episodes.count, count, file.lastPathComponent)
            let sampler = try EpisodeSampler(split: test, imageShape: dataset.imageShape,
                                             settings: EpisodeSettings(ways: ways, shots: 1, queriesPerClass: queries),
                                             seed: 11)
            for (i, episode) in episodes.enumerated() {
                XCTAssertEqual(episode, sampler.episode(i), "\(file.lastPathComponent) episode \(i)")
            }
            XCTAssertEqual(episodes.first?.support.shape, ImageShape(channels: 1, height: 28, width: 28))
        }
    }

    /// An exported file evaluated by `bench evaluate --episodes-file` with the model `bench run` trained scores
    /// every episode exactly as the suite's own test episodes (the suite's resizing and normalisation applied
    /// once, on reading), without training again.
    func testExportedEpisodesEvaluateAsTheSuitesOwn() throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let suiteFile = try exportSuite(in: folder, settings: "  - {ways: 5, shots: 1, queries: 15}",
                                        extra: "normalization: {mean: [0.9], std: [0.3]}")
        let file = folder.appendingPathComponent("exported.h5"), out = folder.appendingPathComponent("out")
        let export = try Self.bench(["episodes", "export", "--suite", suiteFile.path, "--setting", "5w1s", file.path])
        XCTAssertTrue(export.contains("exit status 0\n"), export)
        let run = try Self.bench(["run", "--suite", suiteFile.path, "--output", out.path, "--threads", "1"])
        XCTAssertTrue(run.contains("exit status 0\n"), run)
        let evaluate = try Self.bench(["evaluate", "--suite", suiteFile.path, "--episodes-file", file.path,
                                       "--output", out.path, "--threads", "1"])
        XCTAssertTrue(evaluate.contains("exit status 0\n"), evaluate)
        XCTAssertTrue(evaluate.contains("1 cells evaluated, 1 reused"), evaluate)
        XCTAssertTrue(evaluate.contains("the model trained for 5w1s is loaded from"), evaluate)
        let results = try JSONDecoder().decode(ResultSet.self, from: Data(contentsOf: out.appendingPathComponent("results.json")))
        XCTAssertEqual(results.cells.map { "\($0.key)" }, ["protonet 5w1s seed 0", "protonet exported seed 0"])
        let own = results.cells[0], exported = results.cells[1]
        XCTAssertEqual(exported.trainedWith, "5w1s")
        XCTAssertEqual(exported.episodeCorrect, own.episodeCorrect)
        XCTAssertEqual(exported.accuracy, own.accuracy)
        let report = try String(contentsOf: out.appendingPathComponent("REPORT.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("setting exported is the episode file \(file.path) (digest "), report)
        XCTAssertTrue(report.contains("3 episodes of 5w1s15q (5-way 1-shot, 15 queries per class), float32 1×28×28 images"), report)
    }

    /// The parity suite stays runnable: its keys, learners and hyperparameters parse, and its dataset loads
    /// with its options (bilinear resizing) and serves both settings.
    func testParitySuiteIsValid() throws {
        try check("validate-parity", ["validate", "--suite", "parity", "--dataset"])
    }

    func testEpisodesExportErrors() throws {
        try check("episodes-export-help", ["episodes", "export", "--help"])
        try check("episodes-unknown-setting", ["episodes", "export", "--suite", "omniglot-small", "--setting", "10w1s", "out.h5"])
        try check("episodes-bad-setting", ["episodes", "export", "--suite", "omniglot-small", "--setting", "5w1", "out.h5"])
        try check("episodes-zero-count", ["episodes", "export", "--suite", "omniglot-small", "--setting", "5w1s", "--count", "0", "out.h5"])
        try check("episodes-huge-count", ["episodes", "export", "--suite", "omniglot-small", "--setting", "5w1s", "--count", "100001", "out.h5"])
        try check("episodes-no-folder", ["episodes", "export", "--suite", "omniglot-small", "--setting", "5w1s", "no/such/folder/out.h5"])
        try check("episodes-output-folder", ["episodes", "export", "--suite", "omniglot-small", "--setting", "5w1s", "Tests"])

        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Two settings that differ only in queries: the short name is ambiguous, the queries resolve it.
        let suiteFile = try exportSuite(in: folder, settings: """
          - {ways: 5, shots: 1, queries: 15}
          - {ways: 5, shots: 1, queries: 5}
        """)
        let out = folder.appendingPathComponent("out.h5").path
        let ambiguous = try Self.bench(["episodes", "export", "--suite", suiteFile.path, "--setting", "5w1s", out])
        XCTAssertTrue(ambiguous.contains("exit status 1\n"), ambiguous)
        XCTAssertTrue(ambiguous.contains("Error: \(suiteFile.path): setting 5w1s of suite export-test is ambiguous"), ambiguous)
        XCTAssertTrue(ambiguous.contains("name one of 5w1s5q, 5w1s15q"), ambiguous)
        let unknown = try Self.bench(["episodes", "export", "--suite", suiteFile.path, "--setting", "5w1s10q", out])
        XCTAssertTrue(unknown.contains("its settings: 5w1s15q, 5w1s5q"), unknown)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))

        // More pixels than the export holds (20w5s5q at 28×28: 100000 episodes are 58 GiB): refused before
        // anything is sampled, on any machine.
        let huge = try Self.bench(["episodes", "export", "--suite", "omniglot-small", "--setting", "20w5s",
                                   "--count", "100000", out])
        XCTAssertTrue(huge.contains("exit status 1\n"), huge)
        XCTAssertTrue(huge.contains("Error: 100000 episodes of 20w5s with 5 queries per class and 1×28×28 images need 58.4 GiB"), huge)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
