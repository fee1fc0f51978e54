import XCTest
@testable import Engine

/// First-order gradients of every differentiable operation against central differences.
final class FirstOrderGradientTests: XCTestCase {
    // MARK: - The checker itself

    /// The checker must reject a gradient that is off by a few percent (so the other tests can fail).
    func testCheckerDetectsWrongGradient() {
        var rng = SeededRNG(seed: 1)
        let x = rng.tensor([3, 4])
        // y = 2x with a backward that claims 2.1.
        func wrong(_ t: Tensor) -> Tensor {
            let out = t.scalars.map { $0 * 2 }
            return record("wrongDouble", t.shape, out, inputs: [t]) { g, _ in [g.scaled(by: 2.1)] }
        }
        func right(_ t: Tensor) -> Tensor {
            let out = t.scalars.map { $0 * 2 }
            return record("double", t.shape, out, inputs: [t]) { g, _ in [g.scaled(by: 2)] }
        }
        XCTAssertFalse(gradientComparison([x]) { wrong($0[0]) }.passed)
        XCTAssertTrue(gradientComparison([x]) { right($0[0]) }.passed)
        // A gradient that misses one element's contribution.
        func dropsOne(_ t: Tensor) -> Tensor {
            record("dropsOne", t.shape, t.scalars, inputs: [t]) { g, _ in
                var s = g.scalars
                s[5] = 0
                return [Tensor(shape: g.shape, scalars: s)]
            }
        }
        let c = gradientComparison([x]) { dropsOne($0[0]) }
        XCTAssertEqual(c.failures, 1)
        XCTAssertTrue(c.worstDescription.contains("element 5"), c.worstDescription)
    }

    // MARK: - Arithmetic and broadcasting

    func testAddBroadcasting() {
        var rng = SeededRNG(seed: 2)
        checkGradients("[3,4]+[4]", [rng.tensor([3, 4]), rng.tensor([4])]) { $0[0] + $0[1] }
        checkGradients("[4]+[3,4]", [rng.tensor([4]), rng.tensor([3, 4])]) { $0[0] + $0[1] }
        checkGradients("[2,3,4]+[3,1]", [rng.tensor([2, 3, 4]), rng.tensor([3, 1])]) { $0[0] + $0[1] }
        checkGradients("[4,1]+[1,3]", [rng.tensor([4, 1]), rng.tensor([1, 3])]) { $0[0] + $0[1] }
        checkGradients("[3,4]+scalar", [rng.tensor([3, 4]), rng.tensor([])]) { $0[0] + $0[1] }
        checkGradients("scalar+[3,4]", [rng.tensor([]), rng.tensor([3, 4])]) { $0[0] + $0[1] }
        checkGradients("[2,3,4,5]+[1,3,1,1]", [rng.tensor([2, 3, 4, 5]), rng.tensor([1, 3, 1, 1])]) { $0[0] + $0[1] }
        checkGradients("[2,3,4]+[2,3,4]", [rng.tensor([2, 3, 4]), rng.tensor([2, 3, 4])]) { $0[0] + $0[1] }
        checkGradients("x+x", [rng.tensor([3, 4])]) { $0[0] + $0[0] }
    }

    func testSubBroadcasting() {
        var rng = SeededRNG(seed: 3)
        checkGradients("[3,4]-[4]", [rng.tensor([3, 4]), rng.tensor([4])]) { $0[0] - $0[1] }
        checkGradients("[3,1]-[2,3,4]", [rng.tensor([3, 1]), rng.tensor([2, 3, 4])]) { $0[0] - $0[1] }
        checkGradients("scalar-[3,4]", [rng.tensor([]), rng.tensor([3, 4])]) { $0[0] - $0[1] }
        checkGradients("[2,3,4,5]-[1,3,1,1]", [rng.tensor([2, 3, 4, 5]), rng.tensor([1, 3, 1, 1])]) { $0[0] - $0[1] }
        checkGradients("[1,3,1,1]-[2,3,4,5]", [rng.tensor([1, 3, 1, 1]), rng.tensor([2, 3, 4, 5])]) { $0[0] - $0[1] }
    }

