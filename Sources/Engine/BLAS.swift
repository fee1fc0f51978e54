import COpenBLAS
import Foundation

/// OpenBLAS set-up and the single-precision matrix product every product and convolution goes through.
public enum BLAS {
    /// Selects OpenBLAS's AVX-512 kernels on CPUs that have avx512f, unless the user set
    /// `OPENBLAS_CORETYPE`: OpenBLAS 0.3.21 detects these CPUs as Haswell and runs at half speed.
    /// Runs once, before the first BLAS call of the process.
    public static let configured: Bool = {
        // Keep freed tensor buffers in the heap for reuse instead of unmapping them: every step allocates
        // the same large buffers, and fresh pages cost a page fault each.
        cengine_keep_freed_buffers()
        if getenv("OPENBLAS_CORETYPE") == nil, cpuHasAVX512F() {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
            gotoblas_dynamic_quit()
            gotoblas_dynamic_init()
        }
        // OpenBLAS stays single-threaded: the engine splits large products and convolutions over
        // `ComputeThreads` itself, so idle BLAS threads never spin beside ours.
        openblas_set_num_threads(1)
        return true
    }()

    /// The kernel family OpenBLAS is using (e.g. "SkylakeX").
    public static var coreName: String {
        _ = configured
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    static func cpuHasAVX512F() -> Bool {
        // /proc files report size 0, so read line by line with stdio rather than Foundation.
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            if text.hasPrefix("flags") {
                return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).contains("avx512f")
            }
        }
        return false
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
