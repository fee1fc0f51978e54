import Foundation
@testable import Runner
import XCTest

final class OutputLockTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testSecondWriterGetsAClearErrorUntilTheFirstReleases() throws {
        let output = folder + "/out/nested"
        let lock = try OutputLock.acquire(folder: output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/.bench.lock"))
        // flock locks belong to an open file description: a second acquire in this process is refused too.
        XCTAssertThrowsError(try OutputLock.acquire(folder: output)) { error in
            guard case RunnerError.outputBusy(let busy, let holder)? = error as? RunnerError else {
                return XCTFail("expected outputBusy, got \(error)")
            }
            XCTAssertEqual(busy, output)
            XCTAssertEqual(holder?.pid, getpid())
            XCTAssertFalse(holder?.host.isEmpty ?? true)
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("\(output) is being written by another bench process (pid \(getpid()) on "), message)
            XCTAssertTrue(message.hasSuffix("; wait for it to finish or choose another --output"), message)
        }
        lock.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: output + "/.bench.lock"), "a released lock deletes its file")
        let again = try OutputLock.acquire(folder: output)
        again.release()
        again.release()
    }

    func testDroppingTheLockReleasesIt() throws {
        do { _ = try OutputLock.acquire(folder: folder) }
        try OutputLock.acquire(folder: folder).release()
    }

    func testLockOfAKilledProcessIsRecovered() throws {
        let lockFile = folder + "/.bench.lock", ready = folder + "/ready"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>\"$1\"; flock -x 9 || exit 3; : > \"$2\"; exec sleep 30", "sh", lockFile, ready]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready), holder.isRunning, Date() < deadline { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: ready) else {
            throw XCTSkip("the helper could not take the lock (is util-linux flock installed?)")
        }
        XCTAssertThrowsError(try OutputLock.acquire(folder: folder)) { error in
            // The helper wrote nothing into the file: the message goes without details.
            XCTAssertEqual(error as? RunnerError, .outputBusy(folder: self.folder, holder: nil))
        }
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile), "the killed process left its lock file")
        let lock = try OutputLock.acquire(folder: folder)
        let text = try String(contentsOfFile: lockFile, encoding: .utf8)
        XCTAssertEqual(OutputLock.parseHolder(text)?.pid, getpid(), text)
        lock.release()
    }

    func testLeftoverLockFileWithAnyContentIsNoProblem() throws {
        let lockFile = folder + "/.bench.lock"
        var garbage = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        garbage.append(Data("pid=-4\nhost=\nsince=x\n".utf8))
        XCTAssertTrue(FileManager.default.createFile(atPath: lockFile, contents: garbage))
        let lock = try OutputLock.acquire(folder: folder)
        let text = try String(contentsOfFile: lockFile, encoding: .utf8)
        XCTAssertEqual(OutputLock.parseHolder(text)?.pid, getpid(), "the owner replaced the old content")
        XCTAssertTrue(text.hasPrefix("pid=\(getpid())\nhost="), text)
        lock.release()

        XCTAssertNil(OutputLock.parseHolder(String(decoding: garbage, as: UTF8.self)))
        XCTAssertNil(OutputLock.parseHolder("pid=99999999999\nhost=h\nsince=t\n"))
        XCTAssertEqual(OutputLock.parseHolder("pid=12\nhost=h=1\nsince=2020\n"),
                       OutputLock.Holder(pid: 12, host: "h=1", since: "2020"))
    }

    func testAnOutputThatIsAFileIsAClearError() throws {
        let file = folder + "/plain"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        XCTAssertThrowsError(try OutputLock.acquire(folder: file)) { error in
            guard case RunnerError.cannotWrite(let path, let reason)? = error as? RunnerError else {
                return XCTFail("expected cannotWrite, got \(error)")
            }
            XCTAssertEqual(path, file)
            XCTAssertTrue(reason.hasPrefix("cannot create the folder"), reason)
        }
    }
}
