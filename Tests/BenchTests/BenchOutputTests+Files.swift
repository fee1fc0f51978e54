import Foundation
import XCTest

extension BenchOutputTests {
    /// Like `check`, for a command that writes files: `{tmp}` in `arguments` becomes a fresh temporary folder,
    /// and the expectation holds the command's output followed by each of `files` (paths under that folder).
    /// The folder, the bench executable and the package root appear as `$TMP`, `$BENCH` and `$ROOT`, so the
    /// expectation names no machine.
    func checkWriting(_ name: String, _ arguments: [String], files: [String],
                      file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.benchExecutable.path) else {
            XCTFail("bench was not built beside the tests: \(Self.benchExecutable.path)", file: file, line: line)
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-output-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var actual = try Self.bench(arguments.map { $0.replacingOccurrences(of: "{tmp}", with: folder) })
        for name in files {
            let path = folder + "/" + name
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                XCTFail("bench \(arguments.joined(separator: " ")) did not write \(name)", file: file, line: line)
                return
            }
            actual += "--- file \(name)\n\(text)"
        }
        actual = actual.replacingOccurrences(of: Self.benchExecutable.path, with: "$BENCH")
            .replacingOccurrences(of: Self.packageRoot.path, with: "$ROOT")
            .replacingOccurrences(of: folder, with: "$TMP")
        let path = Self.expected.appendingPathComponent(name + ".txt")
        if Self.recording {
            try actual.write(to: path, atomically: true, encoding: .utf8)
            return
        }
        guard let stored = try? String(contentsOf: path, encoding: .utf8) else {
            XCTFail("no stored output \(path.path): run the tests once with METABENCH_RECORD=1", file: file, line: line)
            return
        }
        let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let s = stored.split(separator: "\n", omittingEmptySubsequences: false)
        if let first = zip(a, s).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset ?? (a.count == s.count ? nil : min(a.count, s.count)) {
            XCTFail("""
                bench \(arguments.joined(separator: " ")): output differs from \(name).txt at line \(first + 1)
                expected: \(first < s.count ? String(s[first]) : "(end of output)")
                actual:   \(first < a.count ? String(a[first]) : "(end of output)")
                """, file: file, line: line)
        }
    }
}
