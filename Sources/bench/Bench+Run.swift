import ArgumentParser
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
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let episodes, episodes < 1 { throw ValidationError("--episodes must be at least 1, got \(episodes)") }
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

        @Flag(name: .long, help: "Retrain every cell, ignoring stored cells.")
        var fresh = false

        func validate() throws {
            if let output, output.isEmpty { throw ValidationError("--output needs a folder") }
        }

        func run() throws {
            let suite = try options.loadSuite()
            var runOptions = options.runOptions(output: output ?? RunOptions.defaultOutputDirectory(for: suite))
            runOptions.resume = !fresh
            let runner = SuiteRunner(suite: suite, options: runOptions, progress: .standardOutput())
            let summary = try runner.run()
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
            With the suite marked `exact: true` and the same seeds and OpenBLAS kernels as the stored results, \
            every cell must reproduce its accuracy and per-episode results exactly; otherwise a cell fails \
            when its accuracy moves outside the combined 95% interval. Exits with status 1 on any failure.
            """)

        @OptionGroup var options: SuiteOptions

        @Option(name: .long, help: "Stored results to compare with (default: results/<suite name>/results.json).")
        var stored: String?

        func run() throws {
            let suite = try options.loadSuite()
            let storedPath = stored ?? RunOptions.defaultOutputDirectory(for: suite) + "/results.json"
            let storedResults: ResultSet
            do {
                storedResults = try ResultSet.load(storedPath)
            } catch {
                throw BenchError("\(error)\n(record results first: bench run --suite \(options.suite) --output \((storedPath as NSString).deletingLastPathComponent))")
            }
            let folder = FileManager.default.temporaryDirectory
                .appendingPathComponent("metabench-check-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            var runOptions = options.runOptions(output: folder)
            runOptions.resume = false
            let runner = SuiteRunner(suite: suite, options: runOptions, progress: .standardOutput())
            let fresh = try runner.run().results
            let outcome = RegressionCheck.check(fresh: fresh, stored: storedResults)
            if !outcome.exact, suite.exact {
                print("note: comparing within confidence intervals, not exactly: the stored results used seeds "
                      + "\(storedResults.seeds) and OpenBLAS kernels \(storedResults.versions.openblasCoretype), "
                      + "this run \(fresh.seeds) and \(fresh.versions.openblasCoretype)")
            }
            for failure in outcome.failures { print("FAIL \(failure)") }
            print(outcome.summary)
            if !outcome.passed { throw ExitCode(1) }
        }
    }
}
