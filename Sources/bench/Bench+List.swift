import ArgumentParser
import Foundation
import Learners
import Runner

extension Bench {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List the registered learners or the suites.")

        enum What: String, ExpressibleByArgument, CaseIterable {
            case learners, suites
        }

        @Argument(help: "What to list: learners or suites.")
        var what: What = .learners

        func run() throws {
            switch what {
            case .learners: print(LearnerListing.text(.builtIn), terminator: "")
            case .suites: print(try SuiteListing.text(), terminator: "")
            }
        }
    }
}
