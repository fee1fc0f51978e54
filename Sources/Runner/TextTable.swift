/// A plain-text table for the terminal: a header row, a rule of dashes, then the rows; each column as wide as
/// its widest value, separated by two spaces, left- or right-aligned; no trailing spaces.
public struct TextTable: Sendable, Equatable {
    public enum Alignment: Sendable, Equatable { case left, right }

    public var headers: [String]
    public var alignments: [Alignment]
    public var rows: [[String]] = []

    /// `alignments` defaults to left for every column; a missing alignment is left.
    public init(headers: [String], alignments: [Alignment] = []) {
        self.headers = headers
        self.alignments = alignments
    }

    public mutating func append(_ row: [String]) { rows.append(row) }

    /// The table, one line per row, each ended by a newline. A row with fewer values than headers is padded
    /// with empty values; extra values are dropped.
    public func render() -> String {
        let columns = headers.count
        let body = rows.map { row in (0..<columns).map { $0 < row.count ? row[$0] : "" } }
        let widths = (0..<columns).map { column in
            ([headers[column]] + body.map { $0[column] }).map(\.count).max() ?? 0
        }
        func line(_ values: [String]) -> String {
            var text = values.enumerated().map { column, value in
                let alignment = column < alignments.count ? alignments[column] : .left
                return alignment == .left ? value.rightPadded(to: widths[column]) : value.leftPadded(to: widths[column])
            }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        var text = line(headers) + "\n" + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in body { text += line(row) + "\n" }
        return text
    }
}
