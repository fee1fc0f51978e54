// Convolution candidates side by side on the Conv4 shapes (issue 13, point 2): the engine's im2col + OpenBLAS
// convolution against Debian's oneDNN 2.6 (in the engine's NCHW layout; in its own blocked layout: the best case, a
// network that never leaves it; and "drop-in": the blocked kernels behind NCHW buffers, with the reorders such a
// replacement of the engine's operation would need counted in each run), Debian's LIBXSMM 1.17 (direct
// convolutions in its own blocked layout, the same best case, inputs kept padded) and a Winograd F(2×2, 3×3)
// forward on OpenBLAS (one thread, a plain transform: an estimate of what fewer multiplications buy). Medians of
// single calls, milliseconds; the engine, oneDNN and LIBXSMM on the same number of threads (the argument, default
// 1). The engine's figures include allocating its outputs, as in a real step (above 32 MiB, glibc maps each one
// afresh: page faults dominate the first layer at 600 images); oneDNN and LIBXSMM write into buffers they keep.
// The engine's backward is its forward-and-backward time less the forward and less the cost of the seed (a product
// and a sum, and their backward).
//
// The last lines sum each candidate over the four layers, forward + backward (input and weight gradients; the first
// layer's weights only), per batch: the figure the README's tables quote.
//
//     cd Benchmarks && swift run -c release ConvCandidates [threads] [batches, default 80,600]
import DNNLConv
import Engine
import FewShotData
import Foundation
import XSMMConv

let arguments = Array(CommandLine.arguments.dropFirst())
let threads = max(1, min(arguments.first.flatMap { Int($0) } ?? 1, 64))
let batches = (arguments.dropFirst().first ?? "80,600").split(separator: ",").compactMap { Int($0) }.map { max(1, min($0, 2000)) }
ComputeThreads.set(threads)
let dnnlThreads = dnnlconv_set_threads(Int32(threads))
print("OpenBLAS \(BLAS.version) kernels \(BLAS.coreName); engine threads \(ComputeThreads.count), oneDNN (OpenMP) threads \(dnnlThreads), LIBXSMM target \(String(cString: xsmmconv_arch())) threads \(threads)")

/// The median of single runs of `body` (after warm-up), in milliseconds.
func median(_ body: () -> Void) -> Double {
    for _ in 0..<3 { body() }
    var times: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < 15 || (times.count < 400 && DispatchTime.now().uptimeNanoseconds - start < 1_500_000_000) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    return times.sorted()[times.count / 2]
}

var rng = SeededGenerator(seed: 7)
func random(_ count: Int) -> [Float] { (0..<count).map { _ in rng.nextUnitFloat() - 0.5 } }
func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

