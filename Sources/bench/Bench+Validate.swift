import ArgumentParser
import Foundation
import Learners
import Runner

extension Bench {
    /// `bench validate --suite S`: the checks `run` makes before it trains, without training.
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Check a suite (every value and bound) without training.",
            discussion: """
            Reads the suite as `bench run` does and checks every value against its type and bounds (see \
            `bench list learners` for the hyperparameters' allowed values). With --dataset it also loads the \
            dataset, checks the splits and that every setting can be sampled, and checks each learner's sizes \
            (weights, activations, batches) against the memory budget, half of this machine's memory. Exits \
            with status 1 and the first problem found, naming the file and line.
            """)

        @Option(name: .long, help: "A suite name (resolved to suites/<name>.yaml in the current directory) or a path to a suite file.")
        var suite: String

        @Flag(name: .long, help: "Also load the dataset and check the settings and memory sizes against it.")
        var dataset = false

        func validate() throws {
            if suite.isEmpty { throw ValidationError("--suite needs a suite name or a path") }
        }

        func run() throws {
            let path = try Suite.locate(suite)
            let loaded = try Suite.load(path, registry: .builtIn)
            // The plan's cells: a learner's `settings:` may leave some settings out; episode files add theirs.
            let cells = SuitePlan(suite: loaded).cells.count
            let files = loaded.evaluation.episodeFiles
            func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
            print("\(path): suite \(loaded.name) is valid: \(plural(loaded.learners.count, "learner")) × "
                  + "\(plural(loaded.settings.count + files.count, "setting")) × \(plural(loaded.seeds.count, "seed")) → \(plural(cells, "cell"))")
            for file in files { print("episode file \(file.path) (setting \(file.name)): \(file.summary)") }
            guard dataset else {
                print("dataset \(loaded.dataset.path) not loaded (--dataset checks it and the memory sizes)")
                return
            }
            let runner = SuiteRunner(suite: loaded, options: RunOptions(outputDirectory: ""))
            let data = try runner.checkBeforeTraining()
            print("dataset \(data.name): \(data.imageShape) images, "
                  + data.splits.map { "\($0.name) \($0.classes.count) classes" }.joined(separator: ", ")
                  + "; every setting can be sampled and fits the memory budget")
        }
    }
}
