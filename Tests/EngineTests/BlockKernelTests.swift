import CKernels
import XCTest
@testable import Engine

/// The fused block's C passes (`cblock.h`) against plain scalar references of the arithmetic they promise — the
/// arithmetic of the Swift loops they replaced, so stored results keep their bits — on both copies of the
/// kernels (AVX2 and baseline), bit for bit: odd and narrow planes (every grouping of windows into vectors),
/// ties, NaNs, negative zeros, clipped outputs.
final class BlockKernelTests: XCTestCase {
    /// Plane shapes (h, w) covering rows of 0 … 16 windows of 2 × 2 (scalar, four-lane, eight-lane groups and
    /// overlapping last groups) and odd sides.
    let shapes = [(1, 1), (2, 2), (3, 5), (4, 6), (5, 7), (2, 8), (6, 9), (7, 7), (4, 14), (3, 15), (8, 16),
                  (9, 17), (2, 24), (14, 14), (5, 31), (28, 28), (3, 33)]

    /// Values on a coarse grid (many exact ties), with NaNs and negative zeros where `specials`.
    func plane(_ count: Int, _ rng: inout SeededRNG, specials: Bool) -> [Float] {
        (0..<count).map { _ in
            let r = rng.unit()
            if specials && r < 0.05 { return .nan }
            if specials && r < 0.1 { return -0.0 }
            return Float(Int(rng.unit() * 9) - 4) * 0.5
        }
    }

    // MARK: References

    func referencePool(_ p: [Float], h: Int, w: Int, size: Int, a: Float, shift: Float, first: Int32)
        -> (values: [Float], indices: [Int32], maxima: [Float]) {
        let (ho, wo) = (h / size, w / size)
        var values = [Float](), indices = [Int32](), maxima = [Float]()
        for y in 0..<ho {
            for xo in 0..<wo {
                var bestIndex = y * size * w + xo * size
                var best = p[bestIndex] * a + shift
                for i in 0..<size {
                    for j in 0..<size {
                        let index = (y * size + i) * w + xo * size + j
                        let value = p[index] * a + shift
                        if value > best { best = value; bestIndex = index }
                    }
                }
                values.append(best > 0 ? best : 0)
                indices.append(first &+ Int32(bestIndex))
                maxima.append(p[bestIndex])
            }
        }
        return (values, indices, maxima)
    }

    func referenceGradient(_ p: [Float], mean: Float, a: Float, sumG: Float, scaleX: Float, am: Float, g: [Float],
                           y: [Float], indices: [Int32], planeStart: Int) -> [Float] {
        var o = p.map { -a * (sumG + ($0 - mean) * scaleX) }
        for k in 0..<g.count {
            let gv = y[k] > 0 ? g[k] : 0
            o[Int(indices[k]) - planeStart] += am * gv
        }
        return o
    }

    // MARK: Kernels

    func pool(_ p: [Float], h: Int, w: Int, size: Int, a: Float, shift: Float, first: Int32)
        -> (values: [Float], indices: [Int32], maxima: [Float]) {
        let count = (h / size) * (w / size)
        var values = [Float](repeating: 7, count: count), maxima = values
        var indices = [Int32](repeating: 7, count: count)
        cblock_pool(p, Int32(h), Int32(w), Int32(size), a, shift, first, &values, &indices, &maxima)
        return (values, indices, maxima)
    }

    func gradient(_ p: [Float], h: Int, w: Int, size: Int, mean: Float, a: Float, sumG: Float, scaleX: Float,
                  am: Float, g: [Float], y: [Float], indices: [Int32], planeStart: Int) -> [Float] {
        var o = [Float](repeating: 7, count: p.count)
        cblock_plane_gradient(p, Int32(h), Int32(w), Int32(size), mean, a, sumG, scaleX, am, g, y, indices,
                              planeStart, &o)
        return o
    }

