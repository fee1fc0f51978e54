import Foundation

/// How two results of the same cell relate.
public enum Verdict: String, Sendable, Codable, Equatable {
    /// Identical accuracy and per-episode results.
    case same
    /// The difference is within the combined 95% interval √(ciA² + ciB²).
    case withinCI = "within CI"
    /// The difference is larger than the combined interval.
    case outsideCI = "outside CI"
    /// One cell completed and the other diverged or failed, or both did not complete.
    case statusDiffers = "status differs"
}

/// One cell present in both result sets.
public struct CellComparison: Sendable, Equatable {
    public var key: CellKey
    public var a: CellResult
    public var b: CellResult
    /// B − A in percentage points (nil unless both completed).
    public var difference: Double?
    /// √(ciA² + ciB²), percent.
    public var combinedCI: Double?
    public var verdict: Verdict
}

/// The cell-by-cell difference between two result sets.
public struct Comparison: Sendable {
    public var cells: [CellComparison]
    public var onlyInA: [CellKey]
    public var onlyInB: [CellKey]

    public init(_ a: ResultSet, _ b: ResultSet) {
        let keysA = Set(a.cells.map(\.key)), keysB = Set(b.cells.map(\.key))
        var cells: [CellComparison] = []
        for cellA in a.cells {
            guard let cellB = b.cell(cellA.key) else { continue }
            cells.append(Comparison.compare(cellA, cellB))
        }
        self.cells = cells
        onlyInA = a.cells.map(\.key).filter { !keysB.contains($0) }
        onlyInB = b.cells.map(\.key).filter { !keysA.contains($0) }
    }

    static func compare(_ a: CellResult, _ b: CellResult) -> CellComparison {
        guard a.status == .completed, b.status == .completed, let accA = a.accuracy, let accB = b.accuracy else {
            let same = a.status == b.status && a.status != .completed
            return CellComparison(key: a.key, a: a, b: b, difference: nil, combinedCI: nil,
                                  verdict: same ? .same : .statusDiffers)
        }
        let combined = ((a.ci95 ?? 0) * (a.ci95 ?? 0) + (b.ci95 ?? 0) * (b.ci95 ?? 0)).squareRoot()
        let difference = accB - accA
        let verdict: Verdict
        if accA == accB && a.episodeCorrect == b.episodeCorrect {
            verdict = .same
        } else if abs(difference) <= combined {
            verdict = .withinCI
        } else {
            verdict = .outsideCI
        }
        return CellComparison(key: a.key, a: a, b: b, difference: difference, combinedCI: combined, verdict: verdict)
    }

    static func accuracyText(_ cell: CellResult) -> String {
        switch cell.status {
        case .completed: return cell.accuracy.map { "\(Format.fixed($0, 2)) ± \(Format.fixed(cell.ci95 ?? 0, 2))" } ?? "–"
        case .diverged: return "diverged"
        case .failed: return "failed"
        }
    }

    /// A table: cell, accuracy A, accuracy B, difference, verdict; then the cells only one set has.
    public func render(nameA: String = "A", nameB: String = "B") -> String {
        var table = TextTable(headers: ["Cell", nameA, nameB, "B − A", "Verdict"],
                              alignments: [.left, .right, .right, .right, .left])
        for c in cells {
            table.append([c.key.description, Self.accuracyText(c.a), Self.accuracyText(c.b),
                          c.difference.map { ($0 >= 0 ? "+" : "") + Format.fixed($0, 2) } ?? "–", c.verdict.rawValue])
        }
        var text = table.render()
        if !onlyInA.isEmpty { text += "\nOnly in \(nameA): " + onlyInA.map(\.description).joined(separator: ", ") + "\n" }
        if !onlyInB.isEmpty { text += "\nOnly in \(nameB): " + onlyInB.map(\.description).joined(separator: ", ") + "\n" }
        let counts = Dictionary(grouping: cells, by: \.verdict).mapValues(\.count)
        text += "\n" + [Verdict.same, .withinCI, .outsideCI, .statusDiffers].compactMap { v in
            counts[v].map { "\($0) \(v.rawValue)" }
        }.joined(separator: ", ") + "\n"
        return text
    }
}

/// The outcome of `bench check`: a fresh run compared with stored results.
public struct CheckOutcome: Sendable {
    /// Cells compared exactly (a stored cell of the same configuration and numerics existed, suite `exact`).
    public var exactCells: Int
    /// Cells compared within confidence intervals, and why each was not compared exactly.
    public var approximate: [(cell: CellKey, reason: String)]
    public var matched: Int
    /// One line per failing cell, saying why.
    public var failures: [String]

