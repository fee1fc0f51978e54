import Foundation
@testable import Runner
import XCTest

final class CompareTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func results() throws -> ResultSet {
        let registry = Fixtures.registry()
        return try Fixtures.run(try Fixtures.suite(registry: registry), registry: registry, output: folder).results
    }

    func testVerdicts() throws {
        let a = try results()
        var b = a
        // Cell 0: same. Cell 1: moved within CI. Cell 2: moved outside. Cell 3: only in A; one extra only in B.
        b.cells[1].accuracy! += (b.cells[1].ci95 ?? 0) / 2
        b.cells[1].episodeCorrect[0] += 1
        b.cells[2].accuracy! += 50
        b.cells[2].ci95 = 1
        var extra = b.cells[3]
        extra.config.seed = 9
        b.cells.remove(at: 3)
        b.cells.append(extra)
        let comparison = Comparison(a, b)
        XCTAssertEqual(comparison.cells.map(\.verdict), [.same, .withinCI, .outsideCI])
        XCTAssertEqual(comparison.onlyInA, [a.cells[3].key])
        XCTAssertEqual(comparison.onlyInB, [extra.key])
        let combined = ((a.cells[2].ci95 ?? 0) * (a.cells[2].ci95 ?? 0) + 1).squareRoot()
        XCTAssertEqual(comparison.cells[2].combinedCI ?? -1, combined, accuracy: 1e-12)
        XCTAssertEqual(comparison.cells[2].difference ?? -1, 50, accuracy: 1e-9)
        let text = comparison.render()
        XCTAssertTrue(text.contains("outside CI"), text)
        XCTAssertTrue(text.contains("Only in A: \(a.cells[3].key)"), text)
        XCTAssertTrue(text.contains("Only in B: nearest-b 3w1s2q seed 9"), text)

        var diverged = b
        diverged.cells[0].status = .diverged
        diverged.cells[0].accuracy = nil
        XCTAssertEqual(Comparison(a, diverged).cells[0].verdict, .statusDiffers)
    }

    func testCheckPassesOnIdenticalRerunAndFailsOnEditedNumbers() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite(registry: registry)
        _ = try Fixtures.run(suite, registry: registry, output: folder + "/stored")
        let fresh = try Fixtures.run(suite, registry: registry, output: folder + "/fresh").results
        let stored = try ResultSet.load(folder + "/stored")

        let pass = RegressionCheck.check(fresh: fresh, stored: [stored])
        XCTAssertTrue(pass.exact)
        XCTAssertTrue(pass.passed, "\(pass.failures)")
        XCTAssertEqual(pass.summary, "check passed: 4 cells match exactly")

        // Edit one stored per-episode number: the exact check fails and names the cell.
        var edited = stored
        edited.cells[2].episodeCorrect[3] += 1
        let fail = RegressionCheck.check(fresh: fresh, stored: [edited])
        XCTAssertFalse(fail.passed)
        XCTAssertEqual(fail.failures.count, 1)
        XCTAssertTrue(fail.failures[0].hasPrefix("\(stored.cells[2].key):"), fail.failures[0])
        XCTAssertTrue(fail.failures[0].contains("first differing episode: 3"), fail.failures[0])

        // Another thread count still compares exactly (results do not depend on it).
        var otherThreads = stored
        for i in otherThreads.cells.indices { otherThreads.cells[i].provenance?.threads = 3 }
        XCTAssertTrue(RegressionCheck.check(fresh: fresh, stored: [otherThreads]).exact)

        // Cells stored with other OpenBLAS kernels are compared within intervals, cell by cell, and the
        // outcome says which: a small edit passes, a large one fails.
        var otherKernels = stored
        otherKernels.cells[0].provenance?.openblasKernels = "OtherKernels"
        otherKernels.cells[0].accuracy! += 0.001
        let mixed = RegressionCheck.check(fresh: fresh, stored: [otherKernels])
        XCTAssertFalse(mixed.exact)
        XCTAssertEqual(mixed.exactCells, 3)
        XCTAssertEqual(mixed.approximate.map(\.cell), [stored.cells[0].key])
        XCTAssertTrue(mixed.approximate[0].reason.contains("OtherKernels"), mixed.approximate[0].reason)
        XCTAssertTrue(mixed.passed, "\(mixed.failures)")
        XCTAssertEqual(mixed.summary, "check passed: 4 cells match (3 exactly, 1 within their confidence intervals)")
        otherKernels.cells[0].accuracy! += 60
        let ciFail = RegressionCheck.check(fresh: fresh, stored: [otherKernels])
        XCTAssertFalse(ciFail.passed)
        XCTAssertTrue(ciFail.failures[0].contains("outside the combined interval"), ciFail.failures[0])

        // A per-kernel baseline beside it restores the exact comparison for that cell: its edited episode is found.
        var baseline = stored
        baseline.cells[0].episodeCorrect[1] += 1
        let withBaseline = RegressionCheck.check(fresh: fresh, stored: [otherKernels, baseline])
        XCTAssertTrue(withBaseline.exact)
        XCTAssertEqual(withBaseline.failures.count, 1)
        XCTAssertTrue(withBaseline.failures[0].contains("first differing episode: 1"), withBaseline.failures[0])

        // A stored set without a cell, or with another configuration, fails.
        var missing = stored
        missing.cells.removeLast()
        XCTAssertTrue(RegressionCheck.check(fresh: fresh, stored: [missing]).failures[0].contains("no stored result"))
        var changed = stored
        changed.cells[0].fingerprint = "0"
        XCTAssertTrue(RegressionCheck.check(fresh: fresh, stored: [changed]).failures[0].contains("configuration differs"))
    }

    func testLoadErrors() {
        XCTAssertThrowsError(try ResultSet.load(folder + "/none")) { error in
            XCTAssertTrue("\(error)".contains("no such file or folder"), "\(error)")
        }
        XCTAssertThrowsError(try ResultSet.load(folder)) { error in
            XCTAssertTrue("\(error)".contains("has no results.json"), "\(error)")
        }
        _ = FileManager.default.createFile(atPath: folder + "/bad.json", contents: Data("{}".utf8))
        XCTAssertThrowsError(try ResultSet.load(folder + "/bad.json")) { error in
            XCTAssertTrue("\(error)".contains("not a MetaBench results file"), "\(error)")
        }
    }

    func testAtomicWriteReplacesAndLeavesNoTemporaryFiles() throws {
        try AtomicFile.write("one", to: folder + "/sub/file.txt")
        try AtomicFile.write("two", to: folder + "/sub/file.txt")
        XCTAssertEqual(try String(contentsOfFile: folder + "/sub/file.txt", encoding: .utf8), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/sub"), ["file.txt"])
    }

    func testProgressIsShortWhenNotATerminal() {
        var output = ""
        let printer = ProgressPrinter(interactive: false) { output += $0 }
        printer.cellStarted("[1/1] x 5w1s seed 0")
        for i in 1...1000 { printer.training(done: i, total: 1000, loss: 1, validation: nil, elapsed: Double(i)) }
        printer.cellFinished("done")
        XCTAssertEqual(output.split(separator: "\n").count, 12, output)
        XCTAssertFalse(output.contains("\r"))

        var terminal = ""
        let redraw = ProgressPrinter(interactive: true) { terminal += $0 }
        redraw.cellStarted("c")
        redraw.training(done: 1, total: 2, loss: 0.5, validation: 40, elapsed: 1)
        redraw.cellFinished("c: done")
        XCTAssertTrue(terminal.hasPrefix("\r"), terminal)
        XCTAssertTrue(terminal.hasSuffix("c: done\n"), terminal)
    }
}
