import Foundation
import XCTest

/// The README's two commands, in both orders, under every OpenBLAS kernel setting the project supports, with the
/// default convolution backend and with im2col + OpenBLAS (`METABENCH_CONVOLUTIONS=openblas`, so that its
/// baselines are checked on every machine): `bench --suite smoke` (the main job)
/// reuses the shipped cells and leaves every shipped file as it was, and the smoke regression check (`bench check
/// --suite smoke`, what the test command's smoke test does) reproduces every stored cell exactly, against the
/// shipped results or the baseline of those numerics.
final class ReadmeCommandsTests: XCTestCase {
    static let root = BenchOutputTests.packageRoot

    /// A copy of what the commands read and write (suites/ and results/smoke/), as a fresh clone has them.
    private func workspace() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("results"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("suites"), to: folder.appendingPathComponent("suites"))
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("results/smoke"),
                                         to: folder.appendingPathComponent("results/smoke"))
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder
    }

    /// Every file under `folder`, by relative path.
    private func contents(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = enumerator?.nextObject() as? URL {
            guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
            out[String(url.path.dropFirst(folder.path.count))] = try Data(contentsOf: url)
        }
        return out
    }

    private func bench(_ arguments: [String], in folder: URL, coretype: String?,
                       convolutions: String?) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = BenchOutputTests.benchExecutable
        process.arguments = arguments
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = coretype
        environment["METABENCH_CONVOLUTIONS"] = convolutions
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private static var cpuHasAVX512F: Bool {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return text.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").contains("avx512f") ?? false
    }

    /// `coretype` nil: the variable unset (MetaBench picks SkylakeX on AVX-512 CPUs, else OpenBLAS detects the
    /// CPU); `convolutions` nil: unset, the kernel family's default backend.
    private func checkCommands(coretype: String?, convolutions: String? = nil, threads: String? = nil,
                               expectWarning: Bool = false) throws {
        guard FileManager.default.isExecutableFile(atPath: BenchOutputTests.benchExecutable.path) else {
            return XCTFail("bench was not built beside the tests: \(BenchOutputTests.benchExecutable.path)")
        }
        let setting = "OPENBLAS_CORETYPE=\(coretype ?? "(unset)")" + (convolutions.map { " METABENCH_CONVOLUTIONS=\($0)" } ?? "")
        let folder = try workspace()
        let shipped = try contents(folder.appendingPathComponent("results/smoke"))
        XCTAssertFalse(shipped.isEmpty)

        func runMain(_ when: String) throws {
            let run = try bench(["--suite", "smoke"], in: folder, coretype: coretype, convolutions: convolutions)
            XCTAssertEqual(run.status, 0, "\(setting), main command \(when): \(run.output)")
            XCTAssertTrue(run.output.contains("0 cells trained, 7 reused"), "\(setting), \(when): \(run.output)")
            let now = try contents(folder.appendingPathComponent("results/smoke"))
            XCTAssertEqual(now.keys.sorted(), shipped.keys.sorted(), "\(setting), \(when): files added or removed")
            for (name, data) in shipped where now[name] != data {
                XCTFail("\(setting), main command \(when): it rewrote \(name) (git status would not be clean)")
            }
        }

        try runMain("first")
        let check = try bench(["check", "--suite", "smoke"] + (threads.map { ["--threads", $0] } ?? []), in: folder,
                              coretype: coretype, convolutions: convolutions)
        if let numerics = Self.missingBaseline(check.output) {
            throw XCTSkip("\(setting): no stored smoke results were made with \(numerics) (this machine's numerics), so the exact check cannot run here; record a baseline on this machine with `OPENBLAS_CORETYPE=… METABENCH_CONVOLUTIONS=… bench run --suite smoke --fresh --output results/smoke/baselines/<name>` (the kernels, plus `-im2col` or `-winograd` where that is not their default backend) and commit it")
        }
        XCTAssertEqual(check.output.contains("warning: OPENBLAS_CORETYPE=\(coretype ?? "")"), expectWarning, check.output)
        XCTAssertEqual(check.status, 0, "\(setting): \(check.output)")
        XCTAssertTrue(check.output.contains("check passed: 7 cells match exactly"), "\(setting): \(check.output)")
        XCTAssertFalse(check.output.contains("note:"), "\(setting): \(check.output)")
        try runMain("after the check")
    }

    /// This machine's numerics (OpenBLAS version and kernels), when `bench check` says no stored cell has them.
    private static func missingBaseline(_ output: String) -> String? {
        for line in output.split(separator: "\n") where line.hasPrefix("note:") {
            guard let range = line.range(of: "no stored cell made with ") else { continue }
            return line[range.upperBound...].components(separatedBy: " (stored:").first
        }
        return nil
    }

    func testReadmeCommandsWithKernelsUnset() throws { try checkCommands(coretype: nil) }

    /// One thread here: results do not depend on the thread count (the shipped cells used two).
    func testReadmeCommandsWithHaswellKernels() throws { try checkCommands(coretype: "Haswell", threads: "1") }

    func testReadmeCommandsWithKernelsUnsetAndIm2col() throws {
        try checkCommands(coretype: nil, convolutions: "openblas")
    }

    func testReadmeCommandsWithHaswellKernelsAndIm2col() throws {
        try checkCommands(coretype: "Haswell", convolutions: "openblas", threads: "1")
    }

    /// On a CPU without AVX-512, OpenBLAS would die of an illegal instruction with these kernels: MetaBench warns
    /// and uses the kernels OpenBLAS detects, so both commands still pass.
    func testReadmeCommandsWithSkylakeXKernels() throws {
        try checkCommands(coretype: "SkylakeX", expectWarning: !Self.cpuHasAVX512F)
    }
}
