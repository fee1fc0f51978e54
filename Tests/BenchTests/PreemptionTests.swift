import Foundation
import XCTest

/// A cell killed mid-training (SIGTERM, as Slurm and Kubernetes send before killing; or SIGKILL) resumes
/// from its checkpoint on the rerun, to the bits of an uninterrupted run.
final class PreemptionTests: XCTestCase {
    static let suite = """
    name: preempt
    exact: true
    dataset: {path: embedded}
    settings:
      - {ways: 5, shots: 1, queries: 5}
    learners:
      - {name: maml, hyperparameters: {width: 8, inner_steps: 2, eval_inner_steps: 2}}
    training: {iterations: 150, meta_batch: 2, validate_every: 50, validation_episodes: 5}
    evaluation: {episodes: 20, seed: 1}
    seeds: [3]
    """

    /// The numbers of the one cell: everything but times, memory and provenance.
    private func numbers(_ output: URL) throws -> String {
        let data = try Data(contentsOf: output.appendingPathComponent("cells/maml-5w1s5q-seed3.json"))
        guard let cell = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return "" }
        return try ["status", "accuracy", "ci95", "episodeCorrect", "learningCurve", "fingerprint"].map { key in
            guard let value = cell[key] else { return "\(key)=nil" }
            let json = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
            return "\(key)=" + String(decoding: json, as: UTF8.self)
        }.joined(separator: "\n")
    }

    func testKilledCellResumesToTheSameBits() throws {
        let folder = try scratchFolder("preempt")
        let suiteFile = folder.appendingPathComponent("preempt.yaml")
        try Self.suite.write(to: suiteFile, atomically: true, encoding: .utf8)
        let reference = folder.appendingPathComponent("reference")
        let referenceLog = folder.appendingPathComponent("reference.txt")
        let whole = try startBench(["run", "--suite", suiteFile.path, "--threads", "1", "--output", reference.path], log: referenceLog)
        whole.waitUntilExit()
        XCTAssertEqual(whole.terminationStatus, 0, logText(referenceLog))
        let expected = try numbers(reference)

        for signal in [SIGTERM, SIGKILL] {
            let output = folder.appendingPathComponent("out-\(signal)")
            let log = folder.appendingPathComponent("log-\(signal).txt")
            let process = try startBench(["run", "--suite", suiteFile.path, "--threads", "1", "--output", output.path,
                                     "--checkpoint-interval", "0.3"], log: log)
            let checkpoint = output.appendingPathComponent("cells/maml-5w1s5q-seed3.checkpoint.h5")
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, process.isRunning, !FileManager.default.fileExists(atPath: checkpoint.path) {
                Thread.sleep(forTimeInterval: 0.02)
            }
            XCTAssertTrue(process.isRunning, "the cell finished before it could be interrupted:\n\(logText(log))")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            if signal == SIGTERM {
                XCTAssertEqual(process.terminationReason, .exit, logText(log))
                XCTAssertEqual(process.terminationStatus, 143, logText(log))
                XCTAssertTrue(logText(log).contains("the cell in training in a checkpoint"), logText(log))
            } else {
                XCTAssertEqual(process.terminationReason, .uncaughtSignal)
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path), "signal \(signal): \(logText(log))")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.appendingPathComponent("cells/maml-5w1s5q-seed3.json").path))

            let rerunLog = folder.appendingPathComponent("rerun-\(signal).txt")
            let rerun = try startBench(["run", "--suite", suiteFile.path, "--threads", "1", "--output", output.path], log: rerunLog)
            rerun.waitUntilExit()
            XCTAssertEqual(rerun.terminationStatus, 0, logText(rerunLog))
            XCTAssertTrue(logText(rerunLog).contains("resuming from"), logText(rerunLog))
            XCTAssertEqual(try numbers(output), expected, "signal \(signal)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint.path), "the checkpoint is removed once the cell is written")
            let cell = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("cells/maml-5w1s5q-seed3.json"))) as? [String: Any]
            let resumedAt = (cell?["resumedAtIterations"] as? [Int]) ?? []
            XCTAssertEqual(resumedAt.count, 1, "signal \(signal)")
            XCTAssertGreaterThan(resumedAt.first ?? 0, 0, "it resumed after some training, not from the start")
        }
    }
}
