import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prints a suite's progress: one line per cell, redrawn in place on a terminal; otherwise a line at every
/// tenth of the work (so CI logs stay short) and whenever `heartbeat` seconds passed since the last line
/// (so a log shows life during long phases); then a summary line per finished cell.
public final class ProgressPrinter {
    public let interactive: Bool
    /// The longest silence, in seconds, between lines when not on a terminal.
    public let heartbeat: Double
    private let write: (String) -> Void
    private let clock: () -> Double
    private var lastDraw: Double?
    private var lastLine: Double?
    private var lastDecile = -1
    private var lineOpen = false
    private var cellName = ""

    /// `write` receives text exactly as it should appear (it includes `\r` and `\n`); `clock` gives
    /// seconds on a monotonic scale (injectable for tests).
    public init(interactive: Bool, heartbeat: Double = 5, clock: @escaping () -> Double = ProgressPrinter.uptime,
                write: @escaping (String) -> Void) {
        self.interactive = interactive
        self.heartbeat = heartbeat
        self.clock = clock
        self.write = write
    }

    /// Seconds since boot, monotonic.
    public static func uptime() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }

    /// Progress to standard output, redrawn in place when it is a terminal.
    public static func standardOutput() -> ProgressPrinter {
        ProgressPrinter(interactive: isatty(STDOUT_FILENO) != 0) { text in
            fputs(text, stdout)
            fflush(stdout)
        }
    }

    /// A full line of its own (a note or warning).
    public func message(_ text: String) {
        closeLine()
        writeLine(text)
    }

    func cellStarted(_ name: String) {
        cellName = name
        lastDecile = -1
        lastDraw = nil
    }

    /// Training progress: `done` of `total` iterations.
    func training(done: Int, total: Int, loss: Double?, validation: Double?, elapsed: Double) {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        var text = "\(cellName)  train \(done)/\(total)"
        if let loss { text += "  loss \(Format.number(loss, digits: 4))" }
        if let validation { text += "  val \(Format.fixed(validation, 1))%" }
        if done > 0, done < total {
            text += "  ETA \(Format.duration(elapsed / Double(done) * Double(total - done)))"
        }
        show(text, fraction: fraction, final: false)
    }

    /// Evaluation progress: `done` of `total` episodes.
    func evaluation(done: Int, total: Int, accuracy: Double?) {
        var text = "\(cellName)  evaluate \(done)/\(total)"
        if let accuracy { text += "  acc \(Format.fixed(accuracy, 2))%" }
        show(text, fraction: total > 0 ? Double(done) / Double(total) : 1, final: false, phase: 10)
    }

    /// The summary line of a finished cell.
    func cellFinished(_ summary: String) {
        if interactive, lineOpen {
            write("\r\u{1B}[K" + summary + "\n")
            lineOpen = false
        } else {
            writeLine(summary)
        }
    }

    private func show(_ text: String, fraction: Double, final: Bool, phase: Int = 0) {
        let now = clock()
        if interactive {
            if !final, let lastDraw, now - lastDraw <= 0.1 { return }
            lastDraw = now
            write("\r\u{1B}[K" + text)
            lineOpen = true
        } else {
            let decile = phase + Int((fraction * 10).rounded(.down))
            if decile > lastDecile {
                lastDecile = decile
            } else if let lastLine, now - lastLine < heartbeat {
                return
            }
            writeLine(text, at: now)
        }
    }

    private func writeLine(_ text: String, at time: Double? = nil) {
        write(text + "\n")
        lastLine = time ?? clock()
    }

    private func closeLine() {
        if lineOpen {
            write("\n")
            lineOpen = false
        }
    }
}

/// Number formatting shared by progress, tables and reports.
enum Format {
    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    static func number(_ value: Double, digits: Int) -> String {
        value.isFinite ? String(format: "%.\(digits)g", value) : String(value)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        if seconds < 60 { return "\(Int(seconds.rounded()))s" }
        if seconds < 3600 { return "\(Int(seconds) / 60)m\(String(format: "%02d", Int(seconds) % 60))s" }
        return "\(Int(seconds) / 3600)h\(String(format: "%02d", Int(seconds) % 3600 / 60))m"
    }

    static func mebibytes(_ bytes: Int?) -> String {
        guard let bytes else { return "–" }
        return fixed(Double(bytes) / 1_048_576, 0)
    }
}