    func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    /// Every shape and window size through both passes against the references; `label` names the copy.
    func checkPasses(_ label: String) {
        var rng = SeededRNG(seed: 1_207)
        for (h, w) in shapes {
            for size in [2, 3] where h >= 1 && w >= 1 {
                for specials in [false, true] {
                    let p = plane(h * w, &rng, specials: specials)
                    // The last setting has zero sums and a > 0: every value is −0 except where a window's
                    // gradient lands (−0 + am·0 = +0 where the output was clipped).
                    // (Constants off a coarse grid: a rule computed in another order would round differently.)
                    for (a, shift, sumG, scaleX) in [(Float(0.7316), Float(-0.2113), Float(0.3371), Float(-1.1093)),
                                                     (-1.5, 0.5, 0.3, -1.1), (1.5, 0.5, 0, 0)] {
                        let first = Int32(2 * h * w + 3), where_ = "\(label) \(h)×\(w) size \(size) specials \(specials) a \(a)"
                        let expected = referencePool(p, h: h, w: w, size: size, a: a, shift: shift, first: first)
                        let got = pool(p, h: h, w: w, size: size, a: a, shift: shift, first: first)
                        XCTAssertEqual(bits(got.values), bits(expected.values), "pool values, \(where_)")
                        XCTAssertEqual(got.indices, expected.indices, "pool indices, \(where_)")
                        XCTAssertEqual(bits(got.maxima), bits(expected.maxima), "pool maxima, \(where_)")
                        let count = expected.values.count
                        var g = plane(count, &rng, specials: specials)
                        if specials, count > 1 { g[count - 1] = -0.0 }
                        let y = plane(count, &rng, specials: false)
                        let reference = referenceGradient(p, mean: 0.2519, a: a, sumG: sumG, scaleX: scaleX, am: 1.7173,
                                                          g: g, y: y, indices: expected.indices, planeStart: Int(first))
                        let result = gradient(p, h: h, w: w, size: size, mean: 0.2519, a: a, sumG: sumG, scaleX: scaleX,
                                              am: 1.7173, g: g, y: y, indices: expected.indices, planeStart: Int(first))
                        XCTAssertEqual(bits(result), bits(reference), "gradient, \(where_)")
                    }
                }
            }
        }
    }

    func testPassesEqualTheReferences() {
        checkPasses(cblock_kernels_use_avx2() != 0 ? "AVX2" : "baseline")
    }

    func testBaselineCopyEqualsTheReferences() throws {
        guard cblock_kernels_use_avx2() != 0 else { throw XCTSkip("no AVX2 here: only the baseline copy runs") }
        cblock_use_baseline_kernels(1)
        defer { cblock_use_baseline_kernels(0) }
        XCTAssertEqual(cblock_kernels_use_avx2(), 0)
        checkPasses("baseline")
    }

    /// The gradient's sums over any range of planes (groups of eight and the rest) against one plane at a time.
    func checkGradientSums(_ label: String) {
        var rng = SeededRNG(seed: 88)
        let channels = 3
        let mean: [Float] = [0.25, -0.5, 1.0]
        for pooled in [0, 1, 5, 8, 9, 49] {
            let planes = 21
            // Values off any coarse grid, so that a sum in another order would round differently.
            let g = (0..<(planes * pooled)).map { _ in rng.uniform(-1, 1) }
            let y = plane(planes * pooled, &rng, specials: true)
            let m = (0..<(planes * pooled)).map { _ in rng.uniform(-2, 2) }
            for (first, count) in [(0, 21), (2, 19), (3, 16), (5, 3), (0, 0)] {
                var sums = [Float](repeating: 7, count: 2 * planes)
                cblock_gradient_sums(g, y, m, pooled, first, count, channels, mean, &sums)
                for i in 0..<planes {
                    var s: Float = 0, d: Float = 0
                    for k in (i * pooled)..<((i + 1) * pooled) {
                        let v = y[k] > 0 ? g[k] : 0
                        s += v; d += v * (m[k] - mean[i % channels])
                    }
                    let inside = i >= first && i < first + count
                    let at = "plane \(i), pooled \(pooled), planes \(first) + \(count), \(label)"
                    XCTAssertEqual(sums[2 * i].bitPattern, inside ? s.bitPattern : Float(7).bitPattern, "Σgv of \(at)")
                    XCTAssertEqual(sums[2 * i + 1].bitPattern, inside ? d.bitPattern : Float(7).bitPattern,
                                   "Σgv·(m − μ) of \(at)")
                }
            }
        }
    }

    func testGradientSumsEqualOnePlaneAtATime() {
        checkGradientSums(cblock_kernels_use_avx2() != 0 ? "AVX2" : "baseline")
    }

    func testBaselineGradientSumsEqualOnePlaneAtATime() throws {
        guard cblock_kernels_use_avx2() != 0 else { throw XCTSkip("no AVX2 here: only the baseline copy runs") }
        cblock_use_baseline_kernels(1)
        defer { cblock_use_baseline_kernels(0) }
        checkGradientSums("baseline")
    }
}
