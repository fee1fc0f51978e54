import Foundation
@testable import Runner
import XCTest
import Yams

/// The Slurm script and Kubernetes manifests `bench slurm` and `bench k8s` write. The script is run by bash
/// here with a stand-in `sbatch` that records what it was given, so quoting is checked by the shell itself;
/// `.ci/cluster-test.sh` submits it to a real Slurm and validates the manifests against the Kubernetes schemas.
final class JobFilesTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func slurmFile(shards: Int = 3, partition: String? = nil, time: SlurmTime = SlurmTime(seconds: 720),
                   output: String = "/shared/results/smoke", workingDirectory: String = "/home/me/metabench",
                   bench: String = "/opt/metabench/bench", suite: String = "smoke") -> SlurmJobFile {
        SlurmJobFile(suite: suite, suiteName: "smoke", shards: shards, cpusPerTask: 4, timeLimit: time,
                     timeSource: "as given with --time", partition: partition, output: output,
                     workingDirectory: workingDirectory, bench: bench, scriptPath: output + "/slurm-submit.sh",
                     version: "test")
    }

    /// The lines of `text` that start with `prefix`.
    func lines(_ text: String, _ prefix: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    // MARK: - Slurm

    func testTheArrayHasOneTaskPerShard() throws {
        for (shards, range) in [(1, "0-0"), (3, "0-2"), (10_000, "0-9999")] {
            let script = try slurmFile(shards: shards).script()
            XCTAssertEqual(lines(script, "#SBATCH --array"), ["#SBATCH --array=\(range)"], "\(shards) shards")
        }
        let script = try slurmFile().script()
        XCTAssertEqual(lines(script, "#SBATCH --cpus-per-task"), ["#SBATCH --cpus-per-task=4", "#SBATCH --cpus-per-task=1"])
        XCTAssertEqual(lines(script, "#SBATCH --time"), ["#SBATCH --time=12:00", "#SBATCH --time=10:00"])
        XCTAssertEqual(lines(script, "#SBATCH --job-name"), ["#SBATCH --job-name=metabench-smoke", "#SBATCH --job-name=metabench-smoke-merge"])
        XCTAssertEqual(lines(script, "exec "), [
            "exec '/opt/metabench/bench' run --suite 'smoke' --output '/shared/results/smoke' --threads 4",
            "exec '/opt/metabench/bench' report '/shared/results/smoke'",
        ])
        XCTAssertEqual(lines(script, "#SBATCH --partition"), [], "no partition unless one is given")
        XCTAssertEqual(lines(try slurmFile(partition: "gpu,cpu").script(), "#SBATCH --partition"),
                       ["#SBATCH --partition=gpu,cpu", "#SBATCH --partition=gpu,cpu"])
        // A short limit also bounds the merge job's.
        XCTAssertEqual(lines(try slurmFile(time: SlurmTime(seconds: 300)).script(), "#SBATCH --time"),
                       ["#SBATCH --time=05:00", "#SBATCH --time=05:00"])
    }

    func testBadSlurmInputsAreRefused() {
        func refuses(_ file: SlurmJobFile, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try file.script(), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        refuses(slurmFile(shards: 0), "--shards must be between 1 and 10000, got 0")
        refuses(slurmFile(shards: 10_001), "--shards must be between 1 and 10000")
        refuses(slurmFile(time: SlurmTime(seconds: 0)), "the time limit must be between 1 s and 365 days")
        refuses(slurmFile(time: SlurmTime(seconds: SlurmTime.maximumSeconds + 1)), "the time limit must be")
        refuses(slurmFile(partition: "debug; rm -rf /"), "--partition must be")
        refuses(slurmFile(partition: ""), "--partition must be")
        refuses(slurmFile(partition: "a,,b"), "--partition must be")
        refuses(slurmFile(output: "relative/out"), "the output folder must be an absolute path")
        refuses(slurmFile(output: "/shared/a\\b"), "backslash")
        refuses(slurmFile(output: "/shared/two\nlines"), "control character")
        refuses(slurmFile(bench: "/opt/x\n#SBATCH --array=0-99"), "the bench executable holds a control character")
        refuses(slurmFile(suite: "smoke\nMETABENCH_SHARDS"), "--suite holds a control character")
    }

    /// Runs the script with bash and a stand-in sbatch, then the job scripts it submitted with a stand-in
    /// bench, all under paths with spaces, quotes, `$`, backquotes and `%`.
    func testOddPathsReachSbatchAndBenchIntact() throws {
        let odd = folder + "/it's \"100%\" $HOME `true` (x)"
        let output = odd + "/out", workingDirectory = odd + "/work \\ dir", bench = odd + "/bin/be nch"
        let suite = "my 'suite' \"file\".yaml"
        try FileManager.default.createDirectory(atPath: workingDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: odd + "/bin", withIntermediateDirectories: true)
        let records = folder + "/records"
        try FileManager.default.createDirectory(atPath: records, withIntermediateDirectories: true)
        // The stand-in sbatch: arguments and standard input to files; job ids 41 ("41;cluster") and 42.
        try writeExecutable(folder + "/fakebin/sbatch", """
            #!/usr/bin/env bash
            n=$(ls "$RECORDS" | grep -c '^sbatch-.*\\.args$' || true)
            n=$((n + 1))
            printf '%s\\0' "$@" > "$RECORDS/sbatch-$n.args"
            cat > "$RECORDS/sbatch-$n.stdin"
            if [ "$n" = 1 ]; then echo "41;cluster"; else echo 42; fi
            """)
        try writeExecutable(bench, """
            #!/usr/bin/env bash
            printf '%s\\0' "$@" > "$RECORDS/bench-$SLURM_ARRAY_TASK_ID.args"
            pwd > "$RECORDS/bench-$SLURM_ARRAY_TASK_ID.pwd"
            """)
        let file = slurmFile(output: output, workingDirectory: workingDirectory, bench: bench, suite: suite)
        let script = folder + "/submit.sh"
        try file.script().write(toFile: script, atomically: true, encoding: .utf8)

        let environment = ["RECORDS": records, "PATH": folder + "/fakebin:/usr/bin:/bin"]
        let submitted = try runBash([script], environment: environment)
        XCTAssertEqual(submitted.status, 0, submitted.error)
        XCTAssertEqual(submitted.output, "array job 41\nmerge job 42\n")
        var isFolder: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/slurm", isDirectory: &isFolder) && isFolder.boolValue,
                      "the script creates the log folder (Slurm does not)")

        let arrayArguments = try nulSeparated(records + "/sbatch-1.args")
        let pattern = (odd + "/out").replacingOccurrences(of: "%", with: "%%")
        XCTAssertEqual(arrayArguments, ["--parsable", "--output=\(pattern)/slurm/%A_%a.out", "--chdir=\(workingDirectory)"])
        let mergeArguments = try nulSeparated(records + "/sbatch-2.args")
        XCTAssertEqual(mergeArguments, ["--parsable", "--dependency=afterok:41", "--kill-on-invalid-dep=yes",
                                        "--output=\(pattern)/slurm/%j-merge.out", "--chdir=\(workingDirectory)"])

        // The job scripts, as Slurm would run them: bash, in the working directory, with the array variables.
        for task in 0..<3 {
            let ran = try runBash([records + "/sbatch-1.stdin"], environment: environment.merging(
                ["SLURM_ARRAY_TASK_ID": "\(task)", "SLURM_ARRAY_TASK_COUNT": "3"]) { $1 }, directory: workingDirectory)
            XCTAssertEqual(ran.status, 0, ran.error)
            XCTAssertEqual(try nulSeparated(records + "/bench-\(task).args"),
                           ["run", "--suite", suite, "--output", output, "--threads", "4"])
        }
        let merged = try runBash([records + "/sbatch-2.stdin"], environment: environment.merging(["SLURM_ARRAY_TASK_ID": "merge"]) { $1 },
                                 directory: workingDirectory)
        XCTAssertEqual(merged.status, 0, merged.error)
        XCTAssertEqual(try nulSeparated(records + "/bench-merge.args"), ["report", output])
    }

    func testTheScriptStopsWhenSbatchPrintsNoJobId() throws {
        try writeExecutable(folder + "/fakebin/sbatch", "#!/usr/bin/env bash\ncat >/dev/null\necho 'sbatch: error: invalid partition'\n")
        let script = folder + "/submit.sh"
        try slurmFile(output: folder + "/out").script().write(toFile: script, atomically: true, encoding: .utf8)
        let ran = try runBash([script], environment: ["PATH": folder + "/fakebin:/usr/bin:/bin"])
        XCTAssertNotEqual(ran.status, 0)
        XCTAssertEqual(ran.output, "")
        XCTAssertTrue(ran.error.contains("sbatch printed 'sbatch: error: invalid partition', not a job id"), ran.error)
    }

    // MARK: - Time limits

    func testTheEstimatedLimitIsOneAndAHalfTimesPlusFiveMinutesRoundedUp() throws {
        let cases: [(Double, Int, String)] = [
            (0, 300, "05:00"),          // only the 5 minutes
            (1, 360, "06:00"),          // 301.5 s rounds up to 6 minutes
            (100, 480, "08:00"),        // 450 s → 8 min
            (2400, 3900, "0-01:05:00"), // 40 min → 65 min
            (86_400, 129_900, "1-12:05:00"),
        ]
        for (estimate, seconds, text) in cases {
            let limit = try SlurmTime(estimate: estimate)
            XCTAssertEqual(limit.seconds, seconds, "estimate \(estimate)")
            XCTAssertEqual(limit.text, text, "estimate \(estimate)")
        }
        for bad in [Double.nan, -1, .infinity, 1e12] {
            XCTAssertThrowsError(try SlurmTime(estimate: bad), "estimate \(bad)")
        }
    }

    func testTimeFlagsParseAsSlurmReadsThem() throws {
        let cases: [(String, Int, String)] = [
            ("90", 5400, "0-01:30:00"), ("45:30", 2730, "45:30"), ("1:30:00", 5400, "0-01:30:00"),
            ("2-00:00:00", 172_800, "2-00:00:00"), ("1-12", 129_600, "1-12:00:00"), ("1-2:3", 93_780, "1-02:03:00"),
            ("0:59", 59, "00:59"), ("365-00:00:00", 365 * 86_400, "365-00:00:00"),
        ]
        for (text, seconds, rendered) in cases {
            let limit = try SlurmTime(parsing: text)
            XCTAssertEqual(limit.seconds, seconds, text)
            XCTAssertEqual(limit.text, rendered, text)
            XCTAssertEqual(try SlurmTime(parsing: limit.text), limit, "\(text) round trip")
        }
        for bad in ["", "0", "0:00", "abc", "1:60:00", "1:2:3:4", "-5", "1-24", "1--2", "366-00:00:00", " 5", "5 ",
                    "99999999999", "1.5", "1-", "-1-2", "１２"] {
            XCTAssertThrowsError(try SlurmTime(parsing: bad), "'\(bad)'") { error in
                XCTAssertTrue("\(error)".hasPrefix("--time must be"), "\(error)")
            }
        }
    }

    // MARK: - Kubernetes

    func kubernetes(shards: Int = 3, suite: String = "smoke", suiteName: String = "smoke", image: String = "metabench:test",
                    claim: String = "results", mountPath: String = "/data", output: String = "results/smoke",
                    memory: String? = nil) -> KubernetesJobFiles {
        KubernetesJobFiles(suite: suite, suiteName: suiteName, shards: shards, image: image, claim: claim,
                           mountPath: mountPath, output: output, cpus: 3, memory: memory, version: "test")
    }

    func testTheShardsJobIsIndexedWithOnePodPerShard() throws {
        let files = kubernetes(shards: 7, suite: "my \"odd\" suite\\.yaml", memory: "4Gi")
        let shards = try XCTUnwrap(try Yams.load(yaml: try files.shardsManifest()) as? [String: Any])
        let spec = try XCTUnwrap(shards["spec"] as? [String: Any])
        XCTAssertEqual(spec["completionMode"] as? String, "Indexed")
        XCTAssertEqual(spec["completions"] as? Int, 7)
        XCTAssertEqual(spec["parallelism"] as? Int, 7)
        XCTAssertNotNil(spec["backoffLimit"] as? Int)
        let pod = try XCTUnwrap((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        XCTAssertEqual(pod["restartPolicy"] as? String, "Never")
        XCTAssertEqual(pod["terminationGracePeriodSeconds"] as? Int, 60)
        let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
        XCTAssertEqual(container["image"] as? String, "metabench:test")
        // The command survives YAML quoting word for word.
        XCTAssertEqual(container["command"] as? [String], ["bench", "run", "--suite", "my \"odd\" suite\\.yaml",
                                                           "--output", "/data/results/smoke", "--shards", "7", "--threads", "3"])
        let resources = try XCTUnwrap(container["resources"] as? [String: [String: String]])
        XCTAssertEqual(resources["requests"], ["cpu": "3", "memory": "4Gi"])
        XCTAssertEqual(resources["limits"], ["cpu": "3", "memory": "4Gi"])
        let mount = try XCTUnwrap((container["volumeMounts"] as? [[String: String]])?.first)
        XCTAssertEqual(mount, ["name": "results", "mountPath": "/data"])
        let volume = try XCTUnwrap((pod["volumes"] as? [[String: Any]])?.first)
        XCTAssertEqual((volume["persistentVolumeClaim"] as? [String: String])?["claimName"], "results")

        let merge = try XCTUnwrap(try Yams.load(yaml: try files.mergeManifest()) as? [String: Any])
        XCTAssertEqual((merge["metadata"] as? [String: Any])?["name"] as? String, "metabench-smoke-merge")
        let mergePod = try XCTUnwrap(((merge["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        XCTAssertEqual((mergePod["containers"] as? [[String: Any]])?.first?["command"] as? [String],
                       ["bench", "report", "/data/results/smoke"])
        XCTAssertTrue(try files.shardsManifest().contains("kubectl wait --for=condition=complete --timeout=-1s job/metabench-smoke-shards"))
        // Without --memory no memory is set.
        XCTAssertFalse(try kubernetes().shardsManifest().contains("memory"))
    }

    func testJobNamesAreDNSLabelsDerivedFromTheSuiteName() throws {
        let cases = [
            ("smoke", "metabench-smoke"), ("Omniglot 5-Way (MAML)", "metabench-omniglot-5-way-maml"),
            ("___", "metabench"), ("ÜBER_suite", "metabench-ber-suite"), ("--a--b--", "metabench-a-b"),
            ("miniImageNet.v2", "metabench-miniimagenet-v2"), ("日本語", "metabench"),
        ]
        for (suite, name) in cases { XCTAssertEqual(KubernetesName.base(for: suite), name, suite) }
        // Long names are cut so that the pods' hostnames (<job>-<index>) stay labels, never ending in '-'.
        // "metabench-" and 40 letters make 50 characters; the 51st, the last kept, is a '-'.
        let long = String(repeating: "a", count: 40) + "-" + String(repeating: "b", count: 50)
        let alphabet = Array("aZ09-_. /é")
        let random = (0..<200).map { i in String((0...(i * 37 % 120)).map { alphabet[(i * 7 + $0 * 13 + $0 * $0) % alphabet.count] }) }
        for suite in [long, String(repeating: "x", count: 300)] + random {
            let files = kubernetes(suiteName: suite)
            XCTAssertLessThanOrEqual(files.name.count, KubernetesName.maximumBaseLength, suite)
            for name in [files.name, files.shardsJobName + "-9999", files.mergeJobName] {
                XCTAssertTrue(KubernetesName.isLabel(name), "'\(name)' from '\(suite)'")
            }
            XCTAssertNoThrow(try files.shardsManifest(), suite)
        }
        XCTAssertEqual(KubernetesName.base(for: long).count, KubernetesName.maximumBaseLength - 1, "the cut drops a trailing '-'")
        XCTAssertFalse(KubernetesName.isLabel("-a"))
        XCTAssertFalse(KubernetesName.isLabel("A"))
        XCTAssertFalse(KubernetesName.isLabel(String(repeating: "a", count: 64)))
        XCTAssertTrue(KubernetesName.isSubdomain("results.team-a"))
        XCTAssertFalse(KubernetesName.isSubdomain("results..a"))
    }

    func testBadKubernetesInputsAreRefused() {
        func refuses(_ files: KubernetesJobFiles, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try files.shardsManifest(), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
            XCTAssertThrowsError(try files.mergeManifest(), line: line)
        }
        refuses(kubernetes(shards: 0), "--shards must be between 1 and 10000")
        refuses(kubernetes(image: "metabench test"), "--image must be an image reference")
        refuses(kubernetes(image: ""), "--image must be")
        refuses(kubernetes(claim: "Results"), "--claim must name a PersistentVolumeClaim")
        refuses(kubernetes(claim: "a_b"), "--claim must name")
        refuses(kubernetes(mountPath: "data"), "--mount-path must be an absolute path")
        refuses(kubernetes(mountPath: "/"), "--mount-path must be")
        refuses(kubernetes(mountPath: "/a:b"), "--mount-path must be")
        refuses(kubernetes(output: "/abs"), "--output must be a folder relative to the mount path")
        refuses(kubernetes(output: "../escape"), "--output must be")
        refuses(kubernetes(output: "."), "--output must be")
        refuses(kubernetes(output: "a\nb"), "--output holds a control character")
        refuses(kubernetes(memory: "4GB"), "--memory must be a Kubernetes quantity")
        refuses(kubernetes(memory: "0Gi"), "--memory must be")
        refuses(kubernetes(suite: "a\u{0}b"), "--suite holds a control character")
        refuses(kubernetes(suiteName: "a\u{7F}b"), "the suite name holds a control character")
        for memory in ["4Gi", "512Mi", "8G", "1.5Gi", "1000000"] {
            XCTAssertNoThrow(try kubernetes(memory: memory).shardsManifest(), memory)
        }
        XCTAssertEqual(kubernetes(mountPath: "/data/", output: "./a//b/").outputInContainer, "/data/a/b")
    }

    // MARK: - Helpers

    func writeExecutable(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(path, 0o755), 0)
    }

    func nulSeparated(_ path: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    func runBash(_ arguments: [String], environment: [String: String], directory: String? = nil) throws
        -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments
        process.environment = environment
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