    func testMulBroadcasting() {
        var rng = SeededRNG(seed: 4)
        checkGradients("[3,4]*[4]", [rng.tensor([3, 4]), rng.tensor([4])]) { $0[0] * $0[1] }
        checkGradients("[2,3,4]*[3,1]", [rng.tensor([2, 3, 4]), rng.tensor([3, 1])]) { $0[0] * $0[1] }
        checkGradients("[3,1]*[2,3,4]", [rng.tensor([3, 1]), rng.tensor([2, 3, 4])]) { $0[0] * $0[1] }
        checkGradients("[4,1]*[1,3]", [rng.tensor([4, 1]), rng.tensor([1, 3])]) { $0[0] * $0[1] }
        checkGradients("scalar*[3,4]", [rng.tensor([]), rng.tensor([3, 4])]) { $0[0] * $0[1] }
        checkGradients("[3,4]*scalar", [rng.tensor([3, 4]), rng.tensor([])]) { $0[0] * $0[1] }
        checkGradients("[2,3,4,5]*[1,3,1,1]", [rng.tensor([2, 3, 4, 5]), rng.tensor([1, 3, 1, 1])]) { $0[0] * $0[1] }
        checkGradients("[2,1,4]*[1,3,1]", [rng.tensor([2, 1, 4]), rng.tensor([1, 3, 1])]) { $0[0] * $0[1] }
        checkGradients("x*x", [rng.tensor([3, 4])]) { $0[0] * $0[0] }
        // Only one side requires gradients.
        let c = rng.tensor([4])
        checkGradients("[3,4]*const[4]", [rng.tensor([3, 4])]) { $0[0] * c }
    }

