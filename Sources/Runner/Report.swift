import Foundation
import Learners

/// One row of a report: a learner in a setting, its seeds pooled.
public struct ReportRow: Sendable, Equatable {
    public var label: String
    public var learner: String
    public var setting: String
    public var seeds: Int
    /// Cells completed, diverged and failed.
    public var completed: Int
    public var diverged: Int
    public var failed: Int
    /// Mean accuracy (percent) over the episodes of every completed seed.
    public var accuracy: Double?
    /// 1.96·σ/√n over those episodes, percent.
    public var ci95: Double?
    /// With two completed seeds or more: the mean over seeds of each seed's accuracy, and the between-seed 95%
    /// interval t(0.975, k − 1)·σ/√k (percent); nil otherwise.
    public var seedMean: Double?
    public var seedCI95: Double?
    public var published: Double?
    /// Mean over seeds.
    public var trainingSeconds: Double?
    public var adaptMilliseconds: Double?
    /// Largest over seeds.
    public var peakResidentBytes: Int?
    /// False when some cell's peak may include an earlier cell's (its high-water mark could not be reset).
    public var peakMemoryPerCell: Bool
    public var transductive: Bool?
    /// The failure messages, or where cells diverged.
    public var problems: [String]

    /// The accuracy cell of a table: `97.20 ± 0.85`, or `diverged` / `failed`.
    public var accuracyText: String {
        if let accuracy, let ci95 { return "\(Format.fixed(accuracy, 2)) ± \(Format.fixed(ci95, 2))" }
        if failed > 0 { return "failed" }
        if diverged > 0 { return "diverged" }
        return "–"
    }

    /// The between-seed cell of a table: `97.10 ± 0.40 (3 seeds)`, or `–` with fewer than two completed seeds.
    public var seedText: String {
        guard let seedMean, let seedCI95 else { return "–" }
        return "\(Format.fixed(seedMean, 2)) ± \(Format.fixed(seedCI95, 2)) (\(completed) seeds)"
    }
}

/// The reports of a result set: a terminal table, REPORT.md, results.csv, results.json and the learning curves.
public enum Report {
    /// Rows in the order of `results.cells` (the runner's: settings in suite order, then learners in suite
    /// order): settings as they first appear, and within a setting its learners as they first appear there.
    public static func rows(_ results: ResultSet) -> [ReportRow] {
        var groups: [String: [CellResult]] = [:]
        for cell in results.cells {
            groups[cell.config.label + "\u{0}" + cell.config.setting.id, default: []].append(cell)
        }
        let order = results.cells.map(\.config.setting.id).uniqued().flatMap { setting in
            results.cells.filter { $0.config.setting.id == setting }.map(\.config.label).uniqued().map { ($0, setting) }
        }
        var spread: [String: SeedStatistics] = [:]
        for statistics in SeedStatistics.all(results.cells) {
            spread[statistics.label + "\u{0}" + statistics.setting] = statistics
        }
        return order.map { label, setting in
            let cells = groups[label + "\u{0}" + setting] ?? []
            let done = cells.filter { $0.status == .completed }
            let episodes = done.flatMap(\.episodeAccuracies)
            var problems: [String] = []
            for cell in cells where cell.status != .completed {
                problems.append("seed \(cell.config.seed): " + (cell.message ?? cell.status.rawValue))
            }
            return ReportRow(
                label: label, learner: cells.first?.config.learner ?? label, setting: setting, seeds: cells.count,
                completed: done.count, diverged: cells.filter { $0.status == .diverged }.count,
                failed: cells.filter { $0.status == .failed }.count,
                accuracy: episodes.isEmpty ? nil : Statistics.mean(episodes) * 100,
                ci95: episodes.isEmpty ? nil : Statistics.ci95(episodes) * 100,
                seedMean: spread[label + "\u{0}" + setting]?.mean, seedCI95: spread[label + "\u{0}" + setting]?.ci95,
                published: cells.first.flatMap { results.publishedAccuracy(label: label, setting: $0.config.setting.shortName) },
                trainingSeconds: done.isEmpty ? nil : Statistics.mean(done.map(\.trainingSeconds)),
                adaptMilliseconds: done.isEmpty ? nil : Statistics.mean(done.compactMap(\.adaptMillisecondsPerEpisode)),
                peakResidentBytes: cells.compactMap(\.peakResidentBytes).max(),
                peakMemoryPerCell: !cells.contains { $0.peakMemoryPerCell == false },
                transductive: cells.compactMap(\.transductive).first,
                problems: problems)
        }
    }

    /// The table's columns; "Over seeds (%)" only when some row has two completed seeds or more.
    static func headers(_ rows: [ReportRow]) -> [String] {
        ["Learner", "Setting", "Accuracy (%)"] + (hasSeedColumn(rows) ? ["Over seeds (%)"] : [])
            + ["Published", "Train (s)", "Adapt (ms/ep)", "Peak mem (MiB)", "Transductive"]
    }

