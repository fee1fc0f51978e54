import ArgumentParser
import FewShotData
import Foundation
import Learners
import Runner

/// Flags shared by `run` and `check`.
struct SuiteOptions: ParsableArguments {
    @Option(name: .long, help: "A suite name (resolved to suites/<name>.yaml in the current directory) or a path to a suite file.")
    var suite: String

    @Option(name: .long, parsing: .singleValue,
            help: "Run only this learner (its label or registered name); repeat the flag or give a comma-separated list.")
    var only: [String] = []

    @Option(name: .long, help: "Compute threads (default: 2, or the machine's core count when it has fewer).")
    var threads: Int?

    @Option(name: .long, help: "Number of evaluation episodes, overriding the suite's.")
    var episodes: Int?

    func validate() throws {
        // Number flags have the bounds suite files have for the same quantities.
        func check(_ flag: String, _ value: Int?, _ range: ClosedRange<Int>) throws {
            guard let value else { return }
            if value < range.lowerBound { throw ValidationError("\(flag) must be at least \(range.lowerBound), got \(value)") }
            if value > range.upperBound { throw ValidationError("\(flag) must be at most \(range.upperBound), got \(value)") }
        }
        try check("--threads", threads, SuiteLimits.threads)
        try check("--episodes", episodes, SuiteLimits.episodes)
        if suite.isEmpty { throw ValidationError("--suite needs a suite name or a path") }
        for name in only where name.split(separator: ",").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--only needs a learner label or name, got '\(name)'")
        }
    }

    func loadSuite() throws -> Suite {
        try Suite.load(try Suite.locate(suite), registry: .builtIn)
    }

    func runOptions(output: String) -> RunOptions {
        RunOptions(only: only, threads: threads ?? RunOptions.defaultThreads, outputDirectory: output,
                   episodes: episodes)
    }
}

