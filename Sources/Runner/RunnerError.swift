import Foundation

/// What can go wrong running a suite or reading results, each naming the problem for the user.
public enum RunnerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case dataset(file: String, line: Int?, message: String)
    case unknownLearnerSelection(String, labels: [String])
    case cannotWrite(path: String, reason: String)
    case noResults(path: String, reason: String)
    case invalidLogits(learner: String, expected: [Int], got: [Int])
    case invalidOption(String)
    /// Another process holds the output folder's lock; `holder` is what it wrote there, when readable.
    case outputBusy(folder: String, holder: OutputLock.Holder?)
    /// SIGINT or SIGTERM arrived; the run stopped at the next check (see `Interruption`).
    case interrupted(signal: Int32)
    /// Another process is training this cell (two shards given the same index, say).
    case cellBusy(cell: String, holder: OutputLock.Holder?)

    public var description: String {
        switch self {
        case .dataset(let file, let line, let message):
            return "\(file)\(line.map { ":\($0)" } ?? ""): dataset: \(message)"
        case .unknownLearnerSelection(let name, let labels):
            return "--only \(name): no learner of the suite has that label or name (the suite has: \(labels.joined(separator: ", ")))"
        case .cannotWrite(let path, let reason):
            return "cannot write \(path): \(reason)"
        case .noResults(let path, let reason):
            return "\(path): \(reason)"
        case .invalidLogits(let learner, let expected, let got):
            return "learner '\(learner)' returned logits of shape \(got), expected \(expected) (queries × ways)"
        case .invalidOption(let message):
            return message
        case .outputBusy(let folder, let holder):
            let who = holder.map { " (pid \($0.pid) on \($0.host) since \($0.since))" } ?? ""
            return "\(folder) is being written by another bench process\(who); wait for it to finish or choose another --output"
        case .interrupted(let signal):
            return "interrupted by \(Interruption.name(of: signal))"
        case .cellBusy(let cell, let holder):
            let who = holder.map { " (pid \($0.pid) on \($0.host) since \($0.since))" } ?? ""
            return "cell \(cell) is being trained by another bench process\(who): two shards with the same index?"
        }
    }

    public var errorDescription: String? { description }
}
