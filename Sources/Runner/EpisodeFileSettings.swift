import FewShotData
import Foundation
import Learners

/// A published episode set a suite evaluates every learner on (`evaluation: {episodes_file: path}`): its
/// own setting, named after the file (`published-5w1s.h5` → `published-5w1s`).
///
/// Each learner is evaluated on it with the model trained for the first setting it runs in (its *serving*
/// setting, recorded as the cell's `trainedWith`): one training, one more evaluation. A learner whose model
/// depends on the evaluation shape (MAML's head) must be served by a setting with the file's ways.
public struct EpisodeFileSpec: Sendable, Equatable {
    /// The setting's name: the file's base name without its extension.
    public var name: String
    /// As written in the suite: relative paths are resolved against the current directory.
    public var path: String
    /// The suite-file line (for error messages).
    public var line: Int?
    /// What the file holds, read when the suite is loaded.
    public var summary: EpisodeFileSummary

    public init(name: String, path: String, line: Int? = nil, summary: EpisodeFileSummary) {
        self.name = name
        self.path = path
        self.line = line
        self.summary = summary
    }

    /// Reads the summary of the file at `path`; an unreadable file or one that is not an episode file is an
    /// error naming the suite's line.
    public static func load(path: String, line: Int?, suiteFile: String) throws -> EpisodeFileSpec {
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        if let problem = SuiteLimits.nameProblem(name, maxBytes: SuiteLimits.labelBytes, commas: true) {
            throw SuiteError(file: suiteFile, line: line,
                             "evaluation.episodes_file: the setting is named after the file, and '\(SuiteParser.printable(name))' \(problem)")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw SuiteError(file: suiteFile, line: line,
                             "evaluation.episodes_file: no such file: \(path) (relative paths are resolved against the current directory, \(FileManager.default.currentDirectoryPath))")
        }
        guard !isFolder.boolValue else {
            throw SuiteError(file: suiteFile, line: line, "evaluation.episodes_file: \(path) is a folder; name a metabench-episodes-v1 .h5 file")
        }
        do {
            let summary = try EpisodeFile.summary(path)
            guard summary.count > 0 else {
                throw SuiteError(file: suiteFile, line: line, "evaluation.episodes_file: \(path) holds no episodes")
            }
            if let empty = summary.shapes.first(where: { $0.queries == 0 }) {
                throw SuiteError(file: suiteFile, line: line,
                                 "evaluation.episodes_file: \(path) holds \(empty.episodes) episode\(empty.episodes == 1 ? "" : "s") with no queries (\(empty.name)), which cannot be scored")
            }
            return EpisodeFileSpec(name: name, path: path, line: line, summary: summary)
        } catch let error as SuiteError {
            throw error
        } catch {
            throw SuiteError(file: suiteFile, line: line, "evaluation.episodes_file: \(error)")
        }
    }
}

/// An episode file as a cell's configuration records it: the path, a digest of its bytes (a changed file is
/// evaluated again) and what it holds.
public struct EpisodeFileConfig: Sendable, Codable, Equatable {
    public var path: String
    /// A 64-bit hash of the file's bytes (16 hex digits).
    public var digest: String
    public var summary: EpisodeFileSummary

    /// Hashes the file at `spec.path`.
    public init(_ spec: EpisodeFileSpec) throws {
        path = spec.path
        summary = spec.summary
        digest = try Self.digest(ofFileAt: spec.path)
    }

    /// `StableHash` over the file's bytes, read in blocks of 4 MiB (8 bytes at a time, the tail padded with
    /// zeros, then the length).
    static func digest(ofFileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw RunnerError.invalidOption("cannot read the episode file \(path)")
        }
        defer { try? handle.close() }
        var hash = StableHash()
        var length: UInt64 = 0
        while let block = try handle.read(upToCount: 4 << 20), !block.isEmpty {
            length &+= UInt64(block.count)
            block.withUnsafeBytes { raw in
                let words = raw.count / 8
                for w in 0..<words { hash.combine(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self))) }
                var tail: UInt64 = 0
                for (i, byte) in raw[(words * 8)...].enumerated() { tail |= UInt64(byte) << UInt64(8 * i) }
                if raw.count % 8 != 0 { hash.combine(tail) }
            }
        }
        hash.combine(length)
        return String(hash.value, radix: 16).leftPadded(to: 16, with: "0")
    }

    /// The report's sentence on the file: where it is, its digest, and what it holds.
    public func note(setting: String) -> String {
        "setting \(setting) is the episode file \(path) (digest \(digest)): \(summary); each learner is evaluated on it with the model trained for its first setting"
    }
}

extension Suite {
    /// The setting whose trained model serves `entry`'s episode-file cells: the first suite setting it runs in.
    public func servingSetting(for entry: LearnerEntry) -> SettingSpec? {
        settings.first { entry.runs(in: $0) }
    }

    /// Checks the suite's episode files: their names are distinct and name no other setting, and every learner
    /// evaluated on one has a serving setting whose model serves the file's episodes.
    func checkEpisodeFiles(registry: LearnerRegistry) throws {
        var names = Set<String>()
        for spec in evaluation.episodeFiles {
            guard names.insert(spec.name).inserted else {
                throw SuiteError(file: file, line: spec.line,
                                 "evaluation.episodes_file: two files are named '\(spec.name)'; each file is a setting named after the file, so rename one")
            }
            if let clash = settings.first(where: { $0.id == spec.name || $0.shortName == spec.name }) {
                throw SuiteError(file: file, line: spec.line,
                                 "evaluation.episodes_file: \(spec.path) would be a setting named '\(spec.name)', which is already setting \(clash.id) of the suite; rename the file")
            }
            for entry in learners where entry.runs(inSettingNamed: spec.name) {
                guard let serving = servingSetting(for: entry) else {
                    throw SuiteError(file: file, line: entry.line,
                                     "learner \(entry.label) runs in no setting of the suite, so no trained model serves the episode file \(spec.name); add a setting to its settings:")
                }
                let anyShape = (try? registry.descriptor(named: entry.name))?.evaluatesAnyEpisodeShape ?? false
                if !anyShape, let other = spec.summary.ways.first(where: { $0 != serving.ways }) {
                    throw SuiteError(file: file, line: entry.line,
                                     "learner \(entry.label) is evaluated on the episode file \(spec.name) with its model for setting \(serving.id), whose output has \(serving.ways) ways, but the file holds \(other)-way episodes (\(spec.summary)); list its settings: without \(spec.name), or put a \(other)-way setting first")
                }
            }
        }
    }

    /// The suite with one more episode file evaluated (`bench evaluate --episodes-file`), checked as a suite
    /// file's `episodes_file` is.
    public func adding(episodesFile path: String, registry: LearnerRegistry = .builtIn) throws -> Suite {
        var suite = self
        suite.evaluation.episodeFiles.append(try EpisodeFileSpec.load(path: path, line: nil, suiteFile: file))
        try suite.checkEpisodeFiles(registry: registry)
        return suite
    }
}