    static func hasSeedColumn(_ rows: [ReportRow]) -> Bool { rows.contains { $0.seedMean != nil } }

    static func cells(of row: ReportRow, seedColumn: Bool) -> [String] {
        let published = row.published.map { Format.fixed($0, 2) } ?? "–"
        let training = row.trainingSeconds.map { Format.fixed($0, 1) } ?? "–"
        let adapt = row.adaptMilliseconds.map { Format.fixed($0, 2) } ?? "–"
        let memory = Format.mebibytes(row.peakResidentBytes) + (row.peakMemoryPerCell ? "" : "*")
        let transductive = row.transductive.map { $0 ? "yes" : "no" } ?? "–"
        let seeds: [String] = seedColumn ? [row.seedText] : []
        return [row.label, row.setting, row.accuracyText] + seeds + [published, training, adapt, memory, transductive]
    }

    /// A table for the terminal, columns aligned, then any failures.
    public static func table(_ results: ResultSet) -> String {
        let rows = rows(results)
        let headers = headers(rows)
        var table = TextTable(headers: headers, alignments: headers.indices.map { $0 < 2 ? .left : .right })
        for row in rows { table.append(cells(of: row, seedColumn: hasSeedColumn(rows))) }
        var text = table.render()
        text += problemsText(results, bullet: "  ")
        return text
    }

    static func problemsText(_ results: ResultSet, bullet: String) -> String {
        var text = ""
        for row in rows(results) where !row.problems.isEmpty {
            for problem in row.problems { text += "\(bullet)\(row.label) \(row.setting) \(problem)\n" }
        }
        return text
    }

    /// REPORT.md: the table, the machine and versions, notes and failures.
    public static func markdown(_ results: ResultSet) -> String {
        var md = "# \(results.suite)\n\n"
        md += "Suite `\(results.suiteFile)` on dataset `\(results.dataset.name)` (\(results.dataset.layout), "
        md += "\(results.dataset.imageShape) images), seeds \(results.seeds.map(String.init).joined(separator: ", ")).\n\n"
        let rows = rows(results)
        let headers = headers(rows)
        md += "| " + headers.joined(separator: " | ") + " |\n"
        md += "|" + headers.indices.map { $0 < 2 ? "---" : "---:" }.joined(separator: "|") + "|\n"
        for row in rows {
            md += "| " + cells(of: row, seedColumn: hasSeedColumn(rows)).map(markdownCell).joined(separator: " | ") + " |\n"
        }
        md += "\nAccuracy is the mean over evaluation episodes (pooled over seeds) with its 95% confidence interval, "
        md += "1.96·σ/√n. "
        if hasSeedColumn(rows) {
            md += "Over seeds is the mean of the seeds' accuracies with the between-seed 95% interval, "
            md += "t(0.975, k − 1)·σ/√k over the k completed seeds: the spread that training seeds add. "
        }
        md += "Train is meta-training wall-clock time without validation; Adapt is `adapt` plus scoring "
        md += "the queries, per episode. Peak mem is the kernel's high-water mark of the whole bench process's resident "
        md += "memory (VmHWM), reset when the cell started: it includes the dataset and what earlier cells left "
        md += "allocated, so it bounds the learner's own footprint from above"
        if results.cells.contains(where: { $0.peakMemoryPerCell == false }) {
            md += " (cells marked * could not reset it, so their figure may include an earlier cell's peak)"
        }
        md += ". Times and memory are those of the machine that produced each cell (below).\n"
        let problems = problemsText(results, bullet: "- ")
        if !problems.isEmpty { md += "\n## Diverged or failed\n\n" + problems }
        md += PairedTables.markdown(results)
        if let missing = results.missingCells, !missing.isEmpty {
            md += "\n## Missing cells\n\nThese cells of the suite have no stored result in the folder (shards still "
            md += "running or stopped); the table leaves them out.\n\n" + missing.map { "- \($0)\n" }.joined()
        }
        if !results.notes.isEmpty {
            md += "\n## Notes\n\n" + results.notes.map { "- \($0)\n" }.joined()
        }
        md += "\n## Provenance\n\n"
        md += provenanceText(results)
        return md
    }

