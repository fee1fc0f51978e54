import Foundation
import Learners
@testable import Runner
import XCTest

/// A learner may name the settings it runs in (MAML's 5-way head cannot serve 20-way episodes): one suite
/// file instead of two.
final class LearnerSettingsTests: XCTestCase {
    func suite(_ learners: String) throws -> Suite {
        try Suite.parse(yaml: """
        name: mixed
        settings:
          - {ways: 5, shots: 1}
          - {ways: 20, shots: 1}
          - {ways: 20, shots: 1, queries: 5}
        learners:
        \(learners)
        training: {iterations: 2}
        """, file: "mixed.yaml", registry: .builtIn)
    }

    func testLearnersRunOnlyInTheirSettings() throws {
        let suite = try suite("""
          - {name: maml, settings: [5w1s]}
          - {name: protonet}
          - {name: fomaml, settings: [20w1s5q, 5w1s]}
        """)
        XCTAssertEqual(suite.learners.map(\.settings), [["5w1s"], nil, ["20w1s5q", "5w1s"]])
        let cells = SuitePlan(suite: suite).cells.map { "\($0.entry.label) \($0.setting.id)" }
        XCTAssertEqual(cells, ["maml 5w1s", "protonet 5w1s", "fomaml 5w1s",
                               "protonet 20w1s",
                               "protonet 20w1s5q", "fomaml 20w1s5q"])
    }

    func testUnknownAmbiguousEmptyAndRepeatedNamesAreErrors() throws {
        func rejects(_ learners: String, _ words: String, line: UInt = #line) {
            XCTAssertThrowsError(try suite(learners), line: line) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error)", line: line)
                XCTAssertTrue("\(error)".hasPrefix("mixed.yaml:"), "names the file and line: \(error)", line: line)
            }
        }
        rejects("  - {name: maml, settings: [10w1s]}", "'10w1s' is not a setting of this suite (settings: 5w1s, 20w1s, 20w1s5q)")
        rejects("  - {name: maml, settings: [20w1s5]}", "is not a setting")
        rejects("  - {name: maml, settings: []}", "expected at least one setting name")
        rejects("  - {name: maml, settings: [5w1s, 5w1s]}", "'5w1s' appears twice")
        rejects("  - {name: maml, settings: 5w1s}", "settings")
        rejects("  - {name: maml, settings: [{ways: 5}]}", "settings")
        // The short name 20w1s is also the full id of one setting, so it names that one, not both.
        XCTAssertEqual(try suite("  - {name: maml, settings: [20w1s]}").learners[0].settings, ["20w1s"])
    }

    func testShortNameOfTwoSettingsIsAmbiguous() throws {
        XCTAssertThrowsError(try Suite.parse(yaml: """
        name: two
        settings:
          - {ways: 5, shots: 1, queries: 5}
          - {ways: 5, shots: 1, queries: 10}
        learners:
          - {name: maml, settings: [5w1s]}
        training: {iterations: 2}
        """, file: "two.yaml", registry: .builtIn)) { error in
            XCTAssertTrue("\(error)".contains("'5w1s' names 2 settings (5w1s5q, 5w1s10q); use the full id"), "\(error)")
        }
    }
}
