import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a crash inside a libhdf5 call into a clean error, as the last line of defence.
///
/// libhdf5 1.10 trusts many structures of a file: the checks made before reading (`ReadLimits`,
/// `GlobalHeap`) cover the ones a damaged dataset file reaches in practice, but not all — a B-tree node
/// that names itself as its child sends libhdf5 into endless recursion until the stack overflows. While a
/// thread holds the HDF5 lock (`withHDF5`), a memory fault (SIGSEGV, SIGBUS) or an abort (SIGABRT, e.g.
/// from the C library's heap checks) on that thread prints
/// `Error: reading <file>: libhdf5 crashed (signal N); the file is likely corrupt` on standard error and
/// ends the process with `_exit(1)`. Anywhere else, the signal goes to the handler that was installed
/// before (the Swift runtime's backtracer), unchanged. Each thread that calls libhdf5 gets an alternate
/// signal stack, so that a stack overflow can still be reported.
enum CrashGuard {
    /// Called by `withHDF5` holding the HDF5 lock: marks the current thread as inside libhdf5 for `path`.
    static func enter(_ path: String?) {
        _ = installed
        if depth == 0 { prepareThread() }
        depth += 1
        if let path { message = crashMessage(for: path) } else if message == nil { message = crashMessage(for: "an HDF5 file") }
        holder = pthread_self()
        inside = 1
    }

    /// Called by `withHDF5` holding the HDF5 lock, when the call that `enter` began ends.
    static func leave() {
        depth -= 1
        if depth == 0 {
            inside = 0
            message = nil
        }
    }

    // MARK: State read by the signal handler

    /// 1 while `holder` is inside a libhdf5 call.
    nonisolated(unsafe) private static var inside: sig_atomic_t = 0
    nonisolated(unsafe) private static var holder: pthread_t = pthread_self()
    /// The text before the signal number, as a C string that is never freed.
    nonisolated(unsafe) private static var message: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var depth = 0
    nonisolated(unsafe) private static var messages: [String: UnsafeMutablePointer<CChar>] = [:]
    nonisolated(unsafe) private static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 3)
    nonisolated(unsafe) private static let guardedSignals: UnsafeMutablePointer<Int32> = {
        let signals = UnsafeMutablePointer<Int32>.allocate(capacity: 3)
        signals.initialize(from: [SIGSEGV, SIGBUS, SIGABRT], count: 3)
        return signals
    }()

    private static func crashMessage(for path: String) -> UnsafeMutablePointer<CChar> {
        if let known = messages[path] { return known }
        let made = strdup("Error: reading \(path): libhdf5 crashed (signal ")!
        messages[path] = made
        return made
    }

    /// Installs the handler for the three signals, keeping the previous handlers.
    private static let installed: Bool = {
        _ = tail
        for index in 0..<3 {
            let signal = guardedSignals[index]
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_sigaction = handle
            #else
            action.__sigaction_u.__sa_sigaction = handle
            #endif
            action.sa_flags = SA_SIGINFO | SA_ONSTACK
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, previous + index)
        }
        return true
    }()

    /// The end of the message, as a C string.
    nonisolated(unsafe) private static let tail = strdup("); the file is likely corrupt\n")!

    /// The handler: writes with `write(2)` only and ends with `_exit`, both safe in a signal handler.
    private static let handle: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { signal, info, _ in
        if inside == 1, pthread_equal(holder, pthread_self()) != 0, let message {
            _ = write(2, message, strlen(message))
            var digits: (CChar, CChar, CChar) = (0, 0, 0)
            withUnsafeMutableBytes(of: &digits) { buffer in
                var value = Int(signal), count = 0
                repeat {
                    buffer[2 - count] = UInt8(48 + value % 10)
                    value /= 10
                    count += 1
                } while value > 0 && count < 3
                _ = write(2, buffer.baseAddress! + (3 - count), count)
            }
            _ = write(2, tail, strlen(tail))
            _exit(1)
        }
        // Not a libhdf5 crash: hand the signal to the previous handler. A fault happens again when this
        // returns; a signal that was sent (abort, kill: si_code ≤ 0) is sent again, and arrives then.
        for index in 0..<3 where guardedSignals[index] == signal {
            sigaction(signal, previous + index, nil)
        }
        if (info?.pointee.si_code ?? 0) <= 0 { raise(signal) }
    }

    /// Gives the current thread an alternate signal stack if it has none.
    private static func prepareThread() {
        var current = stack_t()
        guard sigaltstack(nil, &current) == 0, current.ss_flags & Int32(SS_DISABLE) != 0 else { return }
        let size = 1 << 16
        guard let memory = malloc(size) else { return }
        var stack = stack_t()
        stack.ss_sp = memory
        stack.ss_size = size
        stack.ss_flags = 0
        if sigaltstack(&stack, nil) != 0 { free(memory) }
    }
}
