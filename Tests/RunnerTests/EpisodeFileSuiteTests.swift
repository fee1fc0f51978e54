import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// `evaluation: {episodes_file: path}`: every learner evaluated on exactly a file's episodes, as a setting
/// named after the file, with the model of its first setting (issue 11, point 4).
final class EpisodeFileSuiteTests: XCTestCase {
    /// `nearest` serves any episode shape; `fixed` is the same learner declared shape-bound (as MAML is).
    func makeRegistry(log: LearnerLog) -> LearnerRegistry {
        func descriptor(_ name: String, anyShape: Bool) -> LearnerDescriptor {
            LearnerDescriptor(name: name, summary: "", paper: "", hyperparameters: [], evaluatesAnyEpisodeShape: anyShape,
                              make: { _, _ in
                                  log.made += 1
                                  return NearestMeanLearner(scale: 1, log: log)
                              })
        }
        return LearnerRegistry([descriptor("nearest", anyShape: true), descriptor("fixed", anyShape: false)])
    }

    var folder = ""

    override func setUp() {
        folder = Fixtures.temporaryFolder()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    static let settings = """
    settings:
      - {ways: 3, shots: 1, queries: 2}
      - {ways: 2, shots: 2, queries: 4}
    """

    func suite(learners: String = "  - name: nearest\n  - name: fixed", evaluation: String,
               registry: LearnerRegistry, extra: String = "") throws -> Suite {
        try Suite.parse(yaml: """
        name: files
        normalization: {mean: [0.4], std: [0.2]}
        \(Self.settings)
        learners:
        \(learners)
        training: {iterations: 3, meta_batch: 1, validate_every: 0}
        evaluation: \(evaluation)
        seeds: [0, 1]
        \(extra)
        """, file: "files.yaml", registry: registry)
    }

    /// Test episodes `0..<count` of the suite's setting `index`, before normalisation, as an export writes them.
    func export(setting index: Int, count: Int, registry: LearnerRegistry) throws -> [Episode] {
        let plain = try suite(evaluation: "{episodes: 5, seed: 4}", registry: registry)
        return try EvaluationEpisodes.episodes(suite: plain, dataset: Fixtures.dataset(), setting: plain.settings[index],
                                               count: count, normalized: false)
    }

    func run(_ suite: Suite, registry: LearnerRegistry, episodes: Int? = nil) throws -> RunSummary {
        try SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                        options: RunOptions(threads: 1, outputDirectory: folder + "/out", episodes: episodes)).run()
    }

