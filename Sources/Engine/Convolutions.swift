import CDNNL
import CKernels
import Foundation

/// Which code computes the convolutions' values (forward, input gradient, weight gradient); the operations,
/// their graphs and their gradients of any order are the same whichever it is.
///
/// The default (`METABENCH_CONVOLUTIONS` unset) follows OpenBLAS's kernel family, where measured
/// (`defaultBackend(forKernels:)`): `winograd` with the AVX2 and AVX-512 families (Haswell, Zen, SkylakeX),
/// `openBLAS` elsewhere.
///
/// - `openBLAS`: im2col + OpenBLAS sgemm, in `Conv.swift`.
/// - `oneDNN`: Debian's oneDNN direct convolutions behind the same NCHW buffers, each call single-threaded on
///   the engine's thread, inputs reordered into the layout its kernel chose and outputs back. Faster where its
///   kernels are (most with AVX-512: Benchmarks), but it sums in another order, so results differ from
///   im2col's in the last bits and have stored baselines of their own only where recorded.
/// - `winograd`: Winograd F(2×2, 3×3) for the 3×3, stride-1, padding-1 convolutions of at least
///   `winogradMinimumChannels` input and output channels on planes of at least `winogradMinimumSide` pixels a
///   side, over enough images (`usesWinograd`; Conv4's layers but its first and, at 28 × 28, its last): 2.25×
///   fewer multiplications, in LIBXSMM's JIT kernels (forward and input gradient) and OpenBLAS (the weight
///   gradient's sums); the others on im2col + OpenBLAS. Transforms add and subtract, so its values differ from
///   im2col's by float rounding (a few times more than a direct convolution's, still ~1e-6 relative:
///   `WinogradConvolutionTests`); its own stored baselines record them.
///
/// Either way the work is split into chunks of images fixed by the convolution's shape and weight-gradient
/// partials are added in a fixed order, so results do not depend on the thread count.
public enum Convolutions {
    public enum Backend: String, Sendable, CaseIterable {
        case openBLAS = "openblas"
        case oneDNN = "onednn"
        case winograd = "winograd"
    }

    /// The environment variable that selects the backend at start-up (`openblas`, `onednn` or `winograd`).
    public static let environmentVariable = "METABENCH_CONVOLUTIONS"

    private static let lock = NSLock()
    nonisolated(unsafe) private static var _backend: Backend =
        fromEnvironment.backend ?? defaultBackend(forKernels: BLAS.coreName)

    /// The backend named by `METABENCH_CONVOLUTIONS` (nil when unset or empty: `defaultBackend(forKernels:)`),
    /// and a message when the variable holds something else (the default is used then; `bench` stops with the
    /// message).
    public static let fromEnvironment: (backend: Backend?, error: String?) =
        parse(getenv(environmentVariable).map { String(cString: $0) })

    /// The backend a value of `METABENCH_CONVOLUTIONS` names (any case; unset or empty: nil, the default), with
    /// a message when it names none.
    static func parse(_ raw: String?) -> (backend: Backend?, error: String?) {
        guard let raw, !raw.trimmingCharacters(in: .whitespaces).isEmpty else { return (nil, nil) }
        let text = raw.trimmingCharacters(in: .whitespaces).lowercased()
        if let backend = Backend(rawValue: text) { return (backend, nil) }
        let names = Backend.allCases.map(\.rawValue)
        return (nil, "\(environmentVariable)=\(raw) is not a convolution backend; use "
                + names.dropLast().joined(separator: ", ") + " or " + (names.last ?? ""))
    }

