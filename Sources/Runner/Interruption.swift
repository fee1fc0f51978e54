import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns Ctrl-C (SIGINT) and SIGTERM into an error thrown at the next `check()`, so that a run stops
/// between steps: in-progress writes finish, `defer`s remove temporary folders, and the command can say
/// why it stopped. The handler only stores the signal number and restores the default actions, so a second
/// signal ends the process at once.
public enum Interruption {
    /// The signals `install()` handles.
    public static let signals: [Int32] = [SIGINT, SIGTERM]

    /// The last signal received, 0 for none: a `sig_atomic_t` outside Swift's exclusivity checks, since
    /// the handler may run on a thread in the middle of reading it.
    private static let received: UnsafeMutablePointer<sig_atomic_t> = {
        let pointer = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    /// The actions `install()` replaced, restored by `uninstall()`.
    private static var replaced: [Int32: sigaction] = [:]
    private static let lock = NSLock()

    /// Handles SIGINT and SIGTERM from now on. A signal the process inherited as ignored (`nohup`, a
    /// background job) stays ignored. Calling it again does nothing.
    public static func install() {
        lock.lock(); defer { lock.unlock() }
        _ = received  // initialised here, never first in the handler
        for signal in signals where replaced[signal] == nil {
            var current = sigaction()
            guard sigaction(signal, nil, &current) == 0, !isIgnored(current) else { continue }
            var action = sigaction()
            setHandler(&action, Interruption.handle)
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            var previous = sigaction()
            if sigaction(signal, &action, &previous) == 0 { replaced[signal] = previous }
        }
    }

    /// Restores the actions `install()` replaced and forgets a received signal (for tests).
    public static func uninstall() {
        lock.lock(); defer { lock.unlock() }
        for (signal, var previous) in replaced { sigaction(signal, &previous, nil) }
        replaced = [:]
        received.pointee = 0
    }

    /// The signal received since `install()`, if any.
    public static var pending: Int32? {
        let signal = received.pointee
        return signal == 0 ? nil : Int32(signal)
    }

    /// Throws `RunnerError.interrupted` when a signal has arrived.
    public static func check() throws {
        if let signal = pending { throw RunnerError.interrupted(signal: signal) }
    }

    /// The conventional exit status of a command that stopped for `signal`: 128 + its number (130 for
    /// SIGINT, 143 for SIGTERM).
    public static func exitStatus(for signal: Int32) -> Int32 { 128 + signal }

    /// "SIGINT", "SIGTERM", or "signal N".
    public static func name(of signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(signal)"
        }
    }

    /// The handler: async-signal-safe (a store and `signal` calls only).
    private static let handle: @convention(c) (Int32) -> Void = { number in
        Interruption.received.pointee = sig_atomic_t(number)
        _ = signal(SIGINT, SIG_DFL)
        _ = signal(SIGTERM, SIG_DFL)
    }

    private static func isIgnored(_ action: sigaction) -> Bool {
        #if canImport(Glibc)
        let handler = action.__sigaction_handler.sa_handler
        #else
        let handler = action.__sigaction_u.__sa_handler
        #endif
        return unsafeBitCast(handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    private static func setHandler(_ action: inout sigaction, _ handler: @escaping @convention(c) (Int32) -> Void) {
        #if canImport(Glibc)
        action.__sigaction_handler.sa_handler = handler
        #else
        action.__sigaction_u.__sa_handler = handler
        #endif
    }
}