extension Bench {
    struct RunSuite: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run a suite: meta-train and evaluate every learner in every setting, then write the reports.",
            discussion: """
            Cells (learner × setting × seed) are written to <output>/cells/ as they finish; rerunning an \
            interrupted suite reuses every cell whose configuration is unchanged. Reports: REPORT.md, \
            results.json, results.csv and learning-curves.svg in the output folder.
            """)

        @OptionGroup var options: SuiteOptions

        @Option(name: .long, help: "Output folder (default: results/<suite name>).")
        var output: String?

        @Flag(name: .long, help: "Retrain every cell, ignoring stored cells and checkpoints.")
        var fresh = false

        @Option(name: .long, help: ArgumentHelp("Run only shard INDEX/COUNT of the suite's cells (0-based; balanced by a static cost estimate, the same on every node). Shards write cells only; `bench report <output>` merges them.", valueName: "INDEX/COUNT"))
        var shard: String?

        @Option(name: .long, help: "The number of shards, when the index comes from the environment (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX); a Slurm array task needs neither flag.")
        var shards: Int?

        @Option(name: .long, help: ArgumentHelp("Seconds between checkpoints of a cell in training (0: after every iteration); a SIGTERM or Ctrl-C saves one too, and a rerun resumes from it.", valueName: "seconds"))
        var checkpointInterval: Double = RunOptions.defaultCheckpointInterval

        func validate() throws {
            if let output, output.isEmpty { throw ValidationError("--output needs a folder") }
            if let shards, !(1...Shard.maximumCount).contains(shards) {
                throw ValidationError("--shards must be in 1…\(Shard.maximumCount), got \(shards)")
            }
            guard checkpointInterval.isFinite, RunOptions.checkpointIntervalRange.contains(checkpointInterval) else {
                throw ValidationError("--checkpoint-interval must be in 0…\(Int(RunOptions.checkpointIntervalRange.upperBound)) seconds, got \(checkpointInterval)")
            }
        }

        func run() throws {
            let suite = try options.loadSuite()
            var runOptions = options.runOptions(output: output ?? RunOptions.defaultOutputDirectory(for: suite))
            runOptions.resume = !fresh
            runOptions.checkpointInterval = checkpointInterval
            let selection: Shard.Selection?
            do {
                selection = try Shard.select(explicit: shard, count: shards, environment: ProcessInfo.processInfo.environment)
            } catch {
                throw BenchError("\(error)")
            }
            if let selection {
                runOptions.shard = selection.shard
                print("shard \(selection.shard) (from \(selection.source))")
            }
            let runner = SuiteRunner(suite: suite, options: runOptions, progress: .standardOutput())
            let summary = try whileHandlingInterruption(
                "finished cells are kept in \(runOptions.outputDirectory)/cells and the cell in training in a checkpoint; rerun the same command to resume") {
                try runner.run()
            }
            if let selection {
                print("\nshard \(selection.shard): \(summary.trainedCells) cells trained, \(summary.reusedCells) reused; "
                      + "\(summary.missingCells.count) cells of the suite are not in \(runOptions.outputDirectory) yet; "
                      + "merge with: bench report \(runOptions.outputDirectory)")
                return
            }
            print("")
            print(Report.table(summary.results), terminator: "")
            print("\n\(summary.trainedCells) cells trained, \(summary.reusedCells) reused; "
                  + "reports in \(runOptions.outputDirectory)/ (REPORT.md, results.json, results.csv, learning-curves.svg)")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Rerun a suite and compare with its stored results (a regression check).",
            discussion: """
            With the suite marked `exact: true`, a cell stored with the same numerics (OpenBLAS version and \
            kernels, convolution backend) in the stored results or in a baseline beside them \
            (<stored folder>/baselines/<name>/results.json) must be \
            reproduced exactly: accuracy and every episode; a cell with no such stored counterpart fails only \
            when its accuracy moves outside the combined 95% interval, and the output says which cells were \
            compared that way. Exits with status 1 on any failure.
            """)

        @OptionGroup var options: SuiteOptions

        @Option(name: .long, help: "Stored results to compare with (default: results/<suite name>/results.json).")
        var stored: String?

        func run() throws {
            let suite = try options.loadSuite()
            let storedPath = stored ?? RunOptions.defaultOutputDirectory(for: suite) + "/results.json"
            let storedResults: [ResultSet]
            do {
                storedResults = try RegressionCheck.storedSets(storedPath)
            } catch {
                throw BenchError("\(error)\n(record results first: bench run --suite \(options.suite) --output \((storedPath as NSString).deletingLastPathComponent))")
            }
            Self.removeStaleCheckFolders()
            let folder = FileManager.default.temporaryDirectory
                .appendingPathComponent("\(Self.folderPrefix)\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            var runOptions = options.runOptions(output: folder)
            runOptions.resume = false
            let runner = SuiteRunner(suite: suite, options: runOptions, progress: .standardOutput())
            let fresh = try whileHandlingInterruption("nothing was compared") { try runner.run().results }
            let outcome = RegressionCheck.check(fresh: fresh, stored: storedResults)
            for (cell, reason) in outcome.approximate where suite.exact {
                print("note: \(cell) compared within confidence intervals, not exactly: \(reason)")
            }
            for failure in outcome.failures { print("FAIL \(failure)") }
            print(outcome.summary)
            if !outcome.passed { throw ExitCode(1) }
        }

        static let folderPrefix = "metabench-check-"

        /// Removes the temporary folders of earlier checks whose process has ended (killed with SIGKILL,
        /// say: an interrupted check removes its own).
        static func removeStaleCheckFolders() {
            let temporary = FileManager.default.temporaryDirectory
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: temporary.path) else { return }
            for name in names where name.hasPrefix(folderPrefix) {
                guard let pid = pid_t(name.dropFirst(folderPrefix.count).prefix { $0 != "-" }), pid > 0,
                      !AtomicWrite.processIsAlive(pid) else { continue }
                try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
            }
        }
    }
}

/// Runs `body` with SIGINT and SIGTERM turned into a stop at the runner's next check: the write in
/// progress finishes, temporary files and folders are removed, and the command prints one line and exits
/// with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
func whileHandlingInterruption<T>(_ whatRemains: String, _ body: () throws -> T) throws -> T {
    Interruption.install()
    do {
        return try body()
    } catch RunnerError.interrupted(let signal) {
        print("")
        FileHandle.standardError.write(Data("interrupted by \(Interruption.name(of: signal)): \(whatRemains)\n".utf8))
        throw ExitCode(Interruption.exitStatus(for: signal))
    }
}
