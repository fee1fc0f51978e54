import Engine
import Foundation
import Learners
@testable import Runner
import XCTest

/// The smoke suite, rerun end to end and checked against the stored results in `results/smoke/`.
final class SmokeRegressionTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func testSmokeSuiteReproducesStoredResults() throws {
        try checkSmoke(threads: nil)
    }

    /// The thread count does not change results: one thread reproduces the stored run (made with two).
    func testSmokeSuiteOnOneThreadReproducesStoredResults() throws {
        try checkSmoke(threads: 1)
    }

    /// Reruns the smoke suite on `threads` (nil: the stored run's count) and checks it against the stored
    /// results: exactly when the OpenBLAS kernels are the stored ones.
    func checkSmoke(threads: Int?, file: StaticString = #filePath, line: UInt = #line) throws {
        let storedPath = Self.root + "/results/smoke/results.json"
        guard FileManager.default.fileExists(atPath: storedPath) else {
            return XCTFail("no stored smoke results at \(storedPath): run `swift run -c release bench --suite smoke`",
                           file: file, line: line)
        }
        let stored = try ResultSet.load(storedPath)
        let suite = try Suite.load(Self.root + "/suites/smoke.yaml")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-smoke-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let runner = SuiteRunner(suite: suite, options: RunOptions(threads: threads ?? stored.threads,
                                                                   outputDirectory: output, resume: false))
        let fresh = try runner.run().results
        let outcome = RegressionCheck.check(fresh: fresh, stored: stored)
        XCTAssertTrue(outcome.passed, outcome.summary, file: file, line: line)
        XCTAssertEqual(fresh.cells.count, stored.cells.count, file: file, line: line)
        if stored.versions.openblasCoretype == BLAS.coreName {
            // Same seeds and kernels: every number must match to the bit.
            XCTAssertTrue(outcome.exact, "expected an exact comparison", file: file, line: line)
        }
        for cell in fresh.cells {
            XCTAssertEqual(cell.status, .completed, "\(cell.key): \(cell.message ?? "")", file: file, line: line)
        }
    }
}
