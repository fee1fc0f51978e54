import FewShotData
import Foundation
@testable import Runner
import XCTest

final class AtomicFileTests: XCTestCase {
    var folder = ""

    override func setUp() { folder = Fixtures.temporaryFolder() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    private func contents(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// The id of a process that has ended.
    private func deadProcess() throws -> pid_t {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exit 0"]
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    func testAFailedRenameLeavesNoTemporary() throws {
        let target = folder + "/results.json"
        try FileManager.default.createDirectory(atPath: target + "/occupied", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write("{}", to: target)) { error in
            guard case RunnerError.cannotWrite(let path, _)? = error as? RunnerError else {
                return XCTFail("expected cannotWrite, got \(error)")
            }
            XCTAssertEqual(path, target)
        }
        XCTAssertEqual(contents(folder), ["results.json"])
    }

    func testAFailingWriterLeavesNoTemporary() throws {
        struct Stop: Error {}
        var temporaryName = ""
        XCTAssertThrowsError(try AtomicWrite.replace(folder + "/model.h5") { temporary in
            temporaryName = (temporary as NSString).lastPathComponent
            XCTAssertTrue(FileManager.default.createFile(atPath: temporary, contents: Data("half".utf8)))
            throw Stop()
        }) { XCTAssertTrue($0 is Stop) }
        XCTAssertEqual(AtomicWrite.writerProcess(ofTemporary: temporaryName), getpid(), temporaryName)
        XCTAssertEqual(contents(folder), [])
    }

    func testTemporaryNames() {
        XCTAssertEqual(AtomicWrite.writerProcess(ofTemporary: ".results.json.tmp-4242-99"), 4242)
        XCTAssertEqual(AtomicWrite.writerProcess(ofTemporary: ".a.tmp-b.tmp-7-1"), 7)
        for name in ["results.json.tmp-4242-99", ".tmp-4242-99", ".a.tmp-4242", ".a.tmp-0-1", ".a.tmp--3-1",
                     ".a.tmp-12-x", ".a.tmp-12-1-2", ".a.tmp-99999999999-1", ".a.tmp-+5-1", ".a.tmp-١٢-1"] {
            XCTAssertNil(AtomicWrite.writerProcess(ofTemporary: name), name)
        }
    }

    func testStaleTemporariesOfEndedProcessesAreSwept() throws {
        let dead = try deadProcess()
        let live = getpid()
        let outside = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.createDirectory(atPath: folder + "/cells", withIntermediateDirectories: true)
        let stale = [".results.json.tmp-\(dead)-17", "cells/.a 5w1s seed 0.json.tmp-\(dead)-3"]
        let kept = [".REPORT.md.tmp-\(live)-5", ".x.tmp-1-2", "results.json.tmp-\(dead)-4", ".y.tmp-\(dead)",
                    "cells/b.json"]
        for name in stale + kept {
            XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/" + name, contents: Data("x".utf8)), name)
        }
        try FileManager.default.createDirectory(atPath: folder + "/.z.tmp-\(dead)-6", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/cells/deeper", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/cells/deeper/.d.tmp-\(dead)-1", contents: Data()))
        XCTAssertTrue(FileManager.default.createFile(atPath: outside + "/.o.tmp-\(dead)-1", contents: Data()))
        try FileManager.default.createSymbolicLink(atPath: folder + "/link", withDestinationPath: outside)

        let removed = AtomicFile.removeStaleTemporaries(in: folder)
        XCTAssertEqual(Set(removed), Set(stale.map { folder + "/" + $0 }))
        for name in kept + [".z.tmp-\(dead)-6", "link/.o.tmp-\(dead)-1", "cells/deeper/.d.tmp-\(dead)-1"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + name), name)
        }
        XCTAssertEqual(AtomicFile.removeStaleTemporaries(in: folder + "/missing"), [])
    }
}