    public var passed: Bool { failures.isEmpty }
    /// Whether every cell was compared exactly.
    public var exact: Bool { approximate.isEmpty }

    public var summary: String {
        let how: String
        if approximate.isEmpty {
            how = "exactly"
        } else if exactCells == 0 {
            how = "within their confidence intervals"
        } else {
            how = "(\(exactCells) exactly, \(approximate.count) within their confidence intervals)"
        }
        if passed { return "check passed: \(matched) cells match \(how)" }
        return "check failed: \(failures.count) of \(failures.count + matched) cells differ; compared \(how)"
    }
}

/// Compares a fresh run with stored results.
public enum RegressionCheck {
    /// Each fresh cell is compared with a stored cell of the same key and configuration. When the suite says
    /// `exact: true` and one of the stored sets (the main results or a per-kernel baseline) has that cell made
    /// with the same numerics (OpenBLAS version and kernels, `Provenance.numerics`), the comparison is exact:
    /// accuracy and every episode must be identical (the thread count does not change results). Otherwise the
    /// cell fails only when its accuracy is outside the combined 95% interval. Stored cells the fresh run did not
    /// select are ignored; a fresh cell with no stored counterpart, or another configuration, fails.
    public static func check(fresh: ResultSet, stored: [ResultSet]) -> CheckOutcome {
        var outcome = CheckOutcome(exactCells: 0, approximate: [], matched: 0, failures: [])
        for cell in fresh.cells {
            let candidates = stored.compactMap { $0.cell(cell.key) }
            guard !candidates.isEmpty else {
                outcome.failures.append("\(cell.key): no stored result (run `bench run` to record one)")
                continue
            }
            let sameConfiguration = candidates.filter { $0.fingerprint == cell.fingerprint }
            guard let first = sameConfiguration.first else {
                outcome.failures.append("\(cell.key): the configuration differs from the stored one (learner, hyperparameters, budget, evaluation or dataset changed; rerun `bench run` to update the stored results)")
                continue
            }
            let numerics = cell.provenance?.numerics
            let sameNumerics = sameConfiguration.first { $0.provenance?.numerics == numerics && numerics != nil }
            let exact = fresh.exact && sameNumerics != nil
            let old = sameNumerics ?? first
            if exact {
                outcome.exactCells += 1
            } else {
                let reason = fresh.exact
                    ? "no stored cell made with \(numerics ?? "unknown numerics") (stored: \(sameConfiguration.map { $0.provenance?.numerics ?? "unknown" }.uniqued().joined(separator: ", ")))"
                    : "the suite is not marked exact"
                outcome.approximate.append((cell.key, reason))
            }
            let c = Comparison.compare(old, cell)
            let storedText = Comparison.accuracyText(old), now = Comparison.accuracyText(cell)
            if exact {
                if c.verdict == .same && old.accuracy == cell.accuracy {
                    outcome.matched += 1
                } else {
                    let firstDifferent = zip(old.episodeCorrect, cell.episodeCorrect).enumerated()
                        .first { $0.element.0 != $0.element.1 }.map { " (first differing episode: \($0.offset))" } ?? ""
                    outcome.failures.append("\(cell.key): stored \(storedText), now \(now): not identical\(firstDifferent)")
                }
            } else {
                switch c.verdict {
                case .same, .withinCI: outcome.matched += 1
                case .outsideCI:
                    outcome.failures.append("\(cell.key): stored \(storedText), now \(now): difference \(Format.fixed(c.difference ?? 0, 2)) outside the combined interval ±\(Format.fixed(c.combinedCI ?? 0, 2))")
                case .statusDiffers:
                    outcome.failures.append("\(cell.key): stored \(storedText), now \(now)")
                }
            }
        }
        return outcome
    }

    /// The stored result sets `bench check` compares with: `results.json` at `path` (a file, or a folder that
    /// holds one) and every per-kernel baseline beside it, `baselines/*/results.json`.
    public static func storedSets(_ path: String) throws -> [ResultSet] {
        let main = try ResultSet.load(path)
        var isDirectory: ObjCBool = false
        let isFolder = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        let folder = isFolder ? path : (path as NSString).deletingLastPathComponent
        let baselines = (folder as NSString).appendingPathComponent("baselines")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: baselines)) ?? []).sorted()
        var sets = [main]
        for name in names {
            let file = (baselines as NSString).appendingPathComponent(name + "/results.json")
            guard FileManager.default.fileExists(atPath: file) else { continue }
            sets.append(try ResultSet.load(file))
        }
        return sets
    }
}
