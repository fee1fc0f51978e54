/// How deeply a YAML text nests, measured on the text before it is composed: Yams composes (and Swift
/// destroys) a node tree recursively, so a deeply nested file would overflow the stack instead of failing
/// with an error.
///
/// The scan follows block structure by indentation (a deeper line opens a level, as does each `- `, `? `
/// or `: ` indicator that starts a line) and flow structure by `[`/`{` and `]`/`}`, skipping comments,
/// quoted scalars and block scalars (`|`, `>`). An alias counts with the depth of the node it names: the
/// deepest level reached between its anchor and the first alias of it, measured from the anchor, so that
/// chains of aliases cannot nest without limit. The measure may exceed the composed tree's depth by a level here
/// and there (a plain scalar continued on a deeper line counts as a level, and a node's height is taken
/// as the deepest level reached between its anchor and the first alias of it); it never falls short of
/// the collections' nesting.
enum YAMLNesting {
    /// The first line (1-based) at which `text` nests deeper than `limit` levels, or nil.
    static func firstLine(deeperThan limit: Int, in text: String) -> Int? {
        var scanner = Scanner(limit: limit)
        return scanner.scan(Array(text.utf8))
    }

    /// The largest depth the scan measures in `text` (for tests).
    static func depth(of text: String) -> Int {
        var scanner = Scanner(limit: Int.max)
        _ = scanner.scan(Array(text.utf8))
        return scanner.history.maximum
    }

    /// Depths recorded in order, answering "the largest depth recorded since record i" in O(log n): a stack
    /// of (index, depth) with depths strictly decreasing, as each record removes the smaller ones before it.
    struct History {
        private(set) var count = 0
        private var stack: [(index: Int, depth: Int)] = []

        mutating func record(_ depth: Int) {
            while let last = stack.last, last.depth <= depth { stack.removeLast() }
            stack.append((count, depth))
            count += 1
        }

        /// The largest depth recorded at index `index` or later, or nil.
        func maximum(since index: Int) -> Int? {
            var low = 0, high = stack.count
            while low < high {
                let mid = (low + high) / 2
                if stack[mid].index < index { low = mid + 1 } else { high = mid }
            }
            return low < stack.count ? stack[low].depth : nil
        }

        var maximum: Int { stack.first?.depth ?? 0 }
    }

    struct Scanner {
        let limit: Int
        var history = History()
        /// Open block nodes by effective column: 2 × the column, plus 1 for a `- `/`? `/`: ` entry (so a
        /// sequence written at its parent key's indentation still counts as one level deeper).
        var block: [Int] = []
        var flow = 0
        /// The quote character of a quoted scalar open at the end of the previous line.
        var quote: UInt8?
        /// While skipping a block scalar: the indentation its content lines exceed.
        var blockScalarIndent: Int?
        /// Anchor name → the history index when it was defined, the depth of its node, and the node's
        /// height once an alias has used it (the node is complete by then, so its height is fixed).
        var anchors: [String: (index: Int, depth: Int, height: Int?)] = [:]
        var line = 0
        var deepestLine: Int?

        static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), hash = UInt8(ascii: "#")
        static let dash = UInt8(ascii: "-"), question = UInt8(ascii: "?"), colon = UInt8(ascii: ":")
        static let comma = UInt8(ascii: ","), single = UInt8(ascii: "'"), double = UInt8(ascii: "\"")
        static let backslash = UInt8(ascii: "\\"), pipe = UInt8(ascii: "|"), greater = UInt8(ascii: ">")
        static let ampersand = UInt8(ascii: "&"), star = UInt8(ascii: "*"), bang = UInt8(ascii: "!")
        static let openers: Set<UInt8> = [UInt8(ascii: "["), UInt8(ascii: "{")]
        static let closers: Set<UInt8> = [UInt8(ascii: "]"), UInt8(ascii: "}")]

        static func isBlank(_ c: UInt8) -> Bool { c == space || c == tab }

        /// Records a depth; returns true (and remembers the line) when it exceeds the limit.
        mutating func reach(_ depth: Int) -> Bool {
            history.record(depth)
            if depth > limit, deepestLine == nil { deepestLine = line }
            return deepestLine != nil
        }

        /// Opens a block level at effective column `column` unless one is open there already.
        mutating func push(_ column: Int) -> Bool {
            if let top = block.last, top >= column { return false }
            block.append(column)
            return reach(block.count + flow)
        }

        mutating func scan(_ bytes: [UInt8]) -> Int? {
            var start = 0
            while start <= bytes.count, deepestLine == nil {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
                var lineEnd = end
                if lineEnd > start, bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                line += 1
                scanLine(bytes[start..<lineEnd])
                start = end + 1
            }
            return deepestLine
        }

