import Foundation
import XCTest

/// Runs the built `bench` command and compares its whole output (exit status, standard output, standard
/// error) with the expectation stored in `Expected/<name>.txt`.
///
/// After an intended change of the output, rerun with `METABENCH_RECORD=1` to rewrite the expectations,
/// and review the diff before committing it.
final class BenchOutputTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let expected = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Expected")
    static let recording = ProcessInfo.processInfo.environment["METABENCH_RECORD"] == "1"

    /// The `bench` executable beside this test binary (both are products of the same build).
    static var benchExecutable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("bench")
    }

    /// Exit status and output of `bench arguments`, run in the package root.
    static func bench(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = benchExecutable
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = "100"  // help text wraps at a fixed width
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting, so a full pipe cannot block the child.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return "$ bench \(arguments.joined(separator: " "))\nexit status \(process.terminationStatus)\n"
            + "--- standard output\n\(String(decoding: outData, as: UTF8.self))"
            + "--- standard error\n\(String(decoding: errData, as: UTF8.self))"
    }

    func check(_ name: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests: \(Self.benchExecutable.path)", file: file, line: line)
            return
        }
        let actual = try Self.bench(arguments)
        let path = Self.expected.appendingPathComponent(name + ".txt")
        if Self.recording {
            try actual.write(to: path, atomically: true, encoding: .utf8)
            return
        }
        guard let stored = try? String(contentsOf: path, encoding: .utf8) else {
            XCTFail("no stored output \(path.path): run the tests once with METABENCH_RECORD=1", file: file, line: line)
            return
        }
        if actual != stored {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let s = stored.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(a, s).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, s.count)
            XCTFail("""
                bench \(arguments.joined(separator: " ")): output differs from \(name).txt at line \(first + 1)
                expected: \(first < s.count ? String(s[first]) : "(end of output)")
                actual:   \(first < a.count ? String(a[first]) : "(end of output)")
                """, file: file, line: line)
        }
    }

    // MARK: - Listings and help

    func testListLearners() throws { try check("list-learners", ["list", "learners"]) }
    func testListSuites() throws { try check("list-suites", ["list", "suites"]) }
    func testHelp() throws { try check("help", ["--help"]) }
    func testRunHelp() throws { try check("run-help", ["run", "--help"]) }

    // MARK: - Datasets

    func testInspectTorchmetaLayouts() throws {
        let fixtures = Self.packageRoot.appendingPathComponent("Tests/Fixtures/layout-fixtures")
        guard FileManager.default.fileExists(atPath: fixtures.path) else {
            XCTFail("test fixtures missing: \(fixtures.path) (they ship with the repository)")
            return
        }
        for layout in ["miniimagenet", "tieredimagenet"] {
            try check("inspect-\(layout)", ["datasets", "inspect", "Tests/Fixtures/layout-fixtures/\(layout)"])
        }
        try check("inspect-unknown-layout", ["datasets", "inspect", "Tests/Fixtures/layout-fixtures"])
        try check("inspect-missing", ["datasets", "inspect", "no/such/folder"])
    }

    // MARK: - Errors a user can make

    func testSuiteErrors() throws {
        try check("missing-suite", ["run", "--suite", "no-such-suite"])
        try check("bad-hyperparameter", ["run", "--suite", "Tests/BenchTests/Fixtures/bad-hyperparameter.yaml"])
        try check("unknown-learner", ["run", "--suite", "Tests/BenchTests/Fixtures/unknown-learner.yaml"])
        try check("bad-yaml", ["run", "--suite", "Tests/BenchTests/Fixtures/bad-yaml.yaml"])
    }

    // MARK: - Suite checks (bench validate; bounds, nesting, splits, labels)

    func testValidate() throws {
        try check("validate-help", ["validate", "--help"])
        try check("validate-smoke", ["validate", "--suite", "smoke", "--dataset"])
        try check("validate-deep-nesting", ["validate", "--suite", "Tests/BenchTests/Fixtures/deep-nesting.yaml"])
        try check("validate-same-split", ["validate", "--suite", "Tests/BenchTests/Fixtures/same-split.yaml"])
        try check("validate-bad-label", ["validate", "--suite", "Tests/BenchTests/Fixtures/bad-label.yaml"])
        try check("validate-huge-queries", ["validate", "--suite", "Tests/BenchTests/Fixtures/huge-queries.yaml"])
        // `run` makes the same checks before any cell runs.
        try check("hyperparameter-range", ["run", "--suite", "Tests/BenchTests/Fixtures/hyperparameter-range.yaml"])
        try check("too-many-threads", ["run", "--suite", "smoke", "--threads", "257"])
        try check("too-many-episodes", ["run", "--suite", "smoke", "--episodes", "10000001"])
    }

    func testFlagErrors() throws {
        try check("zero-threads", ["run", "--suite", "smoke", "--threads", "0"])
        try check("zero-episodes", ["run", "--suite", "smoke", "--episodes", "0"])
        try check("unknown-flag", ["run", "--suite", "smoke", "--fast"])
        try check("check-without-stored", ["check", "--suite", "smoke", "--stored", "no/such/results.json"])
        try check("list-unknown", ["list", "datasets"])
    }

    // MARK: - Cluster job files (bench slurm, bench k8s)

    func testSlurmScript() throws {
        try check("slurm-help", ["slurm", "--help"])
        try checkWriting("slurm-smoke", ["slurm", "--suite", "smoke", "--shards", "3", "--time", "45",
                                         "--partition", "debug", "--output", "{tmp}/shared/smoke"],
                         files: ["shared/smoke/slurm-submit.sh"])
        try checkWriting("slurm-script-path", ["slurm", "--suite", "smoke", "--shards", "1", "--time", "1-12",
                                               "--cpus-per-task", "8", "--bench", "/usr/bin/../bin/env",
                                               "--output", "{tmp}/out", "--script", "{tmp}/jobs/submit.sh"],
                         files: ["jobs/submit.sh"])
    }

    func testSlurmErrors() throws {
        try check("slurm-zero-shards", ["slurm", "--suite", "smoke", "--shards", "0"])
        try check("slurm-too-many-shards", ["slurm", "--suite", "smoke", "--shards", "10001"])
        try check("slurm-bad-time", ["slurm", "--suite", "smoke", "--shards", "3", "--time", "1:60:00"])
        try check("slurm-bad-partition", ["slurm", "--suite", "smoke", "--shards", "3", "--partition", "debug queue"])
        try check("slurm-zero-cpus", ["slurm", "--suite", "smoke", "--shards", "3", "--cpus-per-task", "0"])
        try check("slurm-missing-suite", ["slurm", "--suite", "no-such-suite", "--shards", "3", "--time", "5"])
        try check("slurm-bad-bench", ["slurm", "--suite", "smoke", "--shards", "3", "--time", "5", "--bench", "/no/such/bench"])
    }

    func testKubernetesManifests() throws {
        try check("k8s-help", ["k8s", "--help"])
        // The command .ci/cluster-test.sh validates against the Kubernetes API schemas.
        try checkWriting("k8s-smoke", ["k8s", "--suite", "smoke", "--shards", "3", "--image", "metabench:test",
                                       "--claim", "results", "--manifests", "{tmp}"],
                         files: ["metabench-smoke-shards.yaml", "metabench-smoke-merge.yaml"])
        try checkWriting("k8s-options", ["k8s", "--suite", "Tests/BenchTests/Fixtures/cluster-name.yaml", "--shards", "12",
                                         "--image", "registry.example.org/metabench@sha256:0123abcd", "--claim", "team-a.results",
                                         "--mount-path", "/mnt/shared", "--output", "runs/2026", "--cpus", "4",
                                         "--memory", "6Gi", "--bench", "/usr/local/bin/bench", "--manifests", "{tmp}/k8s"],
                         files: ["k8s/metabench-omniglot-5-way-maml-shards.yaml", "k8s/metabench-omniglot-5-way-maml-merge.yaml"])
    }

    func testKubernetesErrors() throws {
        try check("k8s-missing-image", ["k8s", "--suite", "smoke", "--shards", "3", "--claim", "results"])
        try check("k8s-bad-claim", ["k8s", "--suite", "smoke", "--shards", "3", "--image", "metabench:test", "--claim", "Results_1"])
        try check("k8s-bad-output", ["k8s", "--suite", "smoke", "--shards", "3", "--image", "metabench:test", "--claim", "results",
                                     "--output", "../elsewhere"])
        try check("k8s-bad-memory", ["k8s", "--suite", "smoke", "--shards", "3", "--image", "metabench:test", "--claim", "results",
                                     "--memory", "4GB"])
    }
}
