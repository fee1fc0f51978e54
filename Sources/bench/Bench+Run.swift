// STUB — to be replaced by the runner work.
import ArgumentParser
extension Bench {
    struct RunSuite: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a suite.")
        @Option var suite: String
        func run() throws {}
    }
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List learners.")
    }
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "compare", abstract: "Compare result sets.")
    }
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check", abstract: "Regression check.")
    }
}
