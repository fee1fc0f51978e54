import Foundation

/// REPORT.md's paired differences: per setting, a learner × learner table of the mean per-episode accuracy
/// difference with its paired 95% interval and Holm's marks, then a table of the two tests' p-values.
enum PairedTables {
    static func markdown(_ results: ResultSet) -> String {
        let comparisons = PairedComparison.all(results.cells)
        guard !comparisons.isEmpty else { return "" }
        var md = "\n## Paired differences\n\n"
        md += "Every learner of a setting is evaluated on the same test episodes, so learners are compared episode by "
        md += "episode. The entry in row R, column C is R's accuracy minus C's in percentage points: the mean of the "
        md += "per-episode differences, episode i of seed s of R paired with episode i of seed s of C over the seeds "
        md += "both completed, ± the half-width of the paired 95% interval, t(0.975, n − 1)·s/√n over the n paired "
        md += "episodes. `*` marks a difference whose paired t-test p-value, Holm-corrected over the setting's pairs, "
        md += "is below \(PairedComparison.alpha). The second table gives the p-values: the paired t-test's, "
        md += "Holm-corrected, above the diagonal, and the two-sided sign test's (ties left out, not corrected) below it.\n"
        for setting in comparisons.map(\.setting).uniqued() {
            let pairs = comparisons.filter { $0.setting == setting }
            let inPairs = Set(pairs.flatMap { [$0.labelA, $0.labelB] })
            let labels = results.cells.filter { PairedComparison.evaluationName($0.config.setting) == setting }
                .map(\.config.label).uniqued()
                .filter { inPairs.contains($0) }
            func pair(_ r: String, _ c: String) -> (comparison: PairedComparison, sign: Double)? {
                if let p = pairs.first(where: { $0.labelA == c && $0.labelB == r }) { return (p, 1) }
                if let p = pairs.first(where: { $0.labelA == r && $0.labelB == c }) { return (p, -1) }
                return nil
            }
            md += "\n### \(setting)\n\n" + pairedCountText(pairs) + "\n\n"
            md += table(labels) { r, c in
                guard let (p, sign) = pair(r, c) else { return "–" }
                return differenceText(sign * p.interval.difference, halfWidth: p.interval.halfWidth)
                    + (p.significant ? "*" : "")
            }
            md += "\n"
            md += table(labels) { r, c in
                guard let (p, _) = pair(r, c) else { return "–" }
                let above = labels.firstIndex(of: r) ?? 0 < labels.firstIndex(of: c) ?? 0
                return above ? p.holmP.map(pText) ?? "–" : pText(p.interval.signTestP)
            }
        }
        return md
    }

    /// A markdown table with a row and a column per label; the diagonal is empty.
    static func table(_ labels: [String], entry: (String, String) -> String) -> String {
        func line(_ first: String, _ values: [String]) -> String {
            "| " + first + " |" + values.map { $0.isEmpty ? " |" : " " + Report.markdownCell($0) + " |" }.joined() + "\n"
        }
        var md = "| |" + labels.map { " " + Report.markdownCell($0) + " |" }.joined() + "\n"
        md += "|---|" + labels.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for r in labels { md += line(Report.markdownCell(r), labels.map { c in r == c ? "" : entry(r, c) }) }
        return md
    }

    /// How many episodes the pairs of a setting paired, and over which seeds.
    static func pairedCountText(_ pairs: [PairedComparison]) -> String {
        let counts = pairs.map(\.interval.pairs)
        let seeds = pairs.flatMap(\.seeds).uniqued()
        let episodes = counts.min() == counts.max() ? "\(counts.first ?? 0)" : "\(counts.min() ?? 0) to \(counts.max() ?? 0)"
        let seedText = seeds.count == 1 ? "seed \(seeds[0])" : "seeds " + seeds.map(String.init).joined(separator: ", ")
        return "Paired episodes per pair: \(episodes) (\(seedText))."
    }

    /// `+1.23 ± 0.45`, or `+1.23` without an interval.
    static func differenceText(_ value: Double, halfWidth: Double?) -> String {
        let text = Format.signed(value)
        guard let halfWidth else { return text }
        return text + " ± " + Format.fixed(halfWidth, 2)
    }

    /// A p-value to three decimals, `<0.001` below.
    static func pText(_ p: Double) -> String { p < 0.001 ? "<0.001" : Format.fixed(p, 3) }
}

extension Format {
    /// A difference to two decimals with its sign: `+1.25`, `-0.40`, and `+0.00` for anything that rounds to zero.
    static func signed(_ value: Double) -> String {
        var text = fixed(value, 2)
        if text.hasPrefix("-") && text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) { text.removeFirst() }
        return text.hasPrefix("-") ? text : "+" + text
    }
}