    /// The backend used when `METABENCH_CONVOLUTIONS` is unset, for an OpenBLAS kernel family: the fastest one
    /// measured with those kernels. Winograd with the AVX2 families (Haswell, Zen): every Conv4 training step
    /// 1.24–1.34× faster than im2col + OpenBLAS, a whole suite 1.34× (README, "Winograd convolutions"). Winograd
    /// with the AVX-512 families (SkylakeX and later) too, its products on LIBXSMM's AVX-512 code: every training
    /// step 1.2–1.9× and every evaluation episode 1.1–1.5× faster than im2col + OpenBLAS on the AVX-512 kernels
    /// (README, "Winograd with AVX-512"); oneDNN, as fast there, blocks its loops by the CPU's cache sizes, so its
    /// bits would follow the machine and not the kernel family alone. im2col + OpenBLAS for the older families
    /// (not measured). A function of the kernel family only, so two machines with the same kernels compute the
    /// same bits.
    public static func defaultBackend(forKernels name: String) -> Backend {
        switch BLAS.requiredFlag(forKernels: name) {
        case "avx2", "avx512f": return .winograd
        default: return .openBLAS
        }
    }

    /// The name of the kernel oneDNN runs for an operation (0 forward, 1 input gradient, 2 weight gradient) of
    /// a convolution, e.g. "jit:avx2".
    static func implementationName(_ g: ConvGeometry, operation: Int) -> String {
        _ = oneDNNConfigured
        return String(cString: cdnnl_implementation(cGeometry(g, images: g.n), Int32(operation)))
    }

    /// The backend in use.
    public static var backend: Backend {
        lock.lock(); defer { lock.unlock() }
        return _backend
    }

    /// Selects the backend for the convolutions that follow (set it before work starts, not during).
    public static func use(_ backend: Backend) {
        lock.lock()
        _backend = backend
        lock.unlock()
        if backend == .oneDNN { _ = oneDNNConfigured }
        if backend == .winograd { _ = winogradConfigured }
    }

    /// What computes the convolutions, for provenance: "im2col + OpenBLAS", e.g. "oneDNN 2.6.3 avx2" or
    /// "Winograd F(2×2, 3×3), LIBXSMM 1.17 hsw".
    public static var description: String {
        switch backend {
        case .openBLAS: return "im2col + OpenBLAS"
        case .oneDNN:
            _ = oneDNNConfigured
            return "oneDNN " + String(cString: cdnnl_description())
        case .winograd:
            _ = winogradConfigured
            return "Winograd F(2×2, 3×3), " + String(cString: cwino_description())
        }
    }

    /// Whether oneDNN computes this convolution: with the oneDNN backend, every convolution whose input has at
    /// least `oneDNNMinimumChannels` channels. Below that (Conv4's first layer on grey or RGB images) its
    /// blocked kernels have no channel block to vectorise over: its weight gradient there ran 3× slower than
    /// im2col + OpenBLAS and its forward pass no faster once its output is reordered back (Benchmarks), so
    /// those convolutions stay on im2col + OpenBLAS. A function of the shape only, as every split here.
    @inline(__always)
    static func usesOneDNN(_ g: ConvGeometry) -> Bool {
        g.c >= oneDNNMinimumChannels && backend == .oneDNN && fitsInt32(g)
    }

    /// Every size fits the C shim's 32-bit fields with room for its `h + 2·pad` (a dimension beyond 2²⁹ stays on
    /// im2col + OpenBLAS).
    private static func fitsInt32(_ g: ConvGeometry) -> Bool {
        let limit = Int(Int32.max) / 4
        return g.n <= limit && g.c <= limit && g.h <= limit && g.w <= limit && g.o <= limit && g.kh <= limit
            && g.kw <= limit && g.stride <= limit && g.pad <= limit
    }

    /// Whether the Winograd backend computes this convolution: with that backend, every 3×3, stride-1,
    /// padding-1 convolution of at least `winogradMinimumChannels` input and output channels on planes at
    /// least `winogradMinimumSide` on each side, with at least `winogradMinimumTiles` 2 × 2 output tiles over
    /// all its images. Fewer channels give products too thin to gain (Conv4's first layer stays on im2col); on
    /// smaller planes (3 × 3) the tiles' padding and transforms cost more than the multiplications saved, and
    /// so do the per-image products and sums of a few small planes (7 × 7 gains from about 16 images, 14 × 14
    /// from 2: `Benchmarks/ConvCandidates … winograd`, README). A function of the shape only.
    @inline(__always)
    static func usesWinograd(_ g: ConvGeometry) -> Bool {
        backend == .winograd && g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1
            && g.c >= winogradMinimumChannels && g.o >= winogradMinimumChannels
            && g.h >= winogradMinimumSide && g.w >= winogradMinimumSide && fitsInt32(g)
            && g.n * ((g.h + 1) / 2) * ((g.w + 1) / 2) >= winogradMinimumTiles
    }

