import ArgumentParser

/// The `bench` command: runs suites of few-shot learners and reports how they compare.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark few-shot meta-learning algorithms on the same episodes.",
        subcommands: [RunSuite.self, Datasets.self, Episodes.self, List.self, Compare.self, Check.self, Validate.self, Plan.self, ReportCommand.self, Evaluate.self, Slurm.self, Kubernetes.self],
        defaultSubcommand: RunSuite.self)
}

/// A failure that is not a mistake in the command line (so no usage text follows it): exit status 1 and
/// the message.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
