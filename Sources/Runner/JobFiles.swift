import Foundation

/// The Slurm submission script `bench slurm` writes: an array job of one task per shard, and a merge job
/// that runs `bench report` once every task has succeeded (`afterok`).
///
/// A pure renderer: the inputs are checked and turned into text, nothing is read or written. The script
/// submits with `sbatch --parsable`, the job scripts on standard input through quoted here-documents (so
/// nothing in them is expanded at submission), and prints `array job ID` and `merge job ID`, one a line.
public struct SlurmJobFile: Sendable, Equatable {
    /// The `--suite` argument the tasks pass to `bench run` (a name or a path, resolved in `workingDirectory`).
    public var suite: String
    /// The suite's name, for the job names and the header.
    public var suiteName: String
    public var shards: Int
    public var cpusPerTask: Int
    public var timeLimit: SlurmTime
    /// How `timeLimit` was chosen, for the header (e.g. "the estimate ... × 1.5 + 5 min").
    public var timeSource: String
    /// A partition (or a comma-separated list of them); nil leaves the cluster's default.
    public var partition: String?
    /// The shared output folder (absolute): cells, reports, and the tasks' logs in `slurm/`.
    public var output: String
    /// The folder the jobs run in (absolute).
    public var workingDirectory: String
    /// The `bench` executable the jobs run (absolute).
    public var bench: String
    /// Where the script is written (absolute), for the header's "how to run it".
    public var scriptPath: String
    public var version: String

    public init(suite: String, suiteName: String, shards: Int, cpusPerTask: Int, timeLimit: SlurmTime,
                timeSource: String, partition: String? = nil, output: String, workingDirectory: String,
                bench: String, scriptPath: String, version: String = MetaBenchInfo.version) {
        self.suite = suite
        self.suiteName = suiteName
        self.shards = shards
        self.cpusPerTask = cpusPerTask
        self.timeLimit = timeLimit
        self.timeSource = timeSource
        self.partition = partition
        self.output = output
        self.workingDirectory = workingDirectory
        self.bench = bench
        self.scriptPath = scriptPath
        self.version = version
    }

    /// The most array tasks (and Kubernetes indexes) a job file asks for.
    public static let shardRange = 1...Shard.maximumCount
    /// The merge job's time limit: `bench report` reads the cells and writes four files.
    public static let mergeTime = SlurmTime(seconds: 600)

    /// The array job's name, `metabench-<suite>` with the characters `#SBATCH` lines take.
    public var jobName: String { "metabench-" + JobNames.slurm(suiteName) }

    /// Checks the inputs; every problem names the flag it came from.
    public func validate() throws {
        guard Self.shardRange.contains(shards) else {
            throw JobFileError("--shards must be between \(Self.shardRange.lowerBound) and \(Self.shardRange.upperBound), got \(shards)")
        }
        guard SuiteLimits.threads.contains(cpusPerTask) else {
            throw JobFileError("--cpus-per-task must be between \(SuiteLimits.threads.lowerBound) and \(SuiteLimits.threads.upperBound) (bench's --threads), got \(cpusPerTask)")
        }
        guard (1...SlurmTime.maximumSeconds).contains(timeLimit.seconds) else {
            throw JobFileError("the time limit must be between 1 s and 365 days, got \(timeLimit.seconds) s")
        }
        if let partition { try Self.checkPartition(partition) }
        try JobNames.checkText(suite, "--suite")
        try JobNames.checkText(suiteName, "the suite name")
        for (path, what) in [(output, "the output folder"), (workingDirectory, "the working directory"),
                             (bench, "the bench executable"), (scriptPath, "the script path")] {
            try JobNames.checkAbsolutePath(path, what)
        }
        // Slurm turns %-patterns into job ids in --output (%% is a percent sign) and stops expanding
        // them all when the name holds a backslash, so the logs would all go to one file.
        guard !output.contains("\\") else {
            throw JobFileError("the output folder \(output) holds a backslash, which Slurm's --output patterns cannot take: choose another --output")
        }
    }

