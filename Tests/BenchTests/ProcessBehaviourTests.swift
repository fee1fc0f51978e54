import Foundation
import XCTest

/// What the built `bench` does when it is interrupted, when two runs share an output folder, and what an
/// earlier killed `check` left behind.
final class ProcessBehaviourTests: XCTestCase {
    private func scratch() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-process-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder
    }

    /// Starts `bench arguments` in the package root; output goes to `log`.
    private func start(_ arguments: [String], log: URL) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: BenchOutputTests.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests")
            throw XCTSkip("no bench executable")
        }
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = BenchOutputTests.benchExecutable
        process.arguments = arguments
        process.currentDirectoryURL = BenchOutputTests.packageRoot
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    private func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    /// SIGINT and SIGTERM stop a run between steps: one line, exit 130 or 143, no temporary files, finished
    /// cells kept, and the rerun resumes from them.
    func testInterruptedRunStopsCleanlyAndResumes() throws {
        for (signal, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            let folder = try scratch()
            let output = folder.appendingPathComponent("out")
            let log = folder.appendingPathComponent("log.txt")
            let process = try start(["run", "--suite", "smoke", "--only", "protonet,matchingnet", "--threads", "1",
                                     "--output", output.path], log: log)
            // Interrupt once the first cell is written, while the second one trains.
            let cell = output.appendingPathComponent("cells/protonet-5w1s-seed0.json")
            XCTAssertTrue(waitUntil(120) { FileManager.default.fileExists(atPath: cell.path) || !process.isRunning }, text(log))
            XCTAssertTrue(waitUntil(30) { text(log).contains("[2/2] matchingnet") || !process.isRunning }, text(log))
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit, text(log))
            XCTAssertEqual(process.terminationStatus, status, text(log))
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            XCTAssertTrue(text(log).contains("interrupted by \(name): finished cells are kept in"), text(log))
            let files = try FileManager.default.contentsOfDirectory(atPath: output.path + "/cells").sorted()
            XCTAssertEqual(files, ["matchingnet-5w1s-seed0.checkpoint.h5", "protonet-5w1s-seed0.json"],
                           "no temporary or half-written file is left; the cell in training is checkpointed")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path + "/.bench.lock"), "the lock is released")

            // The rerun reuses the finished cell and trains the other.
            let rerunLog = folder.appendingPathComponent("rerun.txt")
            let rerun = try start(["run", "--suite", "smoke", "--only", "protonet,matchingnet", "--output", output.path],
                                  log: rerunLog)
            rerun.waitUntilExit()
            XCTAssertEqual(rerun.terminationStatus, 0, text(rerunLog))
            XCTAssertTrue(text(rerunLog).contains("1 cells trained, 1 reused"), text(rerunLog))
            XCTAssertTrue(text(rerunLog).contains("resuming from"), text(rerunLog))
        }
    }

    /// A second run into a folder that another run is writing fails at once and names the holder; the first
    /// run finishes with every cell.
    func testSecondWriterGetsAClearError() throws {
        let folder = try scratch()
        let output = folder.appendingPathComponent("out")
        let first = try start(["run", "--suite", "smoke", "--only", "protonet", "--output", output.path],
                              log: folder.appendingPathComponent("first.txt"))
        XCTAssertTrue(waitUntil(60) { FileManager.default.fileExists(atPath: output.path + "/.bench.lock") || !first.isRunning })
        let secondLog = folder.appendingPathComponent("second.txt")
        let second = try start(["run", "--suite", "smoke", "--only", "protonet", "--output", output.path], log: secondLog)
        second.waitUntilExit()
        first.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, 1, text(secondLog))
        XCTAssertTrue(text(secondLog).contains("is being written by another bench process (pid \(first.processIdentifier)"),
                      text(secondLog))
        XCTAssertEqual(first.terminationStatus, 0, text(folder.appendingPathComponent("first.txt")))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.path + "/cells"), ["protonet-5w1s-seed0.json"])
    }

    /// `bench check` removes the temporary folders of checks whose process is gone, and only those.
    func testCheckRemovesFoldersOfKilledChecks() throws {
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let temporary = FileManager.default.temporaryDirectory
        let stale = temporary.appendingPathComponent("metabench-check-\(ended.processIdentifier)-\(UUID().uuidString)")
        let live = temporary.appendingPathComponent("metabench-check-\(getpid())-\(UUID().uuidString)")
        for folder in [stale, live] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        defer { for folder in [stale, live] { try? FileManager.default.removeItem(at: folder) } }
        let folder = try scratch()
        let log = folder.appendingPathComponent("log.txt")
        // One evaluation episode: the configuration differs from the stored one, so the check fails, after the sweep.
        let check = try start(["check", "--suite", "smoke", "--only", "protonet", "--episodes", "1"], log: log)
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 1, text(log))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "a killed check's folder is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path), "a running process's folder stays")
    }
}