    /// Whether the Winograd backend computes this convolution directly (`cdirect_forward`,
    /// `cdirect_weight_gradient`): stride 1 and at most `directMaximumProducts` products per output value (Conv4's
    /// first layer: 9 on grey images, 27 on colour ones). There im2col + OpenBLAS spends more on the column
    /// matrix, the packing and the zeroing of a 64 × 784 output per image than on its 451 k multiply-adds, and
    /// its weight gradient, summed over chunks of up to 74 images, left one of two threads idle (Benchmarks).
    /// Its input gradient (not needed for a first layer) stays on im2col. A function of the shape only.
    @inline(__always)
    static func usesDirect(_ g: ConvGeometry) -> Bool {
        backend == .winograd && g.stride == 1 && g.colRows <= directMaximumProducts && fitsInt32(g)
    }

    /// Products per output value up to which the Winograd backend convolves directly (the kernels' limit).
    static let directMaximumProducts = Int(CDIRECT_MAX_PRODUCTS)

    /// Input and output channels from which the Winograd backend runs a convolution. Tests lower it.
    nonisolated(unsafe) static var winogradMinimumChannels = 8

    /// Plane sides from which the Winograd backend runs a convolution. Tests lower it, and the benchmark that
    /// chose it (`Benchmarks/ConvCandidates … winograd`); set it before work starts, not during.
    nonisolated(unsafe) public static var winogradMinimumSide = 6

    /// Output tiles (over all images) from which the Winograd backend runs a convolution: five images of
    /// 14 × 14 (a MAML support set), fifteen of 7 × 7. Tests and the benchmark lower it, as the side.
    nonisolated(unsafe) public static var winogradMinimumTiles = 240

    /// LIBXSMM's instruction set follows OpenBLAS's kernel family, as oneDNN's does. Set once, before its first
    /// kernel.
    static let winogradConfigured: Bool = {
        let avx512 = BLAS.requiredFlag(forKernels: BLAS.coreName) == "avx512f"
        return cwino_configure(avx512 ? 1 : 0) == 0
    }()

    /// Input channels from which the oneDNN backend runs a convolution (one AVX2 block of channels). Tests lower
    /// it to put every convolution of their small cases through oneDNN.
    nonisolated(unsafe) static var oneDNNMinimumChannels = 8

    /// oneDNN's instruction set follows OpenBLAS's kernel family (AVX-512 kernels only with the SkylakeX
    /// family; AVX2 otherwise), so one family's results come from one kind of kernel on every machine that
    /// runs it. Set once, before oneDNN makes its first kernel.
    static let oneDNNConfigured: Bool = {
        let family = BLAS.coreName
        let avx512 = BLAS.requiredFlag(forKernels: family) == "avx512f"
        return cdnnl_set_max_isa(avx512 ? 3 : 2) == 0
    }()
}

// MARK: - The oneDNN backend

/// Images per oneDNN call: enough that a call's reordered input and output (the arena each thread keeps) stay
/// about 1 MiB, at least one. A function of the shape only, so every split below is.
private func oneDNNChunk(_ g: ConvGeometry) -> Int {
    let perImage = Swift.max(1, g.c * g.h * g.w + g.o * g.ho * g.wo)
    return Swift.max(1, Swift.min(g.n, (1 << 18) / perImage))
}

func cGeometry(_ g: ConvGeometry, images: Int) -> cdnnl_geometry {
    cdnnl_geometry(n: Int32(images), c: Int32(g.c), h: Int32(g.h), w: Int32(g.w), o: Int32(g.o), kh: Int32(g.kh),
                   kw: Int32(g.kw), stride: Int32(g.stride), pad: Int32(g.pad))
}

/// oneDNN failing on a shape the engine accepted (it supports every 2-D convolution) means it ran out of
/// memory: stop with its message.
@inline(__always)
private func checked(_ error: UnsafePointer<CChar>?) {
    if let error { fatalError("oneDNN convolution: \(String(cString: error))") }
}