    /// A partition name as `#SBATCH --partition` takes it: letters, digits, `_ . -`, commas between names.
    public static func checkPartition(_ partition: String) throws {
        let allowed = partition.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.,-".unicodeScalars.contains($0))
        }
        guard !partition.isEmpty, allowed, !partition.hasPrefix(","), !partition.hasSuffix(","), !partition.contains(",,") else {
            throw JobFileError("--partition must be a partition name or a comma-separated list of them (letters, digits, '_', '.', '-'), got '\(partition)'")
        }
    }

    /// The submission script (bash).
    public func script() throws -> String {
        try validate()
        let logs = Self.slurmPattern(output) + "/slurm"
        let mergeTime = min(timeLimit, Self.mergeTime)
        let partitionLine = partition.map { "#SBATCH --partition=\($0)\n" } ?? ""
        let quotedScript = ShellQuote.word(scriptPath)
        let mergeByHand = ShellQuote.word(ShellQuote.word(bench) + " report " + ShellQuote.word(output))
        return """
        #!/usr/bin/env bash
        # Submits the MetaBench suite \(suiteName) to Slurm (written by `bench slurm`, MetaBench \(version)):
        #   an array job of \(shards) task\(shards == 1 ? "" : "s"), task i running shard i of \(shards), \(cpusPerTask) CPU\(cpusPerTask == 1 ? "" : "s") each;
        #   time limit \(timeLimit.text) per task: \(timeSource);
        #   then a merge job that runs `bench report` once every task has succeeded.
        # Run it where sbatch works; the output folder must be on a filesystem the compute nodes share:
        #   bash \(quotedScript)
        # It prints "array job ID" and "merge job ID". Logs: \(output)/slurm/; the report: \(output)/REPORT.md.
        # A task stopped at its time limit keeps its finished cells and checkpoints the one in training:
        # run this file again to resume.
        set -euo pipefail

        command -v sbatch >/dev/null 2>&1 || { echo "sbatch not found: run this file where Slurm's commands are installed" >&2; exit 1; }
        mkdir -p -- \(ShellQuote.word(output + "/slurm"))

        # sbatch --parsable prints "ID" or "ID;CLUSTER".
        job_id() {
          local id=${1%%;*}
          [[ $id =~ ^[0-9]+$ ]] || { echo "sbatch printed '$1', not a job id" >&2; return 1; }
          echo "$id"
        }

        array_job=$(sbatch --parsable --output=\(ShellQuote.word(logs + "/%A_%a.out")) --chdir=\(ShellQuote.word(workingDirectory)) <<'METABENCH_SHARDS'
        #!/usr/bin/env bash
        #SBATCH --job-name=\(jobName)
        #SBATCH --array=0-\(shards - 1)
        #SBATCH --ntasks=1
        #SBATCH --cpus-per-task=\(cpusPerTask)
        #SBATCH --time=\(timeLimit.text)
        \(partitionLine)# bench takes the shard from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT.
        exec \(ShellQuote.word(bench)) run --suite \(ShellQuote.word(suite)) --output \(ShellQuote.word(output)) --threads \(cpusPerTask)
        METABENCH_SHARDS
        )
        array_job=$(job_id "$array_job")
        echo "array job $array_job"

        if ! merge_job=$(sbatch --parsable --dependency="afterok:$array_job" --kill-on-invalid-dep=yes --output=\(ShellQuote.word(logs + "/%j-merge.out")) --chdir=\(ShellQuote.word(workingDirectory)) <<'METABENCH_MERGE'
        #!/usr/bin/env bash
        #SBATCH --job-name=\(jobName)-merge
        #SBATCH --ntasks=1
        #SBATCH --cpus-per-task=1
        #SBATCH --time=\(mergeTime.text)
        \(partitionLine)exec \(ShellQuote.word(bench)) report \(ShellQuote.word(output))
        METABENCH_MERGE
        ); then
          echo "the merge job was not submitted; once array job $array_job has finished, run:" >&2
          printf '  %s\\n' \(mergeByHand) >&2
          exit 1
        fi
        merge_job=$(job_id "$merge_job")
        echo "merge job $merge_job"

        """
    }

    /// `path` as a literal part of a Slurm file-name pattern (`%` doubled).
    static func slurmPattern(_ path: String) -> String { path.replacingOccurrences(of: "%", with: "%%") }
}

