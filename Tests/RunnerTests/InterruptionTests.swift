import Foundation
@testable import Runner
import XCTest

final class InterruptionTests: XCTestCase {
    override func tearDown() { Interruption.uninstall() }

    /// The handler address of `signal`'s current action.
    private func handler(_ signal: Int32) -> Int {
        var action = sigaction()
        sigaction(signal, nil, &action)
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self)
    }

    private let defaultAction = unsafeBitCast(SIG_DFL, to: Int.self)
    private let ignored = unsafeBitCast(SIG_IGN, to: Int.self)

    func testSignalBecomesAnErrorAtTheNextCheck() throws {
        Interruption.install()
        XCTAssertNil(Interruption.pending)
        XCTAssertNoThrow(try Interruption.check())
        raise(SIGTERM)
        XCTAssertEqual(Interruption.pending, SIGTERM)
        XCTAssertThrowsError(try Interruption.check()) { error in
            XCTAssertEqual(error as? RunnerError, .interrupted(signal: SIGTERM))
            XCTAssertEqual("\(error)", "interrupted by SIGTERM")
        }
        XCTAssertEqual(Interruption.exitStatus(for: SIGTERM), 143)
        XCTAssertEqual(Interruption.exitStatus(for: SIGINT), 130)
        XCTAssertEqual("\(RunnerError.interrupted(signal: SIGINT))", "interrupted by SIGINT")
    }

    func testASecondSignalWouldEndTheProcessAtOnce() throws {
        Interruption.install()
        XCTAssertNotEqual(handler(SIGINT), defaultAction)
        XCTAssertNotEqual(handler(SIGTERM), defaultAction)
        raise(SIGINT)
        XCTAssertEqual(Interruption.pending, SIGINT)
        XCTAssertEqual(handler(SIGINT), defaultAction, "the handler restores the default action")
        XCTAssertEqual(handler(SIGTERM), defaultAction)
    }

    func testUninstallRestoresThePreviousActions() throws {
        let before = (handler(SIGINT), handler(SIGTERM))
        Interruption.install()
        Interruption.install()
        XCTAssertNotEqual(handler(SIGTERM), before.1)
        Interruption.uninstall()
        XCTAssertEqual(handler(SIGINT), before.0)
        XCTAssertEqual(handler(SIGTERM), before.1)
        XCTAssertNil(Interruption.pending)
    }

    func testAnInheritedIgnoredSignalStaysIgnored() throws {
        var ignore = sigaction(), previous = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigaction(SIGINT, &ignore, &previous)
        defer { sigaction(SIGINT, &previous, nil) }
        Interruption.install()
        XCTAssertEqual(handler(SIGINT), ignored)
        raise(SIGINT)
        XCTAssertNil(Interruption.pending)
        XCTAssertNoThrow(try Interruption.check())
    }
}
