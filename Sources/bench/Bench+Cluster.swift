import ArgumentParser
import FewShotData
import Foundation
import Runner

extension Bench {
    /// `bench slurm --suite S --shards n`: writes the script that submits the suite to Slurm as an array job
    /// of n shards and a dependent merge job.
    struct Slurm: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slurm",
            abstract: "Write a script that runs a suite on Slurm: an array job of shards, then a merge job.",
            discussion: """
            The script (bash) submits an array job of --shards tasks, task i running `bench run` on shard i \
            of the suite's cells (bench reads the shard from Slurm's SLURM_ARRAY_TASK_ID and \
            SLURM_ARRAY_TASK_COUNT), and a job that runs `bench report` once every task has succeeded \
            (--dependency=afterok). The output folder must be on a filesystem the compute nodes share. The \
            jobs run in the current directory, with the bench executable given by --bench. Without --time, \
            each task's limit is the estimated time of the slowest shard × 1.5 + 5 minutes.
            """)

        @Option(name: .long, help: "A suite name (resolved to suites/<name>.yaml in the current directory) or a path to a suite file.")
        var suite: String

        @Option(name: .long, help: "Number of shards, one array task each (1...10000).")
        var shards: Int

        @Option(name: .long, help: "Shared output folder (default: results/<suite name>).")
        var output: String?

        @Option(name: .long, help: "Slurm partition (default: the cluster's default partition).")
        var partition: String?

        @Option(name: .long, help: "Time limit of each task: minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (default: from the estimate).")
        var time: String?

        @Option(name: .customLong("cpus-per-task"), help: "CPUs of each task, and bench's --threads.")
        var cpusPerTask = 2

        @Option(name: .long, help: "The bench executable the jobs run (default: this one).")
        var bench: String?

        @Option(name: .long, help: "Where to write the script (default: <output>/slurm-submit.sh).")
        var script: String?

        func validate() throws {
            try checkShards(shards)
            guard SuiteLimits.threads.contains(cpusPerTask) else {
                throw ValidationError("--cpus-per-task must be between \(SuiteLimits.threads.lowerBound) and \(SuiteLimits.threads.upperBound), got \(cpusPerTask)")
            }
            if suite.isEmpty { throw ValidationError("--suite needs a suite name or a path") }
            for (flag, value) in [("--output", output), ("--bench", bench), ("--script", script)] where value?.isEmpty == true {
                throw ValidationError("\(flag) needs a path")
            }
            if let partition {
                do { try SlurmJobFile.checkPartition(partition) } catch { throw ValidationError("\(error)") }
            }
            if let time {
                do { _ = try SlurmTime(parsing: time) } catch { throw ValidationError("\(error)") }
            }
        }

        func run() throws {
            let loaded = try Suite.load(try Suite.locate(suite), registry: .builtIn)
            let outputFolder = ClusterPaths.absolute(output ?? RunOptions.defaultOutputDirectory(for: loaded))
            let benchPath = try bench.map(ClusterPaths.absolute) ?? ClusterPaths.runningExecutable()
            guard FileManager.default.isExecutableFile(atPath: benchPath) else {
                throw BenchError("--bench: \(benchPath) is not an executable file (the jobs run this path: give one the compute nodes share)")
            }
            let scriptPath = ClusterPaths.absolute(script ?? outputFolder + "/slurm-submit.sh")
            let limit: SlurmTime, source: String
            if let time {
                limit = try SlurmTime(parsing: time)
                source = "as given with --time"
            } else {
                FileHandle.standardError.write(Data("estimating the time of each cell on this machine (--time skips this)\n".utf8))
                let estimate = try ClusterEstimate.shardSeconds(suite: loaded, shards: shards, output: outputFolder,
                                                                  threads: cpusPerTask)
                limit = try SlurmTime(estimate: estimate)
                source = "the slowest shard's estimate, \(SlurmTime.describe(estimate)), × 1.5 + 5 min"
            }
            let file = SlurmJobFile(
                suite: suite, suiteName: loaded.name, shards: shards, cpusPerTask: cpusPerTask, timeLimit: limit,
                timeSource: source, partition: partition, output: outputFolder,
                workingDirectory: FileManager.default.currentDirectoryPath, bench: benchPath, scriptPath: scriptPath)
            let text: String
            do { text = try file.script() } catch let error as JobFileError { throw BenchError(error.description) }
            try ClusterPaths.write(text, to: scriptPath, executable: true)
            print("wrote \(scriptPath): suite \(loaded.name) as an array job of \(shards) task\(shards == 1 ? "" : "s") "
                  + "(\(cpusPerTask) CPU\(cpusPerTask == 1 ? "" : "s") and \(limit.text) each: \(source)), then a merge job")
            print("submit it with: bash \(ShellQuote.word(scriptPath))")
            print("then follow the jobs with squeue --me; the report will be \(outputFolder)/REPORT.md, the logs in \(outputFolder)/slurm/")
        }
    }

    /// `bench k8s --suite S --shards n --image I --claim C`: writes an Indexed Job of n shards and a merge Job.
    struct Kubernetes: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "k8s",
            abstract: "Write Kubernetes manifests that run a suite: an Indexed Job of shards, then a merge Job.",
            discussion: """
            Writes <name>-shards.yaml, an Indexed Job whose pod i runs `bench run` on shard i of the suite's \
            cells (bench reads JOB_COMPLETION_INDEX), and <name>-merge.yaml, a Job that runs `bench report`; \
            <name> is metabench-<suite name> as a DNS label. Every pod mounts the PersistentVolumeClaim \
            --claim at --mount-path, and the output folder lies under it. The image must hold bench and the \
            suite (resolved in the image's working directory) and its dataset.
            """)

        @Option(name: .long, help: "A suite name (resolved to suites/<name>.yaml in the current directory and in the image) or a path to a suite file.")
        var suite: String

        @Option(name: .long, help: "Number of shards, one pod each (1...10000).")
        var shards: Int

        @Option(name: .long, help: "The container image, holding bench and the suite.")
        var image: String

        @Option(name: .long, help: "The PersistentVolumeClaim every pod mounts (the shared output).")
        var claim: String

        @Option(name: .customLong("mount-path"), help: "Where the claim is mounted in the containers.")
        var mountPath = "/data"

        @Option(name: .long, help: "Output folder, relative to the mount path (default: results/<suite name>).")
        var output: String?

        @Option(name: .long, help: "CPUs of each pod (request and limit), and bench's --threads.")
        var cpus = 2

        @Option(name: .long, help: "Memory of each pod (request and limit), a quantity such as 4Gi (default: none set).")
        var memory: String?

        @Option(name: .long, help: "The bench executable in the image.")
        var bench = "bench"

        @Option(name: .long, help: "Folder to write the manifests to (default: the current directory).")
        var manifests: String?

        func validate() throws {
            try checkShards(shards)
            guard SuiteLimits.threads.contains(cpus) else {
                throw ValidationError("--cpus must be between \(SuiteLimits.threads.lowerBound) and \(SuiteLimits.threads.upperBound), got \(cpus)")
            }
            if suite.isEmpty { throw ValidationError("--suite needs a suite name or a path") }
            if manifests?.isEmpty == true { throw ValidationError("--manifests needs a folder") }
            // The flags' own checks, before the suite is read (its name only names the jobs).
            do {
                try files(suiteName: "suite").validate()
            } catch let error as JobFileError {
                throw ValidationError(error.description)
            }
        }

        func files(suiteName: String) -> KubernetesJobFiles {
            KubernetesJobFiles(suite: suite, suiteName: suiteName, shards: shards, image: image, claim: claim,
                               mountPath: mountPath, output: output ?? "results/\(suiteName)", cpus: cpus, memory: memory,
                               bench: bench)
        }

        func run() throws {
            let loaded = try Suite.load(try Suite.locate(suite), registry: .builtIn)
            var jobFiles = files(suiteName: loaded.name)
            jobFiles.output = output ?? RunOptions.defaultOutputDirectory(for: loaded)
            let shardsText: String, mergeText: String
            do {
                shardsText = try jobFiles.shardsManifest()
                mergeText = try jobFiles.mergeManifest()
            } catch let error as JobFileError {
                throw BenchError(error.description)
            }
            let folder = ClusterPaths.absolute(manifests ?? FileManager.default.currentDirectoryPath)
            let shardsPath = folder + "/" + jobFiles.shardsFileName, mergePath = folder + "/" + jobFiles.mergeFileName
            try ClusterPaths.write(shardsText, to: shardsPath, executable: false)
            try ClusterPaths.write(mergeText, to: mergePath, executable: false)
            print("wrote \(shardsPath): Indexed Job \(jobFiles.shardsJobName), \(shards) pod\(shards == 1 ? "" : "s") of "
                  + "\(cpus) CPU\(cpus == 1 ? "" : "s")\(memory.map { " and \($0)" } ?? ""), output \(jobFiles.outputInContainer) on claim \(claim)")
            print("wrote \(mergePath): Job \(jobFiles.mergeJobName), bench report \(jobFiles.outputInContainer)")
            print("run them with:")
            print("  kubectl apply -f \(ShellQuote.word(shardsPath))")
            print("  kubectl wait --for=condition=complete --timeout=-1s job/\(jobFiles.shardsJobName)")
            print("  kubectl apply -f \(ShellQuote.word(mergePath))")
        }
    }
}