/// A Slurm time limit, in whole seconds.
public struct SlurmTime: Sendable, Equatable, Comparable, CustomStringConvertible {
    public let seconds: Int

    /// The longest limit MetaBench writes: 365 days.
    public static let maximumSeconds = 365 * 86_400

    public init(seconds: Int) { self.seconds = seconds }

    /// The limit for a shard estimated to take `estimate` seconds: estimate × 1.5 + 5 minutes, rounded up to
    /// whole minutes.
    public init(estimate: Double) throws {
        guard estimate.isFinite, estimate >= 0 else {
            throw JobFileError("the time estimate is not a duration (\(estimate) s): pass --time")
        }
        let padded = (estimate * 1.5 + 300) / 60
        guard padded <= Double(Self.maximumSeconds / 60) else {
            throw JobFileError("the estimated time of the slowest shard (\(SlurmTime.describe(estimate))) gives a limit above 365 days: use more --shards or pass --time")
        }
        seconds = Int(padded.rounded(.up)) * 60
    }

    /// Parses the forms `sbatch --time` takes: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
    public init(parsing text: String) throws {
        let usage = "--time must be minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (e.g. 90, 1:30:00, 2-00:00:00), greater than 0 and at most 365 days; got '\(text)'"
        func number(_ part: Substring) throws -> Int {
            guard !part.isEmpty, part.count <= 9, part.allSatisfy({ ("0"..."9").contains($0) }), let value = Int(part) else {
                throw JobFileError(usage)
            }
            return value
        }
        let dayParts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard dayParts.count <= 2 else { throw JobFileError(usage) }
        let days = dayParts.count == 2 ? try number(dayParts[0]) : 0
        let clock = try dayParts[dayParts.count - 1].split(separator: ":", omittingEmptySubsequences: false).map(number)
        var hours = 0, minutes = 0, secs = 0
        switch (dayParts.count, clock.count) {
        case (1, 1): minutes = clock[0]
        case (1, 2): (minutes, secs) = (clock[0], clock[1])
        case (1, 3): (hours, minutes, secs) = (clock[0], clock[1], clock[2])
        case (2, 1): hours = clock[0]
        case (2, 2): (hours, minutes) = (clock[0], clock[1])
        case (2, 3): (hours, minutes, secs) = (clock[0], clock[1], clock[2])
        default: throw JobFileError(usage)
        }
        // Only the leading field may exceed its clock range (Slurm reads 90:00 as 90 minutes).
        let leading = dayParts.count == 2 ? 0 : clock.count == 3 ? 1 : 2
        if (leading < 1 && hours >= 24) || (leading < 2 && minutes >= 60) || (clock.count > 1 && secs >= 60) {
            throw JobFileError(usage)
        }
        // Each field has at most 9 digits, so the sum cannot overflow.
        let total = days * 86_400 + hours * 3600 + minutes * 60 + secs
        guard total > 0, total <= Self.maximumSeconds else { throw JobFileError(usage) }
        seconds = total
    }

    /// The limit as `#SBATCH --time` takes it: `MM:SS` under an hour, `D-HH:MM:SS` from an hour on.
    public var text: String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if seconds < 3600 { return "\(two(seconds / 60)):\(two(seconds % 60))" }
        return "\(seconds / 86_400)-\(two(seconds / 3600 % 24)):\(two(seconds / 60 % 60)):\(two(seconds % 60))"
    }

    public var description: String { text }

    public static func < (a: SlurmTime, b: SlurmTime) -> Bool { a.seconds < b.seconds }

    /// A duration in seconds for people: `42 s`, `6 min`, `3.2 h`.
    public static func describe(_ seconds: Double) -> String {
        if !seconds.isFinite { return "\(seconds) s" }
        if seconds < 60 { return "\(Int(seconds.rounded(.up))) s" }
        if seconds < 3600 { return "\(Int((seconds / 60).rounded(.up))) min" }
        return String(format: "%.1f h", seconds / 3600)
    }
}

