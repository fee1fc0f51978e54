import Foundation
@testable import Runner
import XCTest

final class ProgressTests: XCTestCase {
    func testALogShowsLifeAtLeastEveryHeartbeat() {
        var now = 1000.0
        var lines: [(time: Double, text: String)] = []
        var pending = ""
        let printer = ProgressPrinter(interactive: false, heartbeat: 5, clock: { now }) { text in
            pending += text
            while let end = pending.firstIndex(of: "\n") {
                lines.append((now, String(pending[..<end])))
                pending = String(pending[pending.index(after: end)...])
            }
        }
        printer.cellStarted("c")
        // 2 000 slow episodes, 0.7 s each: a tenth of the work takes 140 s.
        for done in 1...2000 {
            now += 0.7
            printer.evaluation(done: done, total: 2000, accuracy: 50)
        }
        printer.cellFinished("c: done")
        XCTAssertTrue(pending.isEmpty)
        let gaps = zip(lines.dropFirst(), lines).map { $0.time - $1.time }
        XCTAssertLessThanOrEqual(gaps.max() ?? 0, 5 + 0.7, "\(gaps)")
        XCTAssertGreaterThanOrEqual(gaps.min() ?? 0, 0)
        XCTAssertLessThanOrEqual(lines.count, 1400 / 5 + 12, "no more than one line per heartbeat and per tenth")
        for tenth in 1...10 {
            XCTAssertTrue(lines.contains { $0.text == "c  evaluate \(tenth * 200)/2000  acc 50.00%" }, "tenth \(tenth)")
        }
        XCTAssertEqual(lines.last?.text, "c: done")
    }

    func testFastWorkStaysAtOneLinePerTenth() {
        var now = 0.0
        var output = ""
        let printer = ProgressPrinter(interactive: false, heartbeat: 5, clock: { now }) { output += $0 }
        printer.cellStarted("c")
        for done in 1...1000 {
            now += 0.004  // 4 s in all: the heartbeat never fires
            printer.training(done: done, total: 1000, loss: 1, validation: nil, elapsed: now)
        }
        // The first call, then each tenth.
        XCTAssertEqual(output.split(separator: "\n").count, 11, output)
    }

    func testATerminalRedrawsAtMostTenTimesASecond() {
        var now = 0.0
        var draws = 0
        let printer = ProgressPrinter(interactive: true, heartbeat: 5, clock: { now }) { text in
            if text.hasPrefix("\r") { draws += 1 }
            XCTAssertFalse(text.contains("\n"), "no new lines while redrawing")
        }
        printer.cellStarted("c")
        for done in 1...1000 {
            now += 0.01  // 10 s in all
            printer.training(done: done, total: 1000, loss: 1, validation: nil, elapsed: now)
        }
        XCTAssertGreaterThanOrEqual(draws, 80)
        XCTAssertLessThanOrEqual(draws, 101)
    }
}