private func checkShards(_ shards: Int) throws {
    let range = SlurmJobFile.shardRange
    guard range.contains(shards) else {
        throw ValidationError("--shards must be between \(range.lowerBound) and \(range.upperBound), got \(shards)")
    }
}

/// Paths and files of the job-file commands.
enum ClusterPaths {
    /// `path` made absolute against the current directory, `.` and `..` resolved.
    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// The absolute path of the running bench.
    static func runningExecutable() throws -> String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"), path.hasPrefix("/") {
            return path
        }
        guard let first = CommandLine.arguments.first, first.contains("/") else {
            throw BenchError("cannot tell where this bench executable is: pass --bench PATH")
        }
        return absolute(first)
    }

    /// Writes `text` to `path` through a temporary file (the folder is created), mode 755 or 644.
    static func write(_ text: String, to path: String, executable: Bool) throws {
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw BenchError("cannot create the folder \(folder): \(error.localizedDescription)")
        }
        do {
            try AtomicWrite.replace(path) { temporary in
                do {
                    try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
                } catch {
                    throw BenchError("cannot write \(path): \(error.localizedDescription)")
                }
                guard chmod(temporary, executable ? 0o755 : 0o644) == 0 else {
                    throw BenchError("cannot write \(path): cannot set the file's mode: \(String(cString: strerror(errno)))")
                }
            }
        } catch let error as AtomicWriteError {
            throw BenchError("cannot write \(error.path): \(error.reason)")
        }
    }
}
