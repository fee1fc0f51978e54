import Foundation
import Runner
import XCTest

/// Golden outputs of `bench compare` (see `BenchOutputTests`; `METABENCH_RECORD=1` rewrites them): the paired
/// interval where two cells share episodes, the combined one where they do not, and which rule each row used.
final class CompareCommandTests: XCTestCase {
    private func check(_ name: String, _ arguments: [String], folder: URL,
                       file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: BenchOutputTests.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests", file: file, line: line)
            return ""
        }
        let actual = try BenchOutputTests.bench(arguments).replacingOccurrences(of: folder.path, with: "<folder>")
        let path = BenchOutputTests.expected.appendingPathComponent(name + ".txt")
        if BenchOutputTests.recording {
            try actual.write(to: path, atomically: true, encoding: .utf8)
            return actual
        }
        let stored = try? String(contentsOf: path, encoding: .utf8)
        XCTAssertEqual(actual, stored, "bench \(arguments.joined(separator: " ")) differs from \(name).txt (METABENCH_RECORD=1 rewrites it)",
                       file: file, line: line)
        return actual
    }

    /// B is the stored smoke set with the first ten imperfect episodes of MAML and of fomaml one query better
    /// (+0.13 points, far inside the combined interval), and fomaml evaluated on other episodes (another
    /// evaluation seed): MAML's change is outside the paired interval, fomaml's within the combined one.
    func testPairedWhereEpisodesAreShared() throws {
        let folder = try scratchFolder("compare")
        let a = try ResultSet.load(BenchOutputTests.packageRoot.appendingPathComponent("results/smoke").path)
        var b = a
        func raiseTenEpisodes(_ label: String) throws -> Int {
            let index = try XCTUnwrap(b.cells.firstIndex { $0.config.label == label })
            var cell = b.cells[index]
            var raised = 0
            for i in cell.episodeCorrect.indices where raised < 10 && cell.episodeCorrect[i] < cell.queriesPerEpisode {
                cell.episodeCorrect[i] += 1
                raised += 1
            }
            XCTAssertEqual(raised, 10)
            cell.episodeAccuracies = cell.episodeCorrect.map { Double($0) / Double(cell.queriesPerEpisode) }
            cell.accuracy = Statistics.mean(cell.episodeAccuracies) * 100
            cell.ci95 = Statistics.ci95(cell.episodeAccuracies) * 100
            b.cells[index] = cell
            return index
        }
        let maml = try raiseTenEpisodes("maml")
        let fomaml = try raiseTenEpisodes("fomaml")
        b.cells[fomaml].config.evaluation.seed += 1
        let bFile = folder.appendingPathComponent("b/results.json")
        try FileManager.default.createDirectory(at: bFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try StoredJSON.data(b, for: bFile.path).write(to: bFile)

        let output = try check("compare-paired", ["compare", "results/smoke", bFile.path], folder: folder)
        let mamlLine = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("maml 5w1s seed 0") })
        XCTAssertTrue(mamlLine.contains("paired") && mamlLine.hasSuffix("outside CI"), String(mamlLine))
        let fomamlLine = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("fomaml 5w1s seed 0") })
        XCTAssertTrue(fomamlLine.contains("unpaired") && fomamlLine.hasSuffix("within CI"), String(fomamlLine))
        XCTAssertTrue(output.contains("5 same, 1 within CI, 1 outside CI"), output)

        // The combined interval would have called MAML's change within CI too.
        let combined = (pow(a.cells[maml].ci95 ?? 0, 2) + pow(b.cells[maml].ci95 ?? 0, 2)).squareRoot()
        XCTAssertLessThan(abs((b.cells[maml].accuracy ?? 0) - (a.cells[maml].accuracy ?? 0)), combined)
    }
}
