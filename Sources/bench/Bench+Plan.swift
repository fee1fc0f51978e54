import ArgumentParser
import Foundation
import Runner

extension Bench {
    struct ReportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Build the reports of a results folder from the cells it holds (merges shards).",
            discussion: """
            Reads <folder>/plan.json (written by every `bench run`, sharded or not) and every stored cell of the \
            plan, then writes REPORT.md, results.json, results.csv and learning-curves.svg into the folder. \
            Cells not there yet (a shard that has not finished) are listed as missing; the reports say so. \
            Exits with status 1 when cells are missing and --complete is given.
            """)

        @Argument(help: "The results folder (the --output of the shards).")
        var folder: String

        @Flag(name: .long, help: "Exit with status 1 when any cell of the plan is missing.")
        var complete = false

        func run() throws {
            let store = CellStore(readingFolder: folder)
            let (results, missing) = try store.merge()
            // One writer at a time: a report never interleaves with a whole-suite run in the same folder.
            let lock = try OutputLock.acquire(folder: folder)
            defer { lock.release() }
            try Report.writeAll(results, to: folder)
            print(Report.table(results), terminator: "")
            print("\n\(results.cells.count) of \(results.cells.count + missing.count) cells; reports in \(folder)/ (REPORT.md, results.json, results.csv, learning-curves.svg)")
            if !missing.isEmpty {
                print("missing (\(missing.count)): " + missing.map(\.description).joined(separator: ", "))
                if complete { throw ExitCode(1) }
            }
        }
    }

    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan",
            abstract: "List a suite's cells with an estimated time each, and the wall time on n shards.",
            discussion: """
            Each learner × setting is timed on this machine for a few training steps and evaluation episodes \
            (seeds share the estimate); a cell already stored in the output folder counts its stored time and \
            is not rerun. Shards are the ones `bench run --shard i/n` runs.
            """)

        @OptionGroup var options: SuiteOptions

        @Option(name: .long, help: "Where stored cells are looked for (default: results/<suite name>).")
        var output: String?

        @Option(name: .long, help: "Show the wall time of this many shards and which cells each runs.")
        var shards: Int?

        func validate() throws {
            if let shards, !(1...Shard.maximumCount).contains(shards) {
                throw ValidationError("--shards must be in 1…\(Shard.maximumCount), got \(shards)")
            }
        }

        func run() throws {
            let suite = try options.loadSuite()
            let folder = output ?? RunOptions.defaultOutputDirectory(for: suite)
            let estimate = try whileHandlingInterruption("nothing was estimated") {
                try ClusterEstimate.estimate(suite: suite, output: folder, episodes: options.episodes,
                                             threads: options.threads ?? RunOptions.defaultThreads)
            }
            print(Self.render(estimate, shards: shards), terminator: "")
        }

        static func render(_ estimate: SuiteEstimate, shards: Int?) -> String {
            let assignment = shards.map { SuitePlan.partition(costs: estimate.plan.groupCosts, count: $0) }
            var shardOf: [Int: Int] = [:]
            for (shard, groups) in (assignment ?? []).enumerated() {
                for group in groups { for cell in estimate.plan.groups[group] { shardOf[cell] = shard } }
            }
            var headers = ["Cell", "Iterations", "Estimate", "From"]
            if shards != nil { headers.append("Shard") }
            var table = TextTable(headers: headers, alignments: [.left, .right, .right, .left, .right])
            for e in estimate.cells {
                var from = e.source == .stored ? "stored (reused)" : "measured"
                if let leader = e.sharesTrainingWith { from += ", trained with \(leader)" }
                var row = [e.cell.key.description, "\(e.cell.training.iterations)", duration(e.seconds), from]
                if shards != nil { row.append(shardOf[e.cell.index].map(String.init) ?? "–") }
                table.append(row)
            }
            var text = table.render()
            text += "\ntotal \(duration(estimate.totalSeconds)); still to run \(duration(estimate.remainingSeconds))\n"
            var counts = [1, 2, 4, 8, 16, 32].filter { $0 <= max(1, estimate.cells.count) }
            if let shards, !counts.contains(shards) { counts.append(shards); counts.sort() }
            text += "wall time: " + counts.map { "\($0) shard\($0 == 1 ? "" : "s") \(duration(estimate.wallSeconds(shards: $0)))" }
                .joined(separator: ", ") + "\n"
            let suggested = estimate.suggestedShards
            text += "suggested: --shards \(suggested) (\(duration(estimate.wallSeconds(shards: suggested))); more shards cannot beat the longest cell)\n"
            return text
        }

        /// "45s", "12m 05s", "3h 20m".
        static func duration(_ seconds: Double) -> String {
            let s = Int(seconds.rounded(.up))
            if s < 60 { return "\(s)s" }
            if s < 3600 { return "\(s / 60)m \(String(format: "%02d", s % 60))s" }
            return "\(s / 3600)h \(String(format: "%02d", (s % 3600) / 60))m"
        }
    }
}

extension Bench {
    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "evaluate",
            abstract: "Evaluate the models an earlier run trained, without training: new settings, more episodes.",
            discussion: """
            Every `bench run` keeps each trained model in <output>/models/. `bench evaluate` scores those models \
            on the suite's settings and evaluation episodes (for instance after adding a setting a learner's \
            training serves, or with --episodes), and on episode files (--episodes-file, or the suite's \
            evaluation.episodes_file), writing cells and reports like `bench run`; cells already stored are \
            reused. A cell whose model is not there is an error before anything runs.
            """)

        @OptionGroup var options: SuiteOptions

        @Option(name: .customLong("episodes-file"),
                help: "An episode file (metabench-episodes-v1) to evaluate every learner on, as the suite's evaluation.episodes_file does; repeat for several.")
        var episodesFiles: [String] = []

        @Option(name: .long, help: "The folder of the run that trained the models (default: results/<suite name>).")
        var output: String?

        func validate() throws {
            if let output, output.isEmpty { throw ValidationError("--output needs a folder") }
            if episodesFiles.contains(where: \.isEmpty) { throw ValidationError("--episodes-file needs a path") }
        }

        func run() throws {
            var suite = try options.loadSuite()
            for path in episodesFiles { suite = try suite.adding(episodesFile: path) }
            var runOptions = options.runOptions(output: output ?? RunOptions.defaultOutputDirectory(for: suite))
            runOptions.evaluateOnly = true
            let runner = SuiteRunner(suite: suite, options: runOptions, progress: .standardOutput())
            let summary = try whileHandlingInterruption("evaluated cells are kept in \(runOptions.outputDirectory)/cells") {
                try runner.run()
            }
            print("")
            print(Report.table(summary.results), terminator: "")
            print("\n\(summary.trainedCells) cells evaluated, \(summary.reusedCells) reused; "
                  + "reports in \(runOptions.outputDirectory)/ (REPORT.md, results.json, results.csv, learning-curves.svg)")
        }
    }
}
