import COpenBLAS
import Foundation

/// OpenBLAS set-up and the single-precision matrix product every product and convolution goes through.
public enum BLAS {
    /// Selects OpenBLAS's AVX-512 kernels on CPUs that have avx512f, unless the user set
    /// `OPENBLAS_CORETYPE`: OpenBLAS 0.3.21 detects these CPUs as Haswell and runs at half speed. A kernel
    /// family the user forces but the CPU cannot run (SkylakeX without AVX-512: OpenBLAS would die of an
    /// illegal instruction at its first product) is replaced by OpenBLAS's own detection, with a warning.
    /// Runs once, before the first BLAS call of the process.
    public static let configured: Bool = {
        // Keep freed tensor buffers in the heap for reuse instead of unmapping them: every step allocates
        // the same large buffers, and fresh pages cost a page fault each.
        cengine_keep_freed_buffers()
        let flags = cpuFlags()
        if let forced = getenv("OPENBLAS_CORETYPE").map({ String(cString: $0) }) {
            if let needed = requiredFlag(forKernels: forced), let flags, !flags.contains(needed) {
                unsetenv("OPENBLAS_CORETYPE")
                gotoblas_dynamic_quit()
                gotoblas_dynamic_init()
                let detected = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
                fputs("warning: OPENBLAS_CORETYPE=\(forced) needs the CPU feature \(needed), which this CPU lacks; "
                      + "using the kernels OpenBLAS detects instead (\(detected))\n", stderr)
            }
        } else if flags?.contains("avx512f") == true {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
            gotoblas_dynamic_quit()
            gotoblas_dynamic_init()
        }
        // OpenBLAS stays single-threaded: the engine splits large products and convolutions over
        // `ComputeThreads` itself, so idle BLAS threads never spin beside ours.
        openblas_set_num_threads(1)
        return true
    }()

    /// The CPU feature an OpenBLAS kernel family needs, for the families whose kernels use AVX2 or AVX-512.
    static func requiredFlag(forKernels name: String) -> String? {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return "avx512f"
        case "haswell", "zen": return "avx2"
        default: return nil
        }
    }

    /// The kernel family OpenBLAS is using (e.g. "SkylakeX").
    public static var coreName: String {
        _ = configured
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS's version, e.g. "0.3.21" (from its build configuration string), or "unknown".
    public static var version: String {
        _ = configured
        guard let config = openblas_get_config() else { return "unknown" }
        // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"
        let words = String(cString: config).split(separator: " ")
        guard words.count >= 2, words[0] == "OpenBLAS" else { return "unknown" }
        return String(words[1])
    }

    /// The CPU's feature flags from /proc/cpuinfo (nil where it cannot be read).
    static func cpuFlags() -> Set<String>? {
        // /proc files report size 0, so read line by line with stdio rather than Foundation.
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            if text.hasPrefix("flags") {
                return Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            }
        }
        return nil
    }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major; op transposes when asked.
    @inline(__always)
    static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = configured
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

}
