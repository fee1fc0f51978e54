import Foundation
import XCTest

/// The datasets the tests read, all inside the repository: `datasets/omniglot-small` (real Omniglot, shipped
/// as data of the project) and `Tests/Fixtures/layout-fixtures` (torchmeta layouts written by h5py).
enum SharedData {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The path of `relative` (`omniglot-small/…` or `layout-fixtures/…`); fails the test (not skips) when missing.
    static func path(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let base = relative.hasPrefix("layout-fixtures") ? "Tests/Fixtures" : "datasets"
        let path = packageRoot.appendingPathComponent(base).appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("test data missing: \(path) (it ships with the repository)", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return path
    }
}

/// A fresh temporary folder, removed when the test ends.
func makeTemporaryFolder(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// The error `body` throws, failing the test when it returns.
func thrownError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> Error? {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return nil
    } catch {
        return error
    }
}

func writeJSON(_ object: Any, to path: String) throws {
    let data = try JSONSerialization.data(withJSONObject: object)
    try data.write(to: URL(fileURLWithPath: path))
}

func sum(_ bytes: some Sequence<UInt8>) -> Int { bytes.reduce(0) { $0 + Int($1) } }