    func testDivBroadcasting() {
        var rng = SeededRNG(seed: 5)
        checkGradients("[3,4]/[4]", [rng.tensor([3, 4]), rng.awayFromZero([4], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("[2,3,1]/[3,4]", [rng.tensor([2, 3, 1]), rng.awayFromZero([3, 4], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("scalar/[3,4]", [rng.tensor([]), rng.awayFromZero([3, 4], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("[3,4]/scalar", [rng.tensor([3, 4]), rng.awayFromZero([], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("[2,3,4,5]/[1,3,1,1]", [rng.tensor([2, 3, 4, 5]), rng.awayFromZero([1, 3, 1, 1], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("[1,3,1,1]/[2,3,4,5]", [rng.tensor([1, 3, 1, 1]), rng.awayFromZero([2, 3, 4, 5], minAbs: 0.5, maxAbs: 2)]) { $0[0] / $0[1] }
        checkGradients("x/x²", [rng.awayFromZero([3, 4], minAbs: 0.5, maxAbs: 2)]) { $0[0] / ($0[0] * $0[0]) }
    }

    func testScalarOps() {
        var rng = SeededRNG(seed: 6)
        let x = rng.tensor([3, 4])
        checkGradients("scaled", [x]) { $0[0].scaled(by: -1.7) }
        checkGradients("shifted", [x]) { $0[0].shifted(by: 0.3) }
        checkGradients("neg", [x]) { -$0[0] }
        checkGradients("x*s", [x]) { $0[0] * 2.5 }
        checkGradients("s*x", [x]) { 2.5 * $0[0] }
        checkGradients("x+s", [x]) { $0[0] + 1.5 }
        checkGradients("s+x", [x]) { 1.5 + $0[0] }
        checkGradients("x-s", [x]) { $0[0] - 1.5 }
        checkGradients("s-x", [x]) { 1.5 - $0[0] }
        checkGradients("x/s", [x]) { $0[0] / 4 }
    }

    // MARK: - Elementwise functions

    func testUnary() {
        var rng = SeededRNG(seed: 7)
        let x = rng.tensor([3, 5], -1.5, 1.5)
        let positive = rng.tensor([3, 5], 0.5, 2)
        checkGradients("exp", [x]) { $0[0].exp() }
        checkGradients("log", [positive]) { $0[0].log() }
        checkGradients("sqrt", [positive]) { $0[0].sqrt() }
        checkGradients("pow(2)", [x]) { $0[0].pow(2) }
        checkGradients("squared", [x]) { $0[0].squared() }
        checkGradients("pow(-0.5)", [positive]) { $0[0].pow(-0.5) }
        checkGradients("pow(3)", [x]) { $0[0].pow(3) }
        checkGradients("pow(1.5)", [positive]) { $0[0].pow(1.5) }
        checkGradients("relu", [rng.distinct([3, 5], spacing: 0.1)]) { $0[0].relu() }
        checkGradients("sigmoid", [rng.tensor([3, 5], -4, 4)]) { $0[0].sigmoid() }
        checkGradients("tanh", [rng.tensor([3, 5], -2, 2)]) { $0[0].tanh() }
        checkGradients("softmax", [rng.tensor([3, 5], -2, 2)]) { $0[0].softmax() }
    }

    // MARK: - Reductions

    func testSumToShapeAndExpand() {
        var rng = SeededRNG(seed: 8)
        let x = rng.tensor([2, 3, 4])
        for target in [[3, 1], [1, 3, 4], [4], [], [2, 1, 4], [2, 3, 1], [1, 1, 1], [2, 3, 4]] as [[Int]] {
            checkGradients("sum(toShape: \(target))", [x]) { $0[0].sum(toShape: target) }
        }
        let y = rng.tensor([2, 3, 4, 5])
        checkGradients("sum(toShape: [1,3,1,1])", [y]) { $0[0].sum(toShape: [1, 3, 1, 1]) }
        checkGradients("sum(toShape: [3,1,5])", [y]) { $0[0].sum(toShape: [3, 1, 5]) }
        let sources: [([Int], [Int])] = [([3, 1], [2, 3, 4]), ([4], [2, 3, 4]), ([], [2, 3]), ([1, 3, 1, 1], [2, 3, 2, 2]),
                                         ([2, 1, 4], [2, 3, 4]), ([3, 1, 5], [2, 3, 4, 5])]
        for (source, target) in sources {
            checkGradients("expand \(source) to \(target)", [rng.tensor(source)]) { $0[0].expand(to: target) }
        }
    }

    func testSumAndMeanOverAxes() {
        var rng = SeededRNG(seed: 9)
        let x = rng.tensor([2, 3, 4])
        for axes in [[0], [1], [2], [0, 2], [-1], [1, 2]] as [[Int]] {
            for keep in [false, true] {
                checkGradients("sum(axes: \(axes), keepDims: \(keep))", [x]) { $0[0].sum(axes: axes, keepDims: keep) }
                checkGradients("mean(axes: \(axes), keepDims: \(keep))", [x]) { $0[0].mean(axes: axes, keepDims: keep) }
            }
        }
        checkGradients("sum()", [x]) { $0[0].sum() }
        checkGradients("mean()", [x]) { $0[0].mean() }
        checkGradients("sum() keepDims", [x]) { $0[0].sum(keepDims: true) }
    }

    func testMaxAlongAxis() {
        var rng = SeededRNG(seed: 10)
        let x = rng.distinct([2, 3, 4])
        for axis in [0, 1, 2, -1] {
            for keep in [false, true] {
                checkGradients("max(axis: \(axis), keepDims: \(keep))", [x]) { $0[0].max(axis: axis, keepDims: keep) }
            }
        }
        checkGradients("max rank 2", [rng.distinct([4, 5])]) { $0[0].max(axis: 1) }
    }

    // MARK: - Shapes

    func testReshapeAndPermute() {
        var rng = SeededRNG(seed: 11)
        let x = rng.tensor([2, 3, 4])
        checkGradients("reshaped [6,4]", [x]) { $0[0].reshaped([6, 4]) }
        checkGradients("reshaped [4,-1]", [x]) { $0[0].reshaped([4, -1]) }
        checkGradients("reshaped [24]", [x]) { $0[0].reshaped([24]) }
        checkGradients("permuted [1,0]", [rng.tensor([3, 5])]) { $0[0].permuted([1, 0]) }
        for order in [[0, 2, 1], [2, 0, 1], [1, 2, 0], [2, 1, 0], [1, 0, 2]] {
            checkGradients("permuted \(order)", [x]) { $0[0].permuted(order) }
        }
        let y = rng.tensor([2, 3, 2, 4])
        for order in [[0, 2, 3, 1], [3, 1, 0, 2], [1, 0, 3, 2], [0, 1, 3, 2]] {
            checkGradients("permuted \(order)", [y]) { $0[0].permuted(order) }
        }
        checkGradients("transposed rank 2", [rng.tensor([3, 5])]) { $0[0].transposed() }
        checkGradients("transposed rank 3", [x]) { $0[0].transposed() }
    }

    func testSliceConcatStack() {
        var rng = SeededRNG(seed: 12)
        let x = rng.tensor([3, 4, 5])
        checkGradients("slice axis 0", [x]) { $0[0].slice(axis: 0, 1..<3) }
        checkGradients("slice axis 1", [x]) { $0[0].slice(axis: 1, 0..<2) }
        checkGradients("slice axis -1", [x]) { $0[0].slice(axis: -1, 2..<5) }
        checkGradients("slice of slice", [x]) { $0[0].slice(axis: 2, 1..<4).slice(axis: 1, 1..<2) }
        let a = rng.tensor([2, 3, 4]), b = rng.tensor([2, 1, 4]), c = rng.tensor([2, 2, 4])
        checkGradients("concat axis 1", [a, b, c]) { Tensor.concat($0, axis: 1) }
        checkGradients("concat axis 0", [rng.tensor([1, 3]), rng.tensor([3, 3])]) { Tensor.concat($0, axis: 0) }
        checkGradients("concat axis 2", [rng.tensor([2, 3, 1]), rng.tensor([2, 3, 3])]) { Tensor.concat($0, axis: 2) }
        checkGradients("concat axis -1", [rng.tensor([2, 3]), rng.tensor([2, 2])]) { Tensor.concat($0, axis: -1) }
        checkGradients("concat same tensor twice", [rng.tensor([2, 3])]) { Tensor.concat([$0[0], $0[0]], axis: 0) }
        let s = [rng.tensor([2, 3]), rng.tensor([2, 3]), rng.tensor([2, 3])]
        for axis in [0, 1, 2, -1] {
            checkGradients("stack axis \(axis)", s) { Tensor.stack($0, axis: axis) }
        }
    }

    func testGatherAndScatterRows() {
        var rng = SeededRNG(seed: 13)
        checkGradients("gatherRows repeated", [rng.tensor([4, 3])]) { $0[0].gatherRows([0, 2, 2, 1, 0, 2]) }
        checkGradients("gatherRows rank 3", [rng.tensor([3, 2, 2])]) { $0[0].gatherRows([2, 2, 0]) }
        checkGradients("gatherRows rank 1", [rng.tensor([5])]) { $0[0].gatherRows([4, 1, 1]) }
        checkGradients("scatterAddRows", [rng.tensor([5, 3])]) { $0[0].scatterAddRows([1, 0, 1, 3, 1], rows: 4) }
    }

    // MARK: - Products

    func testMatmulAllTransposes() {
        var rng = SeededRNG(seed: 14)
        let (m, k, n) = (3, 4, 5)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rng.tensor(ta ? [k, m] : [m, k]), b = rng.tensor(tb ? [n, k] : [k, n])
                checkGradients("matmul tA \(ta) tB \(tb)", [a, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                checkGradients("matmul tA \(ta) tB \(tb) wrt a", [a, b], wrt: [0]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                checkGradients("matmul tA \(ta) tB \(tb) wrt b", [a, b], wrt: [1]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            }
        }
        let sq = rng.tensor([4, 4])
        checkGradients("matmul x·xᵀ", [sq]) { Tensor.matmul($0[0], $0[0], transposeB: true) }
    }

    func testLinear() {
        var rng = SeededRNG(seed: 15)
        let x = rng.tensor([5, 4]), w = rng.tensor([3, 4]), b = rng.tensor([3])
        checkGradients("linear with bias", [x, w, b]) { linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients("linear without bias", [x, w]) { linear($0[0], weight: $0[1], bias: nil) }
    }

    // MARK: - Convolution and pooling

    func testConv2d() { Self.checkConv2dGradients() }

    /// Finite-difference checks of conv2d's gradients (whichever backend is in use).
    static func checkConv2dGradients() {
        var rng = SeededRNG(seed: 16)
        struct Case { let x: [Int]; let w: [Int]; let stride: Int; let pad: Int; let bias: Bool }
        let cases = [
            Case(x: [2, 1, 5, 5], w: [3, 1, 3, 3], stride: 1, pad: 0, bias: false),
            Case(x: [2, 1, 5, 5], w: [3, 1, 3, 3], stride: 1, pad: 1, bias: true),
            Case(x: [2, 3, 6, 5], w: [4, 3, 3, 3], stride: 1, pad: 1, bias: true),
            Case(x: [1, 3, 7, 6], w: [2, 3, 3, 2], stride: 2, pad: 1, bias: true),
            Case(x: [2, 3, 6, 7], w: [2, 3, 2, 3], stride: 2, pad: 0, bias: false),
            Case(x: [2, 1, 7, 5], w: [2, 1, 3, 3], stride: 2, pad: 1, bias: false),
            Case(x: [1, 3, 4, 5], w: [3, 3, 1, 1], stride: 1, pad: 0, bias: true),
            Case(x: [1, 2, 5, 4], w: [2, 2, 5, 4], stride: 1, pad: 0, bias: true),
            Case(x: [1, 2, 4, 4], w: [3, 2, 3, 3], stride: 3, pad: 2, bias: true),
        ]
        for (i, c) in cases.enumerated() {
            var inputs = [rng.tensor(c.x), rng.tensor(c.w)]
            if c.bias { inputs.append(rng.tensor([c.w[0]])) }
            checkGradients("conv2d case \(i) x\(c.x) w\(c.w) s\(c.stride) p\(c.pad) bias \(c.bias)", inputs) {
                Tensor.conv2d($0[0], weight: $0[1], bias: c.bias ? $0[2] : nil, stride: c.stride, padding: c.pad)
            }
            // Each argument alone (the backward returns nil for the others).
            for k in inputs.indices {
                checkGradients("conv2d case \(i) wrt input \(k) only", inputs, wrt: [k]) {
                    Tensor.conv2d($0[0], weight: $0[1], bias: c.bias ? $0[2] : nil, stride: c.stride, padding: c.pad)
                }
            }
        }
    }

    func testMaxPool2d() {
        var rng = SeededRNG(seed: 17)
        checkGradients("maxPool2d 2 on [2,3,4,6]", [rng.distinct([2, 3, 4, 6])]) { $0[0].maxPool2d(2) }
        checkGradients("maxPool2d 2 on [1,2,5,7] (remainder)", [rng.distinct([1, 2, 5, 7])]) { $0[0].maxPool2d(2) }
        checkGradients("maxPool2d 3 on [1,2,6,7]", [rng.distinct([1, 2, 6, 7])]) { $0[0].maxPool2d(3) }
    }

    // MARK: - Batch normalisation

    func testBatchNorm() {
        var rng = SeededRNG(seed: 18)
        let gamma2 = rng.tensor([4], 0.5, 1.5), beta2 = rng.tensor([4])
        checkGradients("batchNorm 2-D [6,4]", [rng.tensor([6, 4], -2, 2), gamma2, beta2]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output
        }
        let gamma4 = rng.tensor([3], 0.5, 1.5), beta4 = rng.tensor([3])
        checkGradients("batchNorm 4-D [2,3,3,2]", [rng.tensor([2, 3, 3, 2], -2, 2), gamma4, beta4]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output
        }
        checkGradients("batchNorm 4-D wrt x only", [rng.tensor([3, 2, 2, 2], -2, 2), rng.tensor([2], 0.5, 1.5), rng.tensor([2])], wrt: [0]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2]).output
        }
        // Running-statistics form (a composite).
        checkGradients("batchNorm with given statistics", [rng.tensor([2, 3, 2, 2]), gamma4, beta4]) {
            Tensor.batchNorm($0[0], scale: $0[1], offset: $0[2], mean: [0.1, -0.2, 0.3], variance: [0.5, 1.5, 2])
        }
    }

    // MARK: - Losses

    func testLosses() {
        var rng = SeededRNG(seed: 19)
        checkGradients("logSoftmax", [rng.tensor([4, 5], -2, 2)]) { $0[0].logSoftmax() }
        let labels = [0, 3, 1, 3, 2]
        checkGradients("crossEntropy", [rng.tensor([5, 4], -2, 2)]) { Tensor.crossEntropy(logits: $0[0], labels: labels) }
        checkGradients("nllLoss", [rng.tensor([5, 4], -2, 2)]) { $0[0].nllLoss(labels: labels) }
        checkGradients("pairwiseSquaredDistances", [rng.tensor([4, 3]), rng.tensor([5, 3])]) {
            Tensor.pairwiseSquaredDistances($0[0], $0[1])
        }
        checkGradients("pairwiseSquaredDistances same", [rng.tensor([4, 3])]) { Tensor.pairwiseSquaredDistances($0[0], $0[0]) }
        checkGradients("cosineSimilarity", [rng.tensor([4, 3]), rng.tensor([5, 3])]) { Tensor.cosineSimilarity($0[0], $0[1]) }
        checkGradients("rowNormalized", [rng.tensor([4, 3])]) { $0[0].rowNormalized() }
    }
}
