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
            and B, the difference B − A with its 95% interval, the rule used, and a verdict: same (identical \
            episodes), within CI or outside CI. When the two cells were evaluated on the same episodes (same \
            evaluation seed, setting and episode count) the rule is paired: the mean per-episode difference \
            ± t(0.975, n − 1)·s/√n, outside CI when that interval leaves out 0. Otherwise it is unpaired: \
            outside CI when |B − A| > √(ciA² + ciB²). Cells found in only one set are listed.
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