/// The Kubernetes manifests `bench k8s` writes: an Indexed Job whose pod i runs shard i of n, and a Job
/// that runs `bench report` on the shared volume once the first has completed.
///
/// A pure renderer. Names are DNS-1123 labels derived from the suite name (`KubernetesName`); every string
/// a user gave is written as a double-quoted YAML scalar.
public struct KubernetesJobFiles: Sendable, Equatable {
    /// The `--suite` argument the containers pass to `bench run` (resolved in the image's working directory).
    public var suite: String
    public var suiteName: String
    public var shards: Int
    public var image: String
    /// The PersistentVolumeClaim every pod mounts.
    public var claim: String
    public var mountPath: String
    /// The output folder relative to the mount.
    public var output: String
    /// CPUs requested (and the limit) per pod; also bench's --threads.
    public var cpus: Int
    /// A memory quantity (`4Gi`) requested and set as the limit; nil sets none.
    public var memory: String?
    /// The `bench` executable inside the image.
    public var bench: String
    public var version: String

    public init(suite: String, suiteName: String, shards: Int, image: String, claim: String,
                mountPath: String = "/data", output: String, cpus: Int = 2, memory: String? = nil,
                bench: String = "bench", version: String = MetaBenchInfo.version) {
        self.suite = suite
        self.suiteName = suiteName
        self.shards = shards
        self.image = image
        self.claim = claim
        self.mountPath = mountPath
        self.output = output
        self.cpus = cpus
        self.memory = memory
        self.bench = bench
        self.version = version
    }

    /// Seconds a pod has between SIGTERM and SIGKILL: bench checkpoints the cell in training and exits.
    public static let terminationGracePeriod = 60
    /// Retries of each shard (`backoffLimitPerIndex`); the whole Job allows this many per shard.
    public static let retriesPerShard = 3

    /// `metabench-<suite>`, short enough that `<name>-shards-<index>` is a valid hostname.
    public var name: String { KubernetesName.base(for: suiteName) }
    public var shardsJobName: String { name + "-shards" }
    public var mergeJobName: String { name + "-merge" }
    public var shardsFileName: String { shardsJobName + ".yaml" }
    public var mergeFileName: String { mergeJobName + ".yaml" }

    /// The output folder inside the containers.
    public var outputInContainer: String {
        let mount = mountPath.hasSuffix("/") ? String(mountPath.dropLast()) : mountPath
        let parts = output.split(separator: "/").filter { $0 != "." }
        return ([mount] + parts.map(String.init)).joined(separator: "/")
    }

