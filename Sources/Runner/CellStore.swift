import Foundation

/// What a suite's output folder should hold, written as `plan.json` by every run and shard before it
/// trains: the suite's facts (dataset, notes, published numbers) and every cell with its file and
/// fingerprint. `bench report` builds the reports from it and whatever cells are there. Nothing in it
/// depends on the machine or the time, so every shard writes the same bytes.
public struct PlanManifest: Sendable, Codable, Equatable {
    public static let fileName = "plan.json"
    public static let currentFormat = 1

    public struct Cell: Sendable, Codable, Equatable {
        public var label: String
        public var setting: String
        public var seed: UInt64
        public var file: String
        public var fingerprint: String

        public var key: CellKey { CellKey(label: label, setting: setting, seed: seed) }
    }

    public var format: Int
    public var suite: String
    public var suiteFile: String
    public var exact: Bool
    public var dataset: DatasetInfo
    public var seeds: [UInt64]
    public var notes: [String]
    /// The suite's published accuracies (percent), by learner label, then setting id: facts of the suite,
    /// not of any cell, so editing them refreshes every report.
    public var published: [String: [String: Double]]
    public var cells: [Cell]
}

/// A suite's output folder: `cells/` (one JSON file per finished cell, reused by fingerprint, and a
/// checkpoint per cell in training), `plan.json`, the reports. Files are written atomically. A whole-suite
/// run holds the folder's lock alone; shards of one suite hold it together (shared) and each cell they train
/// exclusively, so two processes never write one cell and a whole-suite run never mixes with shards.
public final class CellStore {
    public let folder: String
    public let cellsFolder: String
    private var lock: OutputLock?

    /// Locks `folder` (creating it): `shared` for a shard. Throws `RunnerError.outputBusy` when another run
    /// holds it in a way that excludes this one.
    public init(folder: String, shared: Bool) throws {
        self.folder = folder
        self.cellsFolder = (folder as NSString).appendingPathComponent("cells")
        lock = try OutputLock.acquire(folder: folder, fileName: OutputLock.fileName, shared: shared) {
            RunnerError.outputBusy(folder: folder, holder: $0)
        }
    }

    /// Reads the folder without locking it (reports).
    public init(readingFolder folder: String) {
        self.folder = folder
        self.cellsFolder = (folder as NSString).appendingPathComponent("cells")
        lock = nil
    }

    public func release() {
        lock?.release()
        lock = nil
    }

    deinit { release() }

    /// Deletes temporaries that killed writers left; only a whole-suite run does it (it is alone in the
    /// folder: a shard on another host may be writing one).
    public func removeStaleTemporaries() -> [String] {
        guard let lock, !lock.shared else { return [] }
        return AtomicFile.removeStaleTemporaries(in: folder)
    }

    public func path(of key: CellKey) -> String { (cellsFolder as NSString).appendingPathComponent(key.fileName) }

    /// Where a cell in training keeps its checkpoint.
    public func checkpointPath(of key: CellKey) -> String {
        let name = key.fileName
        return (cellsFolder as NSString).appendingPathComponent(
            String(name.dropLast(".json".count)) + ".checkpoint.h5")
    }

    /// Where the model a training group trained is kept (`TrainedModel`), named after the group's first cell.
    public func modelPath(of key: CellKey) -> String {
        ((folder as NSString).appendingPathComponent("models") as NSString)
            .appendingPathComponent(String(key.fileName.dropLast(".json".count)) + ".h5")
    }

    /// The stored cell of `key`, checked against `fingerprint`.
    func read(_ key: CellKey, fingerprint: String) -> StoredCell {
        StoredCell.read(at: path(of: key), fingerprint: fingerprint)
    }

    public func write(_ cell: CellResult) throws {
        try AtomicFile.writeJSON(cell, to: path(of: cell.key))
    }

    /// An exclusive claim on one cell while it trains.
    public func claim(_ key: CellKey) throws -> OutputLock {
        try FileManager.default.createDirectory(atPath: cellsFolder, withIntermediateDirectories: true)
        return try OutputLock.acquire(folder: cellsFolder, fileName: "." + key.fileName + ".lock", shared: false) {
            RunnerError.cellBusy(cell: key.description, holder: $0)
        }
    }

    public func writeManifest(_ manifest: PlanManifest) throws {
        let path = (folder as NSString).appendingPathComponent(PlanManifest.fileName)
        let data = try StoredJSON.data(manifest, for: path)
        if FileManager.default.contents(atPath: path) != data { try AtomicFile.write(data, to: path) }
    }

    public func readManifest() throws -> PlanManifest {
        let path = (folder as NSString).appendingPathComponent(PlanManifest.fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: folder)
                ? "it has no \(PlanManifest.fileName) (written by `bench run` when it starts)" : "no such folder"
            throw RunnerError.noResults(path: folder, reason: why)
        }
        struct Header: Decodable { var format: Int? }
        if let header = try? JSONDecoder().decode(Header.self, from: data), let format = header.format,
           format != PlanManifest.currentFormat {
            throw RunnerError.noResults(path: path, reason: "plan format \(format), but this MetaBench reads format \(PlanManifest.currentFormat) (rerun the suite)")
        }
        do {
            return try JSONDecoder().decode(PlanManifest.self, from: data)
        } catch {
            throw RunnerError.noResults(path: path, reason: "not a MetaBench plan file (\(error))")
        }
    }

    /// The result set of the folder: the manifest's facts and every cell of its plan that is stored and
    /// matches its fingerprint (completed, diverged or failed), in plan order; the others are `missing`.
    public func merge() throws -> (results: ResultSet, missing: [CellKey]) {
        let manifest = try readManifest()
        var cells: [CellResult] = []
        var missing: [CellKey] = []
        for planned in manifest.cells {
            switch read(planned.key, fingerprint: planned.fingerprint) {
            case .valid(let cell), .failed(let cell): cells.append(cell)
            case .absent, .otherConfiguration, .invalid: missing.append(planned.key)
            }
        }
        var results = ResultSet(suite: manifest.suite, suiteFile: manifest.suiteFile, exact: manifest.exact,
                                dataset: manifest.dataset, seeds: manifest.seeds, notes: manifest.notes,
                                published: manifest.published, cells: cells)
        results.missingCells = missing.isEmpty ? nil : missing.map(\.description)
        return (results, missing)
    }
}
