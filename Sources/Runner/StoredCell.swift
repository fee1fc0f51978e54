import Foundation

/// A cell file read back for reuse, checked before it is trusted.
enum StoredCell: Equatable {
    /// No file.
    case absent
    /// A well-formed cell of another configuration (the suite or its dataset changed): retrain silently.
    case otherConfiguration
    /// A cell that failed: retrain (a failure may be fixed since); reports still show it.
    case failed(CellResult)
    /// The file is not a cell this version can trust; the reason says why (the runner warns and retrains).
    case invalid(String)
    /// A cell that can be reused as it is.
    case valid(CellResult)

    /// Reads and checks the cell file at `path` against the configuration the suite asks for.
    static func read(at path: String, config: CellConfig) -> StoredCell {
        read(at: path, fingerprint: config.fingerprint)
    }

    /// Reads and checks the cell file at `path` against the fingerprint of the configuration asked for.
    static func read(at path: String, fingerprint: String) -> StoredCell {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        guard let data = FileManager.default.contents(atPath: path) else { return .invalid("cannot read the file") }
        struct Header: Decodable { var format: Int?; var fingerprint: String? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            return .invalid("not a MetaBench cell file (not a JSON object)")
        }
        guard header.format == CellResult.currentFormat else {
            return .invalid("cell format \(header.format.map(String.init) ?? "missing"), but this MetaBench writes format \(CellResult.currentFormat)")
        }
        let cell: CellResult
        do {
            cell = try JSONDecoder().decode(CellResult.self, from: data)
        } catch {
            return .invalid("not a MetaBench cell file (\(error))")
        }
        guard cell.config.fingerprint == cell.fingerprint else {
            return .invalid("its configuration does not match its own fingerprint (edited by hand?)")
        }
        guard cell.fingerprint == fingerprint else { return .otherConfiguration }
        if let problem = problem(cell) { return .invalid(problem) }
        return cell.status == .failed ? .failed(cell) : .valid(cell)
    }

    /// What is inconsistent in a cell of the right configuration, or nil.
    static func problem(_ cell: CellResult) -> String? {
        guard cell.provenance != nil else { return "it records no provenance" }
        let setting = cell.config.setting
        if cell.config.episodesFile == nil {
            let (queries, overflow) = setting.ways.multipliedReportingOverflow(by: setting.queries)
            guard !overflow, cell.queriesPerEpisode == queries, cell.episodeQueries == nil else {
                return "\(cell.queriesPerEpisode) queries per episode, but the setting has \(setting.ways) × \(setting.queries)"
            }
        } else if let perEpisode = cell.episodeQueries {
            // Listed only when they differ, with no common count beside them.
            guard cell.queriesPerEpisode == 0, Set(perEpisode).count > 1 else {
                return "queries listed per episode (\(Set(perEpisode).sorted())) beside \(cell.queriesPerEpisode) queries per episode"
            }
        }
        switch cell.status {
        case .failed:
            return nil
        case .diverged:
            guard cell.accuracy == nil, cell.episodeCorrect.isEmpty else { return "a diverged cell with an accuracy" }
            return nil
        case .completed:
            break
        }
        let episodes = cell.config.evaluation.episodes
        guard cell.episodeCorrect.count == episodes, cell.episodeAccuracies.count == episodes else {
            return "\(cell.episodeCorrect.count) evaluated episodes, but the configuration asks for \(episodes)"
        }
        let counts = cell.queryCounts
        guard counts.count == episodes, counts.allSatisfy({ $0 > 0 }) else {
            return "\(counts.count) query counts for \(episodes) episodes, or an episode without queries"
        }
        for (i, ((correct, fraction), queries)) in zip(zip(cell.episodeCorrect, cell.episodeAccuracies), counts).enumerated() {
            guard correct >= 0, correct <= queries, fraction == Double(correct) / Double(queries) else {
                return "episode \(i): \(correct) correct of \(queries) does not match its accuracy \(fraction)"
            }
        }
        let mean = Statistics.mean(cell.episodeAccuracies) * 100
        let ci = Statistics.ci95(cell.episodeAccuracies) * 100
        guard let accuracy = cell.accuracy, let ci95 = cell.ci95, accuracy == mean, ci95 == ci else {
            return "its accuracy \(cell.accuracy.map { "\($0)" } ?? "missing") ± \(cell.ci95.map { "\($0)" } ?? "missing") is not the mean \(mean) ± \(ci) of its episodes"
        }
        return nil
    }
}