    public func validate() throws {
        guard SlurmJobFile.shardRange.contains(shards) else {
            throw JobFileError("--shards must be between \(SlurmJobFile.shardRange.lowerBound) and \(SlurmJobFile.shardRange.upperBound), got \(shards)")
        }
        guard SuiteLimits.threads.contains(cpus) else {
            throw JobFileError("--cpus must be between \(SuiteLimits.threads.lowerBound) and \(SuiteLimits.threads.upperBound) (bench's --threads), got \(cpus)")
        }
        try JobNames.checkText(suite, "--suite")
        try JobNames.checkText(suiteName, "the suite name")
        try JobNames.checkText(bench, "--bench")
        guard !image.isEmpty, !image.contains(where: { $0.isWhitespace }), image.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
            throw JobFileError("--image must be an image reference (no spaces or control characters), got '\(image)'")
        }
        guard KubernetesName.isSubdomain(claim) else {
            throw JobFileError("--claim must name a PersistentVolumeClaim (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters), got '\(claim)'")
        }
        try JobNames.checkText(mountPath, "--mount-path")
        guard mountPath.hasPrefix("/"), mountPath != "/", !mountPath.contains(":"),
              !mountPath.split(separator: "/").contains("..") else {
            throw JobFileError("--mount-path must be an absolute path other than / without ':' or '..', got '\(mountPath)'")
        }
        try JobNames.checkText(output, "--output")
        let parts = output.split(separator: "/").filter { $0 != "." }
        guard !output.hasPrefix("/"), !parts.isEmpty, !parts.contains("..") else {
            throw JobFileError("--output must be a folder relative to the mount path (\(mountPath)), without '..', got '\(output)'")
        }
        if let memory, !KubernetesName.isMemoryQuantity(memory) {
            throw JobFileError("--memory must be a Kubernetes quantity such as 4Gi, 512Mi or 8G, got '\(memory)'")
        }
    }

    /// The Indexed Job of the shards.
    public func shardsManifest() throws -> String {
        try validate()
        let command = [bench, "run", "--suite", suite, "--output", outputInContainer, "--shards", "\(shards)",
                       "--threads", "\(cpus)"]
        return """
        # Kubernetes Job for the MetaBench suite \(suiteName), written by `bench k8s` (MetaBench \(version)):
        # an Indexed Job of \(shards) pod\(shards == 1 ? "" : "s"); pod i runs shard i of \(shards) (from JOB_COMPLETION_INDEX) and writes its cells
        # to \(outputInContainer) on the PersistentVolumeClaim \(claim). Apply it, wait for it to complete, then apply
        # the merge Job, which writes the report:
        #   kubectl apply -f \(shardsFileName)
        #   kubectl wait --for=condition=complete --timeout=-1s job/\(shardsJobName)   # -1s: wait up to a week
        #   kubectl apply -f \(mergeFileName)
        # A pod stopped early (eviction, preemption) checkpoints its cell within \(Self.terminationGracePeriod) s; its replacement resumes it.
        # MetaBench checks this file against the Kubernetes API schemas; it has not run it on a live cluster.
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: \(shardsJobName)
        \(labels(indent: 2))
        spec:
          completionMode: Indexed
          completions: \(shards)
          parallelism: \(shards)
          backoffLimitPerIndex: \(Self.retriesPerShard)
          backoffLimit: \(Self.retriesPerShard * shards)
          podFailurePolicy:
            rules:
              # Evicted or preempted pods do not count as failures (their replacement resumes the cell).
              - action: Ignore
                onPodConditions:
                  - type: DisruptionTarget
          template:
            metadata:
        \(labels(indent: 6))
            spec:
        \(podSpec(command: command, cpus: cpus, memory: memory))
        """
    }

    /// The Job that merges the shards' cells into the report.
    public func mergeManifest() throws -> String {
        try validate()
        return """
        # Kubernetes Job for the MetaBench suite \(suiteName), written by `bench k8s` (MetaBench \(version)):
        # merges the cells the shards wrote into \(outputInContainer) (REPORT.md, results.json, results.csv,
        # learning-curves.svg). Apply it once the shards' Job has completed:
        #   kubectl wait --for=condition=complete --timeout=-1s job/\(shardsJobName)
        #   kubectl apply -f \(mergeFileName)
        #   kubectl logs job/\(mergeJobName)
        # MetaBench checks this file against the Kubernetes API schemas; it has not run it on a live cluster.
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: \(mergeJobName)
        \(labels(indent: 2))
        spec:
          backoffLimit: 2
          template:
            metadata:
        \(labels(indent: 6))
            spec:
        \(podSpec(command: [bench, "report", outputInContainer], cpus: 1, memory: memory))
        """
    }

    private func labels(indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        return """
        \(pad)labels:
        \(pad)  app.kubernetes.io/name: metabench
        \(pad)  app.kubernetes.io/instance: \(name)
        """
    }

    /// The pod spec, indented for `template.spec`.
    private func podSpec(command: [String], cpus: Int, memory: String?) -> String {
        let quantities = ["cpu: \"\(cpus)\""] + (memory.map { ["memory: \(YAMLQuote.string($0))"] } ?? [])
        let resources = quantities.map { "              \($0)" }.joined(separator: "\n")
        return """
              restartPolicy: Never
              terminationGracePeriodSeconds: \(Self.terminationGracePeriod)
              containers:
                - name: bench
                  image: \(YAMLQuote.string(image))
                  command: [\(command.map(YAMLQuote.string).joined(separator: ", "))]
                  resources:
                    requests:
        \(resources)
                    limits:
        \(resources)
                  volumeMounts:
                    - name: results
                      mountPath: \(YAMLQuote.string(mountPath))
              volumes:
                - name: results
                  persistentVolumeClaim:
                    claimName: \(YAMLQuote.string(claim))

        """
    }
}