/// Forward values with oneDNN, chunk by chunk, to `output` (see `convForward`).
func oneDNNForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, bias: Tensor?, output: ConvForwardOutput) {
    guard g.n > 0 else { return }
    _ = Convolutions.oneDNNConfigured
    let chunk = oneDNNChunk(g), chunks = (g.n + chunk - 1) / chunk
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    x.withPointer { px in
        w.withPointer { pw in
            func run(_ pb: UnsafePointer<Float>?) {
                ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
                    let first = index * chunk, count = Swift.min(chunk, g.n - first)
                    if let po = output.tensor {
                        checked(cdnnl_forward(cGeometry(g, images: count), px + first * inImage, pw, pb,
                                              po + first * outImage))
                        for b in 0..<count {
                            output.finished(image: first + b, size: outImage, values: po + (first + b) * outImage)
                        }
                    } else {
                        let values = UnsafeMutablePointer<Float>.allocate(capacity: count * outImage)
                        defer { values.deallocate() }
                        checked(cdnnl_forward(cGeometry(g, images: count), px + first * inImage, pw, pb, values))
                        for b in 0..<count { output.finished(image: first + b, size: outImage, values: values + b * outImage) }
                    }
                }
            }
            if let bias { bias.withPointer { run($0) } } else { run(nil) }
        }
    }
}

/// The input gradient with oneDNN, chunk by chunk.
func oneDNNInputGradient(_ grad: ConvOutputGradient, _ w: Tensor, _ g: ConvGeometry) -> [Float] {
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    guard g.n > 0 else { return [] }
    _ = Convolutions.oneDNNConfigured
    let chunk = oneDNNChunk(g), chunks = (g.n + chunk - 1) / chunk
    return w.withPointer { pw in
        makeScalars(g.n * inImage) { px in
            ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
                let first = index * chunk, count = Swift.min(chunk, g.n - first)
                grad.withImages(first, count, imageSize: outImage) { pg in
                    checked(cdnnl_backward_data(cGeometry(g, images: count), pg, pw, px + first * inImage))
                }
            }
        }
    }
}

/// The weight gradient (and the bias gradient when asked) with oneDNN: chunks in at most
/// `weightGradientGroups` consecutive groups, each summing its chunks' gradients in order into a partial;
/// partials added in group order. The same sums on any number of threads.
func oneDNNWeightGradient(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                          biasGradient: UnsafeMutablePointer<Float>?) -> [Float] {
    let size = g.o * g.colRows
    guard g.n > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: size)
    }
    _ = Convolutions.oneDNNConfigured
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    let chunk = oneDNNChunk(g), chunks = (g.n + chunk - 1) / chunk
    let groups = Swift.min(chunks, weightGradientGroups)
    let stride = size + g.o  // a partial: weights then bias
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: groups * stride)
    defer { partials.deallocate() }
    x.withPointer { px in
        ComputeThreads.forEach(groups, work: g.colRows * g.colCols) { group in
            let partial = partials + group * stride
            let range = (group * chunks / groups)..<((group + 1) * chunks / groups)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: range.count > 1 ? stride : 1)
            defer { scratch.deallocate() }
            for index in range {
                let first = index * chunk, count = Swift.min(chunk, g.n - first)
                let target = index == range.lowerBound ? partial : scratch
                grad.withImages(first, count, imageSize: outImage) { pg in
                    checked(cdnnl_backward_weights(cGeometry(g, images: count), px + first * inImage, pg, target,
                                                   biasGradient != nil ? target + size : nil))
                }
                if target == scratch {
                    let terms = biasGradient != nil ? stride : size
                    for k in 0..<terms { partial[k] += scratch[k] }
                }
            }
        }
    }
    if let biasGradient {
        sumInGroupOrder(partials + size, groups: groups, stride: stride, count: g.o, into: biasGradient)
    }
    return makeScalars(size) { pw in
        sumInGroupOrder(partials, groups: groups, stride: stride, count: size, into: pw)
    }
}
