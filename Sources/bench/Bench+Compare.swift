import ArgumentParser
import Foundation
import Runner

extension Bench {
    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "compare",
            abstract: "Compare two result sets cell by cell.",
            discussion: """
            Each argument is a results folder or a results.json file. For every cell in both: accuracy in A \
            and B, the difference B − A, and a verdict: same, within CI (|B − A| ≤ √(ciA² + ciB²)) or \
            outside CI. Cells found in only one set are listed.
            """)

        @Argument(help: "The first result set (a folder or a results.json file).")
        var a: String

        @Argument(help: "The second result set.")
        var b: String

        func run() throws {
            let comparison = Comparison(try ResultSet.load(a), try ResultSet.load(b))
            print(comparison.render(nameA: "A", nameB: "B"), terminator: "")
        }
    }
}