/// Kubernetes object names: DNS-1123 labels and subdomains, and resource quantities.
public enum KubernetesName {
    /// The longest base name: `<base>-shards-<index>` (index up to 9999) must stay a 63-character label.
    public static let maximumBaseLength = 63 - "-shards".count - "-9999".count

    /// `metabench-<suite>`: lowercase, `[a-z0-9-]`, runs of other characters as one `-`, cut to
    /// `maximumBaseLength`, never ending in `-`.
    public static func base(for suiteName: String) -> String {
        let sanitized = label(suiteName)
        let joined = sanitized.isEmpty ? "metabench" : "metabench-" + sanitized
        var cut = String(joined.prefix(maximumBaseLength))
        while cut.hasSuffix("-") { cut.removeLast() }
        return cut
    }

    /// `text` as the characters of a DNS-1123 label: lowercase ASCII letters and digits, every run of other
    /// characters as one `-`, no `-` at either end (possibly empty; not cut to length).
    public static func label(_ text: String) -> String {
        var out = ""
        var pendingDash = false
        for scalar in text.lowercased().unicodeScalars {
            if scalar.isASCII, ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                if pendingDash, !out.isEmpty { out.append("-") }
                pendingDash = false
                out.unicodeScalars.append(scalar)
            } else {
                pendingDash = true
            }
        }
        return out
    }

    /// Whether `name` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, starting and ending with a letter or digit.
    public static func isLabel(_ name: String) -> Bool {
        (1...63).contains(name.utf8.count) && isDNSRun(name, allowingDots: false)
    }

    /// Whether `name` is a DNS-1123 subdomain (most object names, PersistentVolumeClaims' included): at
    /// most 253 characters, labels joined by dots.
    public static func isSubdomain(_ name: String) -> Bool {
        (1...253).contains(name.utf8.count)
            && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
    }

    private static func isDNSRun(_ name: String, allowingDots: Bool) -> Bool {
        let bytes = Array(name.utf8)
        func alphanumeric(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == 0x2D || (allowingDots && $0 == 0x2E) }
    }

    /// Whether `text` is a memory quantity: digits (with an optional fraction) and an optional suffix
    /// (`Ki Mi Gi Ti Pi Ei`, `k M G T P E`), at most 20 characters.
    public static func isMemoryQuantity(_ text: String) -> Bool {
        guard (1...20).contains(text.count) else { return false }
        let suffixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"]
        var number = Substring(text)
        if let suffix = suffixes.first(where: { text.hasSuffix($0) }) { number = number.dropLast(suffix.count) }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { ("0"..."9").contains($0) } }) else {
            return false
        }
        return number.contains { $0 != "0" && $0 != "." }
    }
}

/// Words quoted for bash: single quotes, each `'` written as `'\''`.
public enum ShellQuote {
    public static func word(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}

/// Strings as YAML double-quoted scalars (the JSON escapes, which YAML 1.1 and 1.2 share).
public enum YAMLQuote {
    public static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value):
                out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Checks shared by the job files.
enum JobNames {
    /// `name` as a Slurm job name: characters other than `[A-Za-z0-9._-]` as `-`, at most 64.
    static func slurm(_ name: String) -> String {
        let mapped = name.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
                ? Character(scalar) : "-"
        }
        let text = String(mapped.prefix(64))
        return text.isEmpty ? "suite" : text
    }

    /// Text that goes into a script or manifest line: not empty, no control characters (a line break
    /// would end a here-document or a comment).
    static func checkText(_ text: String, _ what: String) throws {
        guard !text.isEmpty else { throw JobFileError("\(what) is empty") }
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw JobFileError("\(what) holds a control character (a line break or tab, say): \(YAMLQuote.string(text))")
        }
    }

    static func checkAbsolutePath(_ path: String, _ what: String) throws {
        try checkText(path, what)
        guard path.hasPrefix("/") else { throw JobFileError("\(what) must be an absolute path, got \(path)") }
    }
}

/// An input a job file cannot hold, with the reason (and the flag it came from).
public struct JobFileError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