    /// What produced the cells: one line per producer, and a warning when the set mixes several.
    static func provenanceText(_ results: ResultSet) -> String {
        var md = ""
        let producers = results.producers
        let unknown = results.cells.filter { $0.provenance == nil }.count
        if producers.count > 1 {
            let kernels = Set(producers.map { "\($0.openblasVersion) \($0.openblasKernels) \($0.convolutions ?? "")" })
            let commits = Set(producers.map(\.gitCommit))
            var mixed: [String] = []
            if kernels.count > 1 { mixed.append("\(kernels.count) OpenBLAS kernel families") }
            if commits.count > 1 { mixed.append("\(commits.count) commits") }
            if mixed.isEmpty { mixed.append("\(producers.count) producers") }
            md += "**This set mixes \(mixed.joined(separator: " and ")):** cells from different producers can differ "
            md += "in their last bits (kernels) or in behaviour (commits), and their times and memory come from different runs.\n\n"
        }
        for producer in producers {
            md += "- \(producer.text): \(producer.cells.count) cell\(producer.cells.count == 1 ? "" : "s")"
            md += producers.count > 1 ? " (\(producer.cells.joined(separator: ", ")))\n" : "\n"
        }
        if unknown > 0 { md += "- \(unknown) cell\(unknown == 1 ? "" : "s") without provenance\n" }
        return md
    }

    /// results.csv: one row per cell.
    public static func csv(_ results: ResultSet) -> String {
        let header = ["label", "learner", "setting", "ways", "shots", "queries", "train_ways", "train_shots",
                      "train_queries", "seed", "status", "accuracy", "ci95", "mean_over_seeds", "ci95_over_seeds", "published",
                      "train_seconds",
                      "adapt_ms_per_episode", "peak_resident_bytes", "transductive", "threads", "hyperparameters",
                      "message", "git_commit", "uncommitted_changes", "openblas", "cpu", "date"]
        var text = header.joined(separator: ",") + "\n"
        var spread: [String: SeedStatistics] = [:]
        for statistics in SeedStatistics.all(results.cells) {
            spread[statistics.label + "\u{0}" + statistics.setting] = statistics
        }
        for cell in results.cells {
            let c = cell.config
            let seeds = spread[c.label + "\u{0}" + c.setting.id]
            let p = cell.provenance
            let hyper = c.hyperparameters.values.sorted { $0.key < $1.key }.map { "\($0.key)=\(canonical($0.value))" }
                .joined(separator: ";")
            // An episode file's evaluation shape is its episodes' (empty when they differ); its training shape
            // is that of the setting whose model serves it.
            let shape = c.episodesFile.map { file in
                file.summary.uniformShape.map { ["\($0.ways)", "\($0.shots)", "\($0.queries)"] } ?? ["", "", ""]
            } ?? ["\(c.setting.ways)", "\(c.setting.shots)", "\(c.setting.queries)"]
            let fields: [String] = [c.label, c.learner, c.setting.id] + shape + [
                "\(c.setting.trainWays)", "\(c.setting.trainShots)", "\(c.setting.trainQueries)", "\(c.seed)",
                cell.status.rawValue, cell.accuracy.map { "\($0)" } ?? "", cell.ci95.map { "\($0)" } ?? "",
                seeds.map { "\($0.mean)" } ?? "", seeds.map { "\($0.ci95)" } ?? "",
                results.publishedAccuracy(label: c.label, setting: c.setting.shortName).map { "\($0)" } ?? "",
                "\(cell.trainingSeconds)",
                cell.adaptMillisecondsPerEpisode.map { "\($0)" } ?? "", cell.peakResidentBytes.map { "\($0)" } ?? "",
                cell.transductive.map { "\($0)" } ?? "", "\(cell.threads)", hyper, cell.message ?? "",
                p?.gitCommit ?? "", p?.uncommittedChanges.map { "\($0)" } ?? "", p?.numerics ?? "", p?.cpuModel ?? "",
                p?.date ?? "",
            ]
            text += fields.map(csvField).joined(separator: ",") + "\n"
        }
        return text
    }

    /// A hyperparameter as text that survives a JSON round trip (JSON stores 2.0 as 2, read back as an int).
    static func canonical(_ value: HyperValue) -> String {
        if case .double(let d) = value, d.rounded() == d, abs(d) < 1e15 { return String(Int(d)) }
        return value.description
    }

    static func markdownCell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }

    static func csvField(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Writes results.json, results.csv, REPORT.md and learning-curves.svg into `folder` as one set: every
    /// file is rendered first, then each replaced atomically (the runner holds the folder's lock, so no other
    /// process writes between them). A file whose content is unchanged is left untouched.
    public static func writeAll(_ results: ResultSet, to folder: String) throws {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let files: [(String, Data)] = [
            ("results.json", try StoredJSON.data(results, for: path("results.json"))),
            ("results.csv", Data(csv(results).utf8)),
            ("REPORT.md", Data(markdown(results).utf8)),
            ("learning-curves.svg", Data(LearningCurvePlot.svg(results).utf8)),
        ]
        for (name, data) in files where FileManager.default.contents(atPath: path(name)) != data {
            try AtomicFile.write(data, to: path(name))
        }
    }
}

extension Sequence where Element: Hashable {
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
