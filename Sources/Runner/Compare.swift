import Foundation

/// How two results of the same cell relate.
public enum Verdict: String, Sendable, Codable, Equatable {
    /// Identical accuracy and per-episode results.
    case same
    /// The 95% interval of the difference holds 0 (the comparison's `rule` says which interval).
    case withinCI = "within CI"
    /// The 95% interval of the difference leaves out 0.
    case outsideCI = "outside CI"
    /// One cell completed and the other diverged or failed, or both did not complete.
    case statusDiffers = "status differs"
}

/// Which interval a cell comparison used.
public enum ComparisonRule: String, Sendable, Codable, Equatable {
    /// The cells share their episodes: the paired interval of the per-episode differences (`PairedInterval`).
    case paired
    /// They do not: the combined interval √(ciA² + ciB²) of the two accuracies.
    case unpaired
}

/// One cell present in both result sets.
public struct CellComparison: Sendable, Equatable {
    public var key: CellKey
    public var a: CellResult
    public var b: CellResult
    /// B − A in percentage points (nil unless both completed): the mean per-episode difference when paired.
    public var difference: Double?
    /// √(ciA² + ciB²), percent.
    public var combinedCI: Double?
    /// The per-episode differences' statistics when the cells share episodes (and the comparison may pair them).
    public var paired: PairedInterval?
    /// The rule the verdict used; nil unless both completed.
    public var rule: ComparisonRule?
    public var verdict: Verdict

    /// Half-width of the interval the verdict used, percentage points.
    public var halfWidth: Double? { rule == .paired ? paired?.halfWidth : combinedCI }
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

    /// Compares two results of a cell. Bit-identical results (accuracy and every episode) are `same`. When
    /// `pairing` is allowed and the cells share episodes (`EpisodePairing`, two episodes or more), the verdict
    /// comes from the paired 95% interval of the per-episode differences: outside CI when it leaves out 0.
    /// Otherwise from the combined interval: outside CI when |B − A| > √(ciA² + ciB²).
    static func compare(_ a: CellResult, _ b: CellResult, pairing: Bool = true) -> CellComparison {
        guard a.status == .completed, b.status == .completed, let accA = a.accuracy, let accB = b.accuracy else {
            let same = a.status == b.status && a.status != .completed
            return CellComparison(key: a.key, a: a, b: b, difference: nil, combinedCI: nil, paired: nil, rule: nil,
                                  verdict: same ? .same : .statusDiffers)
        }
        let combined = ((a.ci95 ?? 0) * (a.ci95 ?? 0) + (b.ci95 ?? 0) * (b.ci95 ?? 0)).squareRoot()
        let paired = pairing ? EpisodePairing.differences(a, b).flatMap(PairedInterval.init(differences:)) : nil
        let rule: ComparisonRule = paired?.halfWidth != nil ? .paired : .unpaired
        let difference = rule == .paired ? paired?.difference ?? accB - accA : accB - accA
        let verdict: Verdict
        if accA == accB && a.episodeCorrect == b.episodeCorrect {
            verdict = .same
        } else if rule == .paired {
            verdict = paired?.excludesZero == true ? .outsideCI : .withinCI
        } else if abs(difference) <= combined {
            verdict = .withinCI
        } else {
            verdict = .outsideCI
        }
        return CellComparison(key: a.key, a: a, b: b, difference: difference, combinedCI: combined, paired: paired,
                              rule: rule, verdict: verdict)
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
        var table = TextTable(headers: ["Cell", nameA, nameB, "B − A", "95% interval", "Rule", "Verdict"],
                              alignments: [.left, .right, .right, .right, .right, .left, .left])
        for c in cells {
            table.append([c.key.description, Self.accuracyText(c.a), Self.accuracyText(c.b),
                          c.difference.map(Format.signed) ?? "–", c.halfWidth.map { "±" + Format.fixed($0, 2) } ?? "–",
                          c.rule?.rawValue ?? "–", c.verdict.rawValue])
        }
        var text = table.render()
        if !onlyInA.isEmpty { text += "\nOnly in \(nameA): " + onlyInA.map(\.description).joined(separator: ", ") + "\n" }
        if !onlyInB.isEmpty { text += "\nOnly in \(nameB): " + onlyInB.map(\.description).joined(separator: ", ") + "\n" }
        let counts = Dictionary(grouping: cells, by: \.verdict).mapValues(\.count)
        text += "\n" + [Verdict.same, .withinCI, .outsideCI, .statusDiffers].compactMap { v in
            counts[v].map { "\($0) \(v.rawValue)" }
        }.joined(separator: ", ") + "\n"
        let rules = Set(cells.compactMap(\.rule))
        if rules.contains(.paired) {
            text += "paired: B − A is the mean per-episode difference on the episodes both cells were evaluated on (same "
            text += "evaluation seed, setting and episode count), ± t(0.975, n − 1)·s/√n over the n episodes; "
            text += "outside CI when that interval leaves out 0.\n"
        }
        if rules.contains(.unpaired) {
            text += "unpaired: the cells do not share episodes; B − A is the difference of the accuracies, ± √(ciA² + ciB²) "
            text += "their intervals combined; outside CI when |B − A| is larger.\n"
        }
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
            // Kernel drift flips a few episodes one way; the paired interval would call that a difference, so the
            // approximate check keeps the combined interval.
            let c = Comparison.compare(old, cell, pairing: false)
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