// `ConvCandidates <threads> <batches> winograd`: the engine's convolutions with its default backend (im2col +
// OpenBLAS) and with its Winograd backend (`Convolutions.winograd`, thresholds lowered so that every 3×3 layer
// with 64 input channels takes it, whatever its plane and images), alternating in five rounds: per layer the medians of the
// rounds' medians, forward and forward + backward (both gradients, as in a training step; the seed's product and
// sum included on both sides).
if arguments.count > 2 && arguments[2] == "winograd" {
    Convolutions.winogradMinimumSide = 1
    Convolutions.winogradMinimumTiles = 0
    print("batch  layer (c×h×w → o) | im2col fwd  fwd+bwd | Winograd fwd  fwd+bwd | ratio fwd  fwd+bwd | max |Δ| values ∂x ∂w")
    for batch in batches {
        var sums = [Double](repeating: 0, count: 4)
        for (c, side) in [(64, 14), (64, 7), (64, 3)] {
            let o = 64
            let x = Tensor(shape: [batch, c, side, side], scalars: random(batch * c * side * side), requiresGrad: true)
            let w = Tensor(shape: [o, c, 3, 3], scalars: random(o * c * 9), requiresGrad: true)
            let r = Tensor(shape: [batch, o, side, side], scalars: random(batch * o * side * side))
            func values() -> [[Float]] {
                let y = Tensor.conv2d(x, weight: w, padding: 1)
                return [y.scalars] + gradients(of: (y * r).sum(), wrt: [x, w]).map(\.scalars)
            }
            var rounds: [[Double]] = [[], [], [], []]
            for _ in 0..<5 {
                for (k, backend) in [Convolutions.Backend.openBLAS, .winograd].enumerated() {
                    Convolutions.use(backend)
                    rounds[2 * k].append(median { _ = withoutGradients { Tensor.conv2d(x, weight: w, padding: 1) } })
                    rounds[2 * k + 1].append(median { _ = gradients(of: (Tensor.conv2d(x, weight: w, padding: 1) * r).sum(), wrt: [x, w]) })
                }
            }
            Convolutions.use(.openBLAS)
            let reference = values()
            Convolutions.use(.winograd)
            let winograd = values()
            Convolutions.use(.openBLAS)
            let t = rounds.map { $0.sorted()[2] }
            for k in 0..<4 { sums[k] += t[k] }
            let differences = zip(winograd, reference).map { String(format: "%.1e", maxDifference($0, $1)) }
            print(String(format: "%5d  %2d×%2d×%2d → %2d     | %7.2f %8.2f | %9.2f %8.2f | %6.2f× %6.2f× | ", batch, c, side,
                         side, o, t[0], t[1], t[2], t[3], t[0] / t[2], t[1] / t[3]) + differences.joined(separator: " "))
        }
        print(String(format: "%5d  sum of the three     | %7.2f %8.2f | %9.2f %8.2f | %6.2f× %6.2f×", batch, sums[0], sums[1],
                     sums[2], sums[3], sums[0] / sums[2], sums[1] / sums[3]))
    }
    exit(0)
}

