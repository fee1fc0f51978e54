import Foundation
import XCTest

/// Golden outputs of `bench plan`, `bench report` and the shard flags of `bench run` (see `BenchOutputTests`;
/// `METABENCH_RECORD=1` rewrites them). Temporary folders appear as `<folder>` in the expectations.
final class ShardCommandTests: XCTestCase {
    private func check(_ name: String, _ arguments: [String], folder: URL? = nil,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.isExecutableFile(atPath: BenchOutputTests.benchExecutable.path) else {
            return XCTFail("bench was not built beside the tests", file: file, line: line)
        }
        var actual = try BenchOutputTests.bench(arguments)
        if let folder { actual = actual.replacingOccurrences(of: folder.path, with: "<folder>") }
        let path = BenchOutputTests.expected.appendingPathComponent(name + ".txt")
        if BenchOutputTests.recording {
            try actual.write(to: path, atomically: true, encoding: .utf8)
            return
        }
        let stored = try? String(contentsOf: path, encoding: .utf8)
        XCTAssertEqual(actual, stored, "bench \(arguments.joined(separator: " ")) differs from \(name).txt (METABENCH_RECORD=1 rewrites it)",
                       file: file, line: line)
    }

    /// A copy of the stored smoke results (cells and plan), so that reports can be rebuilt without touching them.
    private func smokeCopy() throws -> URL {
        let folder = try scratchFolder("shards").appendingPathComponent("smoke")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let stored = BenchOutputTests.packageRoot.appendingPathComponent("results/smoke")
        try FileManager.default.copyItem(at: stored.appendingPathComponent("cells"), to: folder.appendingPathComponent("cells"))
        try FileManager.default.copyItem(at: stored.appendingPathComponent("plan.json"), to: folder.appendingPathComponent("plan.json"))
        return folder
    }

    /// Every smoke cell is stored, so the plan takes their times: no timing on this machine, the same output everywhere.
    func testPlanOfStoredCells() throws {
        try check("plan-smoke-stored", ["plan", "--suite", "smoke", "--output", "results/smoke", "--shards", "3"])
    }

    func testReportRebuildsTheStoredReports() throws {
        let folder = try smokeCopy()
        try check("report-smoke", ["report", folder.path], folder: folder)
        let stored = BenchOutputTests.packageRoot.appendingPathComponent("results/smoke")
        for name in ["results.json", "results.csv", "REPORT.md", "learning-curves.svg"] {
            XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent(name)),
                           try Data(contentsOf: stored.appendingPathComponent(name)), "\(name) rebuilt from the cells differs")
        }
    }

    func testReportListsMissingCells() throws {
        let folder = try smokeCopy()
        for name in ["maml-5w1s-seed0.json", "reptile-5w1s-seed0.json"] {
            try FileManager.default.removeItem(at: folder.appendingPathComponent("cells/" + name))
        }
        try check("report-missing", ["report", folder.path], folder: folder)
        XCTAssertTrue(try String(contentsOf: folder.appendingPathComponent("REPORT.md"), encoding: .utf8)
            .contains("## Missing cells\n\nThese cells"))
        try check("report-missing-complete", ["report", "--complete", folder.path], folder: folder)
    }

    func testCommandErrors() throws {
        let folder = try scratchFolder("shards")
        try check("report-no-plan", ["report", folder.path], folder: folder)
        try check("run-shard-out-of-range", ["run", "--suite", "smoke", "--shard", "3/3", "--output", folder.path], folder: folder)
        try check("run-shard-malformed", ["run", "--suite", "smoke", "--shard", "1of3", "--output", folder.path], folder: folder)
        try check("run-shards-without-index", ["run", "--suite", "smoke", "--shards", "3", "--output", folder.path], folder: folder)
        try check("run-bad-checkpoint-interval", ["run", "--suite", "smoke", "--checkpoint-interval=-1"])
        try check("plan-zero-shards", ["plan", "--suite", "smoke", "--shards", "0"])
        try check("plan-help", ["plan", "--help"])
        try check("report-help", ["report", "--help"])
        try check("evaluate-help", ["evaluate", "--help"])
        try check("evaluate-no-models", ["evaluate", "--suite", "smoke", "--only", "protonet", "--output", folder.path], folder: folder)
    }
}