    func testAFileOfTheSuitesOwnEpisodesScoresAsTheSuite() throws {
        let log = LearnerLog()
        let registry = makeRegistry(log: log)
        let path = folder + "/published.h5"
        try EpisodeFile.write(try export(setting: 0, count: 5, registry: registry), to: path, pixelType: .uint8)
        let suite = try suite(evaluation: "{episodes: 5, seed: 4, episodes_file: \(path)}", registry: registry,
                              extra: "published:\n  nearest: {published: 61.5}")
        XCTAssertEqual(suite.evaluation.episodeFiles.map(\.name), ["published"])
        XCTAssertEqual(suite.publishedAccuracy(label: "nearest", setting: SettingSpec(ways: 3, shots: 1, episodesFile: "published")), 61.5)

        // The file's cells join the training group of each learner's first setting: no training of their own.
        let plan = SuitePlan(suite: suite, registry: registry)
        XCTAssertEqual(plan.cells.map { "\($0.key)" }, [
            "nearest 3w1s2q seed 0", "nearest 3w1s2q seed 1", "fixed 3w1s2q seed 0", "fixed 3w1s2q seed 1",
            "nearest 2w2s4q seed 0", "nearest 2w2s4q seed 1", "fixed 2w2s4q seed 0", "fixed 2w2s4q seed 1",
            "nearest published seed 0", "nearest published seed 1", "fixed published seed 0", "fixed published seed 1",
        ])
        // (nearest serves any shape, but trains on each setting's own training episodes.)
        XCTAssertEqual(plan.groups, [[0, 8], [1, 9], [2, 10], [3, 11], [4], [5], [6], [7]])
        XCTAssertTrue(plan.cells[8...].allSatisfy { $0.evaluation.episodes == 5 && $0.setting.episodesFile == "published" })

        let summary = try run(suite, registry: registry)
        XCTAssertEqual(log.steps, 8 * 3, "eight trainings (per learner, setting and seed), as without the file")
        let cells = summary.results.cells
        XCTAssertEqual(cells.count, 12)
        for (fileCell, own) in zip(cells[8...], cells[0..<4]) {
            XCTAssertEqual(fileCell.status, .completed)
            XCTAssertEqual(fileCell.trainedWith, "3w1s2q", "\(fileCell.key)")
            XCTAssertEqual(fileCell.episodeCorrect, own.episodeCorrect, "\(fileCell.key): the same episodes, the same scores")
            XCTAssertEqual(fileCell.accuracy, own.accuracy)
            XCTAssertEqual(fileCell.queriesPerEpisode, 6)
            XCTAssertNil(fileCell.episodeQueries)
            XCTAssertEqual(fileCell.config.episodesFile?.summary.pixelType, .uint8)
            XCTAssertEqual(fileCell.config.episodesFile?.path, path)
        }
        // What the learners saw: the suite's normalised test episodes, bit for bit.
        let runner = SuiteRunner(suite: suite, registry: registry, dataset: Fixtures.dataset(),
                                 options: RunOptions(threads: 1, outputDirectory: folder + "/other"))
        let data = try DataPlan(suite: suite, dataset: Fixtures.dataset())
        let sampler = try EvaluationEpisodes.sampler(suite: suite, dataset: Fixtures.dataset(), setting: suite.settings[0])
        XCTAssertEqual(try runner.episodes(ofFile: "published", data: data).map(\.query),
                       (0..<5).map { sampler.episode($0).query })

        // The report says what the file holds; the CSV gives its shape; the pair compares the two labels.
        let digest = try XCTUnwrap(cells[8].config.episodesFile?.digest)
        XCTAssertTrue(summary.results.notes.contains(
            "setting published is the episode file \(path) (digest \(digest)): 5 episodes of 3w1s2q (3-way 1-shot, 2 queries per class), uint8 1×4×4 images; each learner is evaluated on it with the model trained for its first setting"),
            "\(summary.results.notes)")
        let csv = try String(contentsOfFile: folder + "/out/results.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains("\nnearest,nearest,published,3,1,2,3,1,2,0,completed,"), csv)
        let pair = try XCTUnwrap(PairedComparison.all(cells).first { $0.setting == "published" })
        XCTAssertEqual([pair.labelA, pair.labelB, "\(pair.interval.difference)"], ["nearest", "fixed", "0.0"])
        XCTAssertEqual(pair.seeds, [0, 1])

        // A rerun reuses every cell; a changed file is evaluated again, with the kept models (no training).
        let again = try run(suite, registry: registry)
        XCTAssertEqual([again.trainedCells, again.reusedCells], [0, 12])
        try EpisodeFile.write(Array(try export(setting: 0, count: 6, registry: registry).suffix(5)), to: path, pixelType: .uint8)
        let changed = try run(try self.suite(evaluation: "{episodes: 5, seed: 4, episodes_file: \(path)}", registry: registry),
                              registry: registry)
        XCTAssertEqual([changed.trainedCells, changed.reusedCells], [4, 8])
        XCTAssertEqual(log.steps, 8 * 3, "no training step: the stored models evaluate the new file")
        XCTAssertEqual(changed.results.cells[8].episodeCorrect.prefix(4), cells[0].episodeCorrect.suffix(4))
        XCTAssertNotEqual(changed.results.cells[8].config.episodesFile?.digest, digest)

        // --episodes takes the file's first episodes.
        let short = try run(suite, registry: registry, episodes: 2)
        XCTAssertEqual(short.results.cells[8].episodeCorrect.count, 2)
    }

    /// A file of two episode shapes: scores per episode, queries recorded per episode, reused on a rerun.
    func testAFileOfSeveralShapes() throws {
        let log = LearnerLog()
        let registry = makeRegistry(log: log)
        let three = try export(setting: 0, count: 3, registry: registry), two = try export(setting: 1, count: 3, registry: registry)
        let path = folder + "/mixed.h5"
        try EpisodeFile.write([three[0], two[0], three[1], two[1], three[2], two[2]], to: path)
        let learners = "  - name: nearest\n  - name: nearest\n    label: nearest-b"
        let suite = try suite(learners: learners, evaluation: "{episodes: 3, seed: 4, episodes_file: [\(path)]}", registry: registry)
        let summary = try run(suite, registry: registry)
        let cells = summary.results.cells
        XCTAssertEqual(cells.map { "\($0.key)" }.suffix(4),
                       ["nearest mixed seed 0", "nearest mixed seed 1", "nearest-b mixed seed 0", "nearest-b mixed seed 1"])
        let file = cells[8], threeWay = cells[0], twoWay = cells[4]
        XCTAssertEqual(file.queriesPerEpisode, 0)
        XCTAssertEqual(file.episodeQueries, [6, 8, 6, 8, 6, 8])
        XCTAssertEqual(file.episodeCorrect, zip(threeWay.episodeCorrect, twoWay.episodeCorrect).flatMap { [$0, $1] })
        XCTAssertEqual(try XCTUnwrap(file.accuracy), (try XCTUnwrap(threeWay.accuracy) + (try XCTUnwrap(twoWay.accuracy))) / 2,
                       accuracy: 1e-9)
        XCTAssertEqual(file.config.episodesFile?.summary.description, "6 episodes: 3 of 3w1s2q, 3 of 2w2s4q; float32 1×4×4 images")
        let pair = try XCTUnwrap(PairedComparison.all(cells).first { $0.setting == "mixed" })
        XCTAssertEqual(pair.interval.difference, 0)
        let csv = try String(contentsOfFile: folder + "/out/results.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains("\nnearest,nearest,mixed,,,,3,1,2,0,completed,"), csv)

        let again = try run(suite, registry: registry)
        XCTAssertEqual([again.trainedCells, again.reusedCells], [0, 12], "stored cells with per-episode queries are reused")
    }

    func testMistakesAreErrorsNamingTheLine() throws {
        let registry = makeRegistry(log: LearnerLog())
        let three = try export(setting: 0, count: 2, registry: registry), two = try export(setting: 1, count: 1, registry: registry)
        let mixed = folder + "/mixed.h5"
        try EpisodeFile.write([three[0], two[0]], to: mixed)
        func error(_ evaluation: String, learners: String = "  - name: nearest\n  - name: fixed", extra: String = "") -> String {
            do {
                _ = try suite(learners: learners, evaluation: evaluation, registry: registry, extra: extra)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(error("{episodes_file: \(mixed)}"),
                       "files.yaml:8: learner fixed is evaluated on the episode file mixed with its model for setting 3w1s2q, whose output has 3 ways, but the file holds 2-way episodes (2 episodes: 1 of 3w1s2q, 1 of 2w2s4q; float32 1×4×4 images); list its settings: without mixed, or put a 2-way setting first")
        XCTAssertEqual(error("{episodes_file: \(mixed)}", learners: "  - name: nearest\n  - name: fixed\n    settings: [3w1s]"), "no error",
                       "a learner may leave the file out")
        XCTAssertEqual(error("{episodes_file: \(mixed)}", learners: "  - name: nearest\n    settings: [mixed]"),
                       "files.yaml:7: learner nearest runs in no setting of the suite, so no trained model serves the episode file mixed; add a setting to its settings:")
        XCTAssertEqual(error("{episodes_file: \(folder)/none.h5}"),
                       "files.yaml:10: evaluation.episodes_file: no such file: \(folder)/none.h5 (relative paths are resolved against the current directory, \(FileManager.default.currentDirectoryPath))")
        try FileManager.default.createDirectory(atPath: folder + "/dir.h5", withIntermediateDirectories: true)
        XCTAssertEqual(error("{episodes_file: \(folder)/dir.h5}"),
                       "files.yaml:10: evaluation.episodes_file: \(folder)/dir.h5 is a folder; name a metabench-episodes-v1 .h5 file")
        let clash = folder + "/3w1s.h5"
        try EpisodeFile.write([three[0]], to: clash)
        XCTAssertEqual(error("{episodes_file: \(clash)}"),
                       "files.yaml:10: evaluation.episodes_file: \(clash) would be a setting named '3w1s', which is already setting 3w1s2q of the suite; rename the file")
        try FileManager.default.createDirectory(atPath: folder + "/b", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: mixed, toPath: folder + "/b/mixed.h5")
        XCTAssertEqual(error("{episodes_file: [\(mixed), \(folder)/b/mixed.h5]}", learners: "  - name: nearest"),
                       "files.yaml:9: evaluation.episodes_file: two files are named 'mixed'; each file is a setting named after the file, so rename one")
        XCTAssertEqual(error("{episodes_file: \(mixed)}", learners: "  - name: nearest", extra: "published:\n  nearest: {mixd: 50}"),
                       "files.yaml:12: published.nearest: expected a setting name like 5w1s (ways, 'w', shots, 's') or an episode file's name, got 'mixd'")
        // Not an episode file: the dataset loader's message, on the suite's line.
        let notEpisodes = folder + "/notes.h5"
        try "not hdf5".write(toFile: notEpisodes, atomically: true, encoding: .utf8)
        XCTAssertTrue(error("{episodes_file: \(notEpisodes)}").hasPrefix("files.yaml:10: evaluation.episodes_file: "),
                      error("{episodes_file: \(notEpisodes)}"))
        var empty = three[0]
        empty.queriesPerClass = 0
        empty.query = LabelledImages(shape: empty.query.shape, pixels: [], labels: [])
        let noQueries = folder + "/empty-queries.h5"
        try EpisodeFile.write([empty], to: noQueries)
        XCTAssertEqual(error("{episodes_file: \(noQueries)}"),
                       "files.yaml:10: evaluation.episodes_file: \(noQueries) holds 1 episode with no queries (3w1s0q), which cannot be scored")
    }

    /// The memory check before training covers the shapes of the file's episodes too.
    func testTheMemoryCheckCoversTheFilesEpisodes() throws {
        let registry = makeRegistry(log: LearnerLog())
        let path = folder + "/big.h5"
        try EpisodeFile.write(try export(setting: 1, count: 1, registry: registry), to: path)
        let suite = try suite(learners: "  - name: nearest\n    settings: [3w1s2q, big]", evaluation: "{episodes_file: \(path)}",
                              registry: registry)
        let shape = ImageShape(channels: 1, height: 4, width: 4)
        // 3w1s2q: 9 images of 16 floats, 576 bytes; the file's 2w2s4q: 12 images, 768 bytes.
        XCTAssertNoThrow(try suite.validate(imageShape: shape, trainClassCount: 8, registry: registry, memoryBudget: 768))
        XCTAssertThrowsError(try suite.validate(imageShape: shape, trainClassCount: 8, registry: registry, memoryBudget: 700)) { error in
            XCTAssertTrue("\(error)".hasPrefix("files.yaml:7: learner nearest, setting big (2w2s4q episodes) with 1×4×4 images: the images of an evaluation episode needs"),
                          "\(error)")
        }
    }

    /// Images of another shape than the dataset's are refused before anything trains.
    func testAFileOfAnotherImageShapeFailsBeforeTraining() throws {
        let log = LearnerLog()
        let registry = makeRegistry(log: log)
        var episode = try export(setting: 0, count: 1, registry: registry)[0]
        let big = ImageShape(channels: 1, height: 8, width: 8)
        episode.support = LabelledImages(shape: big, pixels: [Float](repeating: 0.5, count: 3 * 64), labels: episode.support.labels)
        episode.query = LabelledImages(shape: big, pixels: [Float](repeating: 0.5, count: 6 * 64), labels: episode.query.labels)
        let path = folder + "/big.h5"
        try EpisodeFile.write([episode], to: path)
        let suite = try suite(evaluation: "{episodes_file: \(path)}", registry: registry)
        XCTAssertThrowsError(try run(suite, registry: registry)) { error in
            XCTAssertEqual("\(error)", "files.yaml:10: evaluation.episodes_file: \(path): dataset 'episodes': its images are 1×8×8 (float32), but the suite's are 1×4×4: the suite has no image_size to resize them to")
        }
        XCTAssertEqual(log.steps, 0)

        // Normalised values are not pixels: read (and refused) before any training too.
        var normalised = try export(setting: 0, count: 1, registry: registry)[0]
        normalised.query.pixels = normalised.query.pixels.map { ($0 - 0.4) / 0.2 }
        let twice = folder + "/normalised.h5"
        try EpisodeFile.write([normalised], to: twice)
        XCTAssertThrowsError(try run(try self.suite(evaluation: "{episodes_file: \(twice)}", registry: registry), registry: registry)) { error in
            XCTAssertTrue("\(error)".hasPrefix("files.yaml:10: evaluation.episodes_file: \(twice): dataset 'episodes/000000/query_images': holds the value "), "\(error)")
        }
        XCTAssertEqual(log.steps, 0)
    }
}
