// Convolution candidates side by side on the Conv4 shapes (issue 13, point 2): the engine's im2col + OpenBLAS
// convolution against Debian's oneDNN 2.6 (in the engine's NCHW layout, and in its own blocked layout: the best
// case, a network that never leaves it) and a Winograd F(2×2, 3×3) forward on OpenBLAS (one thread, a plain
// transform: an estimate of what fewer multiplications buy). Medians of single calls, milliseconds; the engine
// and oneDNN on the same number of threads (the argument, default 1). The engine's figures include allocating
// its outputs, as in a real step (above 32 MiB, glibc maps each one afresh: page faults dominate the first layer
// at 600 images); oneDNN writes into buffers it keeps. The engine's backward is its forward-and-backward time
// less the forward and less the cost of the seed (a product and a sum, and their backward).
//
//     cd Benchmarks && swift run -c release ConvCandidates [threads]
import DNNLConv
import Engine
import FewShotData
import Foundation

let threads = max(1, min(CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 1, 64))
ComputeThreads.set(threads)
let dnnlThreads = dnnlconv_set_threads(Int32(threads))
print("OpenBLAS \(BLAS.version) kernels \(BLAS.coreName); engine threads \(ComputeThreads.count), oneDNN (OpenMP) threads \(dnnlThreads)")

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

print("batch  layer (c×h×w → o)   | engine fwd  bwd | oneDNN nchw fwd  bwd-d  bwd-w [impl] | oneDNN blocked fwd  bwd-d  bwd-w [impl] | Winograd fwd | max |Δ| vs engine: nchw blocked winograd")
for batch in [80, 600] {
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

        var line = String(format: "%5d  %2d×%2d×%2d → %2d      | %7.2f %7.2f |", batch, c, side, side, o, engineForward, engineBackward)
        var differences: [String] = []
        for layout in [0, 1] {
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
            var out = [Float](repeating: 0, count: reference.count)
            dnnlconv_run(conv, 0)
            dnnlconv_result(conv, 0, &out)
            differences.append(String(format: "%.1e", maxDifference(out, reference)))
            line += String(format: " %7.2f %6.2f %6.2f [%@ %@ %@] |", times[0], times[1], times[2],
                           String(cString: dnnlconv_impl(conv, 0)), c == 1 ? "-" : String(cString: dnnlconv_impl(conv, 1)),
                           String(cString: dnnlconv_impl(conv, 2)))
        }
        var workspace = [Float](repeating: 0, count: Int(winograd_workspace_floats(Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o))))
        var y = [Float](repeating: 0, count: reference.count)
        let winograd = median { winograd_forward(xs, ws, &y, Int32(batch), Int32(c), Int32(side), Int32(side), Int32(o), &workspace) }
        differences.append(String(format: "%.1e", maxDifference(y, reference)))
        line += String(format: " %7.2f | ", winograd) + differences.joined(separator: " ")
        print(line)
    }
}
