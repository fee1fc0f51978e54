import Foundation
import Learners
@testable import Runner
import XCTest

/// Learners are paired by the test episodes they share: a learner with its own training episodes (its cells
/// named `3w1s2q-train4w1s2q`) is compared with the others of `3w1s2q`.
final class PairedSettingTests: XCTestCase {
    func testOwnTrainingShapeIsPairedWithItsEvaluationSetting() throws {
        let registry = Fixtures.registry()
        let suite = try Fixtures.suite("""
        name: pairs
        settings:
          - {ways: 3, shots: 1, queries: 2}
        learners:
          - name: nearest
          - name: nearest
            label: wide
            hyperparameters: {scale: 3}
            training: {train_ways: 4}
        training: {iterations: 2, meta_batch: 1, validate_every: 0}
        evaluation: {episodes: 10, seed: 3}
        """, registry: registry)
        let folder = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let results = try Fixtures.run(suite, registry: registry, output: folder).results
        XCTAssertEqual(results.cells.map(\.config.setting.id), ["3w1s2q", "3w1s2q-train4w1s2q"])
        let pairs = PairedComparison.all(results.cells)
        XCTAssertEqual(pairs.map { "\($0.setting) \($0.labelA) \($0.labelB)" }, ["3w1s2q nearest wide"])
        // The nearest-mean learner ignores training: the same scores on the same episodes, a difference of 0 ± 0.
        XCTAssertEqual(pairs.first?.interval.difference, 0)
        XCTAssertEqual(pairs.first?.interval.halfWidth, 0)
        XCTAssertTrue(Report.markdown(results).contains("### 3w1s2q\n"))
    }
}
