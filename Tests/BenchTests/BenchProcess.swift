import Foundation
import XCTest

/// Runs the built `bench` as a child process with a time limit, for the fuzz tests: a crash or a hang of
/// the child is an outcome to report, never the end of the test process.
enum BenchProcess {
    /// How a run ended.
    struct Outcome {
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var seconds: Double
        var standardError: String

        /// "exit N", "signal N" or "timed out".
        var summary: String {
            timedOut ? "timed out" : signalled ? "signal \(status)" : "exit \(status)"
        }
    }

    /// Runs `bench arguments` in `directory` (standard output discarded, standard error kept in a file
    /// under `scratch`), killing it after `timeLimit` seconds.
    static func run(_ arguments: [String], in directory: URL = BenchOutputTests.packageRoot,
                    environment extra: [String: String] = [:], timeLimit: Double, scratch: URL) throws -> Outcome {
        let process = Process()
        process.executableURL = BenchOutputTests.benchExecutable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let err = scratch.appendingPathComponent("\(UUID().uuidString).err")
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? errHandle.close()
            try? FileManager.default.removeItem(at: err)
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errHandle
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = Date()
        try process.run()
        var timedOut = false
        if done.wait(timeout: .now() + timeLimit) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? "(standard error is not UTF-8)"
        return Outcome(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                       timedOut: timedOut, seconds: Date().timeIntervalSince(start), standardError: stderr)
    }
}

/// SplitMix64: a small deterministic generator, so the fuzzers make the same mutants on every machine.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound (bound > 0).
    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}

/// What the tests that start `bench` share: a scratch folder removed after the test, a `bench` started in the
/// package root with its output in a log file, and that file's text.
extension XCTestCase {
    /// A new folder under the temporary directory, named `metabench-<prefix>-…`, removed when the test ends.
    func scratchFolder(_ prefix: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder
    }

    /// Starts `bench arguments` in the package root; standard output and error go to `log`.
    func startBench(_ arguments: [String], log: URL) throws -> Process {
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

    /// The text of a log file, empty when it cannot be read.
    func logText(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
}
