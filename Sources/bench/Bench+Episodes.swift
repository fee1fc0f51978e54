import ArgumentParser
import FewShotData
import Foundation
import Learners
import Runner

extension Bench {
    /// `bench episodes`: fixed-episode files (metabench-episodes-v1).
    struct Episodes: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "episodes",
            abstract: "Write a suite's test episodes to a file (metabench-episodes-v1).",
            subcommands: [Export.self])

        /// `bench episodes export --suite S --setting 5w1s [--count N] OUT.h5`: the test episodes the runner
        /// evaluates every learner on, so that another implementation can be scored on exactly the same ones.
        struct Export: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write the test episodes a suite evaluates every learner on, in one setting.",
                discussion: """
                Writes test episodes 0..<N of the setting that `bench run` evaluates: the suite's dataset with its \
                options (image_size), its test split and evaluation seed. The file holds, per episode, float32 \
                support and query images (n, C, H, W) in [0, 1], before the suite's normalisation (a suite that \
                evaluates the file applies its own), their labels and the split's class indices (the layout is \
                described in the README under "Fixed-episode files").
                """)

            @Option(name: .long, help: "A suite name (resolved to suites/<name>.yaml in the current directory) or a path to a suite file.")
            var suite: String

            @Option(name: .long, help: "The setting, as <ways>w<shots>s (5w1s); add <queries>q (5w1s15q) when two settings of the suite differ only in queries.")
            var setting: String

            @Option(name: .long, help: "Number of episodes, 0..<N (default: the suite's evaluation episodes; at most \(EvaluationEpisodes.maxCount)).")
            var count: Int?

            @Argument(help: "The .h5 file to write (replaced if it exists).")
            var output: String

            func validate() throws {
                if suite.isEmpty { throw ValidationError("--suite needs a suite name or a path") }
                if setting.isEmpty { throw ValidationError("--setting needs a setting, such as 5w1s") }
                if let count {
                    if count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
                    if count > EvaluationEpisodes.maxCount {
                        throw ValidationError("--count must be at most \(EvaluationEpisodes.maxCount), got \(count)")
                    }
                }
                if output.isEmpty { throw ValidationError("the output file needs a path") }
            }

            func run() throws {
                // Checked before the dataset is loaded, which takes a while: the output names a file in a folder.
                var isFolder: ObjCBool = false
                if output.hasSuffix("/") || FileManager.default.fileExists(atPath: output, isDirectory: &isFolder) && isFolder.boolValue {
                    throw BenchError("cannot write \(output): it is a folder; name the .h5 file to write")
                }
                let folder = (output as NSString).deletingLastPathComponent
                if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
                    throw BenchError("cannot write \(output): \(folder) is not a folder")
                }
                let loaded = try Suite.load(try Suite.locate(suite), registry: .builtIn)
                let spec = try loaded.evaluationSetting(named: setting)
                if count == nil, loaded.evaluation.episodes > EvaluationEpisodes.maxCount {
                    throw BenchError("\(loaded.file): evaluation.episodes is \(loaded.evaluation.episodes), more than an export holds (\(EvaluationEpisodes.maxCount)); give --count")
                }
                let count = self.count ?? loaded.evaluation.episodes
                let dataset = try SuiteRunner.loadDataset(loaded.dataset, suiteFile: loaded.file)
                let episodes = try EvaluationEpisodes.episodes(suite: loaded, dataset: dataset, setting: spec, count: count,
                                                               normalized: false)
                try EpisodeFile.write(episodes, to: output)
                print("wrote \(output): \(count) test episode\(count == 1 ? "" : "s") of suite \(loaded.name), "
                      + "\(spec.shortName) with \(spec.queries) queries per class, \(dataset.imageShape) images, "
                      + "evaluation seed \(loaded.evaluation.seed), pixels in [0, 1] before normalisation")
            }
        }
    }
}
