import Engine
import Foundation

/// What produced a cell's numbers: the code (commit, whether its sources had uncommitted changes), the
/// compiler, the OpenBLAS kernels (and the convolutions' backend when not im2col), the machine and when. Stored in each cell; never rewritten when the cell
/// is reused.
public struct Provenance: Sendable, Codable, Hashable {
    public var metabench: String
    /// The commit of the MetaBench checkout that was built, or "unknown" (not built from a git checkout).
    public var gitCommit: String
    /// Whether `Sources/` or `Package.swift` differed from that commit (nil when unknown).
    public var uncommittedChanges: Bool?
    public var swift: String
    public var openblasVersion: String
    /// The OpenBLAS kernel family (e.g. "Haswell", "SkylakeX"): it changes the last bits of results.
    public var openblasKernels: String
    /// What computed the convolutions when it was not im2col + OpenBLAS (e.g. "Winograd F(2×2, 3×3), LIBXSMM 1.17
    /// hsw", the default with the AVX2 kernel families, `skx` with the AVX-512 ones, or "oneDNN 2.6.3 avx2"); nil for
    /// im2col + OpenBLAS (the only backend before 2026-12), so cells made with it read as before.
    public var convolutions: String?
    public var cpuModel: String
    public var coreCount: Int
    /// Compute threads of the run (results do not depend on it).
    public var threads: Int
    /// When the cell finished (ISO 8601, UTC).
    public var date: String

    /// This process, now.
    public static func current(threads: Int, date: Date = Date()) -> Provenance {
        let code = SourceCheckout.state
        let machine = MachineInfo.current()
        return Provenance(metabench: MetaBenchInfo.version, gitCommit: code.commit, uncommittedChanges: code.dirty,
                          swift: MetaBenchInfo.compilerVersion, openblasVersion: BLAS.version,
                          openblasKernels: BLAS.coreName,
                          convolutions: Convolutions.backend == .openBLAS ? nil : Convolutions.description,
                          cpuModel: machine.cpuModel, coreCount: machine.coreCount,
                          threads: threads, date: ISO8601DateFormatter().string(from: date))
    }

    /// What decides the bits of a result, beyond the cell's configuration: OpenBLAS version and kernels, and
    /// oneDNN's version and instruction set when it computed the convolutions. Two cells of one configuration
    /// with the same numerics must be identical.
    public var numerics: String {
        "OpenBLAS \(openblasVersion) \(openblasKernels)" + (convolutions.map { ", convolutions \($0)" } ?? "")
    }
}

/// A group of cells of a result set that share everything of their provenance but the date and threads.
public struct ProducerSummary: Sendable, Codable, Equatable {
    public var metabench: String
    public var gitCommit: String
    public var uncommittedChanges: Bool?
    public var swift: String
    public var openblasVersion: String
    public var openblasKernels: String
    public var convolutions: String?
    public var cpuModel: String
    public var coreCount: Int
    /// The cells this producer made (`label setting seed`), in result order.
    public var cells: [String]
    /// The earliest and latest date of those cells.
    public var firstDate: String
    public var lastDate: String

    /// Groups cells by producer, in the order producers first appear. Cells without provenance (never
    /// written by this version) form no group.
    public static func summarize(_ cells: [CellResult]) -> [ProducerSummary] {
        var groups: [ProducerSummary] = []
        for cell in cells {
            guard let p = cell.provenance else { continue }
            let key = ProducerSummary(metabench: p.metabench, gitCommit: p.gitCommit,
                                      uncommittedChanges: p.uncommittedChanges, swift: p.swift,
                                      openblasVersion: p.openblasVersion, openblasKernels: p.openblasKernels,
                                      convolutions: p.convolutions, cpuModel: p.cpuModel, coreCount: p.coreCount, cells: [], firstDate: p.date,
                                      lastDate: p.date)
            if let i = groups.firstIndex(where: { $0.sameProducer(as: key) }) {
                groups[i].cells.append(cell.key.description)
                groups[i].firstDate = min(groups[i].firstDate, p.date)
                groups[i].lastDate = max(groups[i].lastDate, p.date)
            } else {
                var group = key
                group.cells = [cell.key.description]
                groups.append(group)
            }
        }
        return groups
    }

    func sameProducer(as other: ProducerSummary) -> Bool { identity == other.identity }

    private var identity: [String] {
        [metabench, gitCommit, uncommittedChanges.map { "\($0)" } ?? "nil", swift, openblasVersion, openblasKernels,
         convolutions ?? "", cpuModel, "\(coreCount)"]
    }

    /// One line for a report: `commit abc (clean), Swift 6.3, OpenBLAS 0.3.21 Haswell, CPU (2 cores), dates`.
    public var text: String {
        let commit = gitCommit == "unknown" ? "unknown commit" : "commit \(gitCommit.prefix(12))"
        let changes: String
        switch uncommittedChanges {
        case .some(true): changes = " with uncommitted changes"
        case .some(false): changes = ""
        case .none: changes = " (uncommitted changes unknown)"
        }
        let dates = firstDate == lastDate ? firstDate : "\(firstDate) to \(lastDate)"
        let convolutionsText = convolutions.map { "; convolutions by \($0)" } ?? ""
        return "MetaBench \(metabench), \(commit)\(changes); \(swift); OpenBLAS \(openblasVersion) \(openblasKernels) kernels"
            + "\(convolutionsText); \(cpuModel), \(coreCount) cores; \(dates)"
    }
}

/// The git state of the MetaBench sources this binary was built from (found from the source path the
/// compiler recorded), read once per process.
enum SourceCheckout {
    static let state: (commit: String, dirty: Bool?) = {
        // #filePath is Sources/Runner/Provenance.swift inside the package the binary was built from.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: root + "/Package.swift"),
              let commit = git(["-C", root, "rev-parse", "HEAD"]), !commit.isEmpty else { return ("unknown", nil) }
        // What compiles into the binary: the sources and the package manifest (results and suites are not code).
        let status = git(["-C", root, "status", "--porcelain", "--untracked-files=normal", "--", "Sources", "Package.swift"])
        return (commit, status.map { !$0.isEmpty })
    }()

    private static func git(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
