import Engine
import Foundation
import XCTest

/// What the built `bench` does when it is interrupted, when two runs share an output folder, and what an
/// earlier killed `check` left behind.
final class ProcessBehaviourTests: XCTestCase {
    /// Starts `bench arguments` in the package root; output goes to `log`.
    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    /// SIGINT and SIGTERM stop a run between steps: one line, exit 130 or 143, no temporary files, finished
    /// cells kept, and the rerun resumes from them.
    func testInterruptedRunStopsCleanlyAndResumes() throws {
        for (signal, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            let folder = try scratchFolder("process")
            let output = folder.appendingPathComponent("out")
            let log = folder.appendingPathComponent("log.txt")
            let process = try startBench(["run", "--suite", "smoke", "--only", "protonet,matchingnet", "--threads", "1",
                                     "--output", output.path], log: log)
            // Interrupt once the first cell is written, while the second one trains.
            let cell = output.appendingPathComponent("cells/protonet-5w1s-seed0.json")
            XCTAssertTrue(waitUntil(120) { FileManager.default.fileExists(atPath: cell.path) || !process.isRunning }, logText(log))
            XCTAssertTrue(waitUntil(30) { logText(log).contains("[2/2] matchingnet") || !process.isRunning }, logText(log))
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit, logText(log))
            XCTAssertEqual(process.terminationStatus, status, logText(log))
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            XCTAssertTrue(logText(log).contains("interrupted by \(name): finished cells are kept in"), logText(log))
            let files = try FileManager.default.contentsOfDirectory(atPath: output.path + "/cells").sorted()
            XCTAssertEqual(files, ["matchingnet-5w1s-seed0.checkpoint.h5", "protonet-5w1s-seed0.json"],
                           "no temporary or half-written file is left; the cell in training is checkpointed")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path + "/.bench.lock"), "the lock is released")

            // The rerun reuses the finished cell and trains the other.
            let rerunLog = folder.appendingPathComponent("rerun.txt")
            let rerun = try startBench(["run", "--suite", "smoke", "--only", "protonet,matchingnet", "--output", output.path],
                                  log: rerunLog)
            rerun.waitUntilExit()
            XCTAssertEqual(rerun.terminationStatus, 0, logText(rerunLog))
            XCTAssertTrue(logText(rerunLog).contains("1 cells trained, 1 reused"), logText(rerunLog))
            XCTAssertTrue(logText(rerunLog).contains("resuming from"), logText(rerunLog))
        }
    }

    /// A second run into a folder that another run is writing fails at once and names the holder; the first
    /// run finishes with every cell.
    func testSecondWriterGetsAClearError() throws {
        let folder = try scratchFolder("process")
        let output = folder.appendingPathComponent("out")
        let first = try startBench(["run", "--suite", "smoke", "--only", "protonet", "--output", output.path],
                              log: folder.appendingPathComponent("first.txt"))
        XCTAssertTrue(waitUntil(60) { FileManager.default.fileExists(atPath: output.path + "/.bench.lock") || !first.isRunning })
        let secondLog = folder.appendingPathComponent("second.txt")
        let second = try startBench(["run", "--suite", "smoke", "--only", "protonet", "--output", output.path], log: secondLog)
        second.waitUntilExit()
        first.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, 1, logText(secondLog))
        XCTAssertTrue(logText(secondLog).contains("is being written by another bench process (pid \(first.processIdentifier)"),
                      logText(secondLog))
        XCTAssertEqual(first.terminationStatus, 0, logText(folder.appendingPathComponent("first.txt")))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.path + "/cells"), ["protonet-5w1s-seed0.json"])
    }

    /// An unknown `METABENCH_CONVOLUTIONS` stops `bench run` before any work, naming the variable, the value and
    /// the choices; `onednn` and `winograd` run a cell whose provenance names the backend, `openblas` one whose
    /// provenance names none, and unset (empty) the kernel family's default: Winograd with the AVX2 and AVX-512
    /// families.
    func testConvolutionBackendFromTheEnvironment() throws {
        let folder = try scratchFolder("process")
        let output = folder.appendingPathComponent("out")
        let arguments = ["run", "--suite", "smoke", "--only", "protonet", "--output", output.path]
        let bad = try BenchProcess.run(arguments, environment: ["METABENCH_CONVOLUTIONS": "mkl"], timeLimit: 120,
                                       scratch: folder)
        XCTAssertEqual(bad.summary, "exit 1", bad.standardError)
        XCTAssertEqual(bad.standardError,
                       "Error: METABENCH_CONVOLUTIONS=mkl is not a convolution backend; use openblas, onednn or winograd\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path + "/cells"))
        let cell = output.appendingPathComponent("cells/protonet-5w1s-seed0.json")
        let oneDNN = "\"convolutions\" : \"oneDNN 2.", winograd = "\"convolutions\" : \"Winograd F(2×2, 3×3), LIBXSMM 1."
        // The child runs with this process's environment, so with its kernels.
        let byDefault = Convolutions.defaultBackend(forKernels: BLAS.coreName) == .winograd ? winograd : nil
        for (value, recorded) in [("onednn", oneDNN), ("winograd", winograd), ("openblas", nil), ("", byDefault)] {
            try? FileManager.default.removeItem(at: output)
            let run = try BenchProcess.run(arguments, environment: ["METABENCH_CONVOLUTIONS": value], timeLimit: 300,
                                           scratch: folder)
            XCTAssertEqual(run.summary, "exit 0", run.standardError)
            let text = try String(contentsOf: cell, encoding: .utf8)
            XCTAssertEqual(text.contains("\"convolutions\" : "), recorded != nil, "METABENCH_CONVOLUTIONS=\(value)")
            if let recorded { XCTAssertTrue(text.contains(recorded), "METABENCH_CONVOLUTIONS=\(value): \(text)") }
        }
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
        let folder = try scratchFolder("process")
        let log = folder.appendingPathComponent("log.txt")
        // One evaluation episode: the configuration differs from the stored one, so the check fails, after the sweep.
        let check = try startBench(["check", "--suite", "smoke", "--only", "protonet", "--episodes", "1"], log: log)
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 1, logText(log))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "a killed check's folder is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: live.path), "a running process's folder stays")
    }
}