        mutating func scanLine(_ text: ArraySlice<UInt8>) {
            var p = text.startIndex
            let end = text.endIndex
            var indent = 0
            while p < end, text[p] == Self.space { p += 1; indent += 1 }
            let blank = p == end || text[p] == Self.hash || (text[p] == Self.tab && text[p...].allSatisfy(Self.isBlank))

            if let parent = blockScalarIndent {
                if blank || indent > parent { return }
                blockScalarIndent = nil
            }
            if quote == nil, flow == 0 {
                if blank { return }
                // A document marker starts a new document.
                if indent == 0, text.count >= 3, text.prefix(3).elementsEqual("---".utf8) || text.prefix(3).elementsEqual("...".utf8),
                   text.count == 3 || Self.isBlank(text[p + 3]) {
                    block = []
                    p += 3
                } else {
                    // Close the levels this line is not inside of, then open one per leading indicator
                    // and one for the content.
                    let first = 2 * indent + (isIndicator(text, p) ? 1 : 0)
                    while let top = block.last, top > first { block.removeLast() }
                    while p < end, isIndicator(text, p) {
                        if push(2 * (p - text.startIndex) + 1) { return }
                        p += 1
                        while p < end, Self.isBlank(text[p]) { p += 1 }
                    }
                    if p < end, opensContentLevel(text, p), push(2 * (p - text.startIndex)) { return }
                }
            } else {
                p = text.startIndex
            }
            scanTokens(text, from: p, indent: indent)
        }

        /// Whether a `- `, `? ` or `: ` indicator (or one alone at the end of the line) is at `p`.
        func isIndicator(_ text: ArraySlice<UInt8>, _ p: Int) -> Bool {
            guard p < text.endIndex, [Self.dash, Self.question, Self.colon].contains(text[p]) else { return false }
            return p + 1 == text.endIndex || Self.isBlank(text[p + 1])
        }

        /// Whether content starting at `p` is a node of its own at this column (not a comment, a flow
        /// collection, a block scalar, or properties alone, which are counted where they lead).
        func opensContentLevel(_ text: ArraySlice<UInt8>, _ p: Int) -> Bool {
            var q = p
            while q < text.endIndex, text[q] == Self.ampersand || text[q] == Self.bang {
                while q < text.endIndex, !Self.isBlank(text[q]) { q += 1 }
                while q < text.endIndex, Self.isBlank(text[q]) { q += 1 }
            }
            guard q < text.endIndex else { return false }
            let c = text[q]
            return c != Self.hash && !Self.openers.contains(c) && c != Self.pipe && c != Self.greater
        }

        /// Flow brackets, quotes, comments, anchors, aliases and block-scalar headers from `p` on.
        mutating func scanTokens(_ text: ArraySlice<UInt8>, from start: Int, indent: Int) {
            var p = start
            let end = text.endIndex
            // Whether a new scalar or collection may begin here (only there does a quote or bracket count
            // in block context; `Finn's` is a plain scalar).
            var tokenStart = true
            while p < end {
                let c = text[p]
                if let q = quote {
                    if q == Self.double, c == Self.backslash { p += 2; continue }
                    if c == q {
                        if q == Self.single, p + 1 < end, text[p + 1] == Self.single { p += 2; continue }
                        quote = nil
                        tokenStart = false
                    }
                    p += 1
                    continue
                }
                if Self.isBlank(c) { p += 1; continue }
                if c == Self.hash, p == text.startIndex || Self.isBlank(text[p - 1]) { return }
                if Self.openers.contains(c), flow > 0 || tokenStart {
                    flow += 1
                    if reach(block.count + flow) { return }
                    tokenStart = true
                } else if Self.closers.contains(c), flow > 0 {
                    flow -= 1
                    tokenStart = false
                } else if c == Self.comma, flow > 0 {
                    tokenStart = true
                } else if c == Self.colon, p + 1 == end || Self.isBlank(text[p + 1]) || flow > 0 {
                    tokenStart = true
                } else if (c == Self.dash || c == Self.question), tokenStart, p + 1 == end || Self.isBlank(text[p + 1]) {
                    tokenStart = true
                } else if (c == Self.single || c == Self.double), tokenStart {
                    quote = c
                } else if c == Self.ampersand || c == Self.star || c == Self.bang, tokenStart {
                    var q = p + 1
                    while q < end, !Self.isBlank(text[q]), flow == 0 || !(Self.openers.contains(text[q]) || Self.closers.contains(text[q]) || text[q] == Self.comma) {
                        q += 1
                    }
                    let name = String(decoding: text[(p + 1)..<q], as: UTF8.self)
                    let depth = block.count + flow
                    if c == Self.ampersand {
                        anchors[name] = (history.count, depth, nil)
                        history.record(depth)
                    } else if c == Self.star {
                        // The alias brings the anchored node's levels below it.
                        var height = 0
                        if let anchor = anchors[name] {
                            height = anchor.height
                                ?? max(0, (history.maximum(since: anchor.index) ?? anchor.depth) - anchor.depth)
                            anchors[name]?.height = height
                        }
                        let (total, overflow) = depth.addingReportingOverflow(height)
                        if reach(overflow ? Int.max : total) { return }
                        tokenStart = false
                    }
                    p = q
                    continue
                } else if (c == Self.pipe || c == Self.greater), tokenStart, flow == 0 {
                    blockScalarIndent = indent
                    return
                } else {
                    tokenStart = false
                }
                p += 1
            }
        }
    }
}
