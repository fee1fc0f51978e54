import Foundation
import XCTest
@testable import HDF5

/// The watchdog reports a libhdf5 call that makes no progress, and nothing else.
final class ProgressMonitorTests: XCTestCase {
    /// What a test monitor reported: (path, limit) per stall.
    private final class Reports: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [(String?, Double)] = []
        func add(_ path: String?, _ limit: Double) { lock.lock(); items.append((path, limit)); lock.unlock() }
        var all: [(String?, Double)] { lock.lock(); defer { lock.unlock() }; return items }
    }

    private func monitor(limit: Double) -> (ProgressMonitor, Reports) {
        let reports = Reports()
        let monitor = ProgressMonitor(limit: limit) { reports.add($0, $1) }
        addTeardownBlock { monitor.stop() }
        return (monitor, reports)
    }

    func testACallWithoutProgressIsReportedWithItsFile() {
        let (monitor, reports) = monitor(limit: 0.2)
        let outer = monitor.enter("/data/a.h5")
        let inner = monitor.enter(nil)        // a nested call keeps the outer call's file
        Thread.sleep(forTimeInterval: 0.8)
        monitor.leave(inner)
        monitor.leave(outer)
        XCTAssertEqual(reports.all.count, 1)
        XCTAssertEqual(reports.all.first?.0, "/data/a.h5")
        XCTAssertEqual(reports.all.first?.1, 0.2)
    }

    func testHeartbeatsAndIdleTimeAreNotReported() {
        let (monitor, reports) = monitor(limit: 0.2)
        let token = monitor.enter("/data/b.h5")
        for _ in 0..<16 {
            Thread.sleep(forTimeInterval: 0.05)
            monitor.beat()
        }
        monitor.leave(token)
        // Many short calls in a row, then no call at all.
        for _ in 0..<20 {
            let call = monitor.enter("/data/c.h5")
            Thread.sleep(forTimeInterval: 0.02)
            monitor.leave(call)
        }
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertTrue(reports.all.isEmpty, "\(reports.all)")
    }

    func testZeroLimitTurnsTheWatchdogOff() {
        let (monitor, reports) = monitor(limit: 0)
        let token = monitor.enter("/data/d.h5")
        Thread.sleep(forTimeInterval: 0.3)
        monitor.leave(token)
        XCTAssertTrue(reports.all.isEmpty)
    }
}