/// Sums over the layers of one batch: engine, oneDNN NCHW, oneDNN blocked (its NCHW weight gradient where that is
/// faster, as in a network that would choose per layer), LIBXSMM, oneDNN drop-in (per operation the faster of its
/// NCHW kernel and its blocked one with the reorders counted).
var totals: [Int: [Double]] = [:]
print("batch  layer (c×h×w → o)   | engine fwd  bwd | oneDNN nchw fwd  bwd-d  bwd-w [impl] | oneDNN blocked fwd  bwd-d  bwd-w [impl] | oneDNN drop-in fwd  bwd-d  bwd-w [impl] | LIBXSMM fwd  bwd-d  bwd-w | Winograd fwd | max |Δ| vs engine: nchw blocked drop-in libxsmm(fwd bwd-d bwd-w) winograd")
for batch in batches {
    var sums = [Double](repeating: 0, count: 5)
    for (c, side) in [(1, 28), (64, 14), (64, 7), (64, 3)] {
        let o = 64
        let xs = random(batch * c * side * side), ws = random(o * c * 9), gs = random(batch * o * side * side)
        let x = Tensor(shape: [batch, c, side, side], scalars: xs, requiresGrad: c > 1)
        let w = Tensor(shape: [o, c, 3, 3], scalars: ws, requiresGrad: true)
        let r = Tensor(shape: [batch, o, side, side], scalars: gs)
        let reference = withoutGradients { Tensor.conv2d(x, weight: w, padding: 1) }.scalars
        let engineForward = median { _ = withoutGradients { Tensor.conv2d(x, weight: w, padding: 1) } }
        let wrt = c > 1 ? [x, w] : [w]
        let engineBoth = median {
            let loss = (Tensor.conv2d(x, weight: w, padding: 1) * r).sum()
            _ = gradients(of: loss, wrt: wrt)
        }
        // The seed's cost (multiply, sum and their backward) is taken out of the engine's backward.
        let leaf = Tensor(shape: r.shape, scalars: reference, requiresGrad: true)
        let seedCost = median { _ = gradients(of: (leaf * r).sum(), wrt: [leaf]) }
        let engineBackward = engineBoth - engineForward - seedCost
        sums[0] += engineForward + engineBackward
        let engineGradients = gradients(of: (Tensor.conv2d(x, weight: w, padding: 1) * r).sum(), wrt: wrt).map(\.scalars)
        let total: ([Double]) -> Double = { $0.filter { !$0.isNaN }.reduce(0, +) }
        var nchwTimes: [Double] = []

        var line = String(format: "%5d  %2d×%2d×%2d → %2d      | %7.2f %7.2f |", batch, c, side, side, o, engineForward, engineBackward)
        var differences: [String] = []
        for layout in [0, 1, 2] {
            var error: UnsafePointer<CChar>? = nil
            guard let conv = dnnlconv_create(Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o), 3, 1, Int32(layout), &error) else {
                line += " oneDNN failed: \(error.map { String(cString: $0) } ?? "?") |"
                differences.append("–")
                continue
            }
            defer { dnnlconv_destroy(conv) }
            dnnlconv_fill(conv, xs, ws, gs)
            let times = (0..<3).map { which in
                which == 1 && c == 1 ? Double.nan : median { dnnlconv_run(conv, Int32(which)) }
            }
            switch layout {
            case 0: nchwTimes = times; sums[1] += total(times)
            case 1: sums[2] += total([times[0], times[1], nchwTimes.count == 3 ? min(times[2], nchwTimes[2]) : times[2]])
            default: sums[4] += total(nchwTimes.count == 3 ? zip(times, nchwTimes).map { $0.isNaN ? $0 : min($0, $1) } : times)
            }
            var out = [Float](repeating: 0, count: reference.count)
            dnnlconv_run(conv, 0)
            dnnlconv_result(conv, 0, &out)
            differences.append(String(format: "%.1e", maxDifference(out, reference)))
            line += String(format: " %7.2f %6.2f %6.2f [%@ %@ %@] |", times[0], times[1], times[2],
                           String(cString: dnnlconv_impl(conv, 0)), c == 1 ? "-" : String(cString: dnnlconv_impl(conv, 1)),
                           String(cString: dnnlconv_impl(conv, 2)))
        }
        var error: UnsafePointer<CChar>? = nil
        if let conv = xsmmconv_create(Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o), 3, 1, Int32(threads), &error) {
            defer { xsmmconv_destroy(conv) }
            if xsmmconv_fill(conv, xs, ws, gs) != 0 { line += " LIBXSMM fill failed |" }
            let times = (0..<3).map { which in
                which == 1 && c == 1 ? Double.nan : median { _ = xsmmconv_run(conv, Int32(which)) }
            }
            sums[3] += total(times)
            // Each result against the engine's: output, input gradient (not for the first layer), weight gradient.
            var parts: [String] = []
            for (which, expected) in [(0, reference), (1, c > 1 ? engineGradients[0] : []), (2, engineGradients.last ?? [])] {
                if expected.isEmpty { parts.append("-"); continue }
                var out = [Float](repeating: 0, count: expected.count)
                _ = xsmmconv_run(conv, Int32(which))
                parts.append(xsmmconv_result(conv, Int32(which), &out) == 0 ? String(format: "%.1e", maxDifference(out, expected)) : "failed")
            }
            differences.append("(" + parts.joined(separator: " ") + ")")
            line += String(format: " %7.2f %6.2f %6.2f |", times[0], times[1], times[2])
        } else {
            line += " LIBXSMM failed: \(error.map { String(cString: $0) } ?? "?") |"
            differences.append("–")
            sums[3] = .nan
        }
        var workspace = [Float](repeating: 0, count: Int(winograd_workspace_floats(Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o))))
        var y = [Float](repeating: 0, count: reference.count)
        let winograd = median { winograd_forward(xs, ws, &y, Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o), &workspace) }
        differences.append(String(format: "%.1e", maxDifference(y, reference)))
        line += String(format: " %7.2f | ", winograd) + differences.joined(separator: " ")
        print(line)
    }
    totals[batch] = sums
}
print("\nsums over the four layers, forward + backward, ms (oneDNN blocked: its NCHW weight gradient where faster;")
print("drop-in: per operation the faster of oneDNN's NCHW kernel and its blocked one with the reorders counted)")
print("batch | engine | oneDNN nchw | oneDNN blocked | LIBXSMM | oneDNN drop-in")
for batch in batches {
    let s = totals[batch] ?? []
    print(String(format: "%5d | %6.1f | %11.1f | %14.1f | %7.1f | %14.1f", batch, s[0], s[1], s[2], s[3], s[4]))
}
