import Engine
import Foundation
@testable import Models
import XCTest

/// A small deterministic generator for the tests (SplitMix64).
struct TestGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / 16_777_216 }
}

func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = TestGenerator(seed: seed)
    return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.unit() })
}

final class Conv4Tests: XCTestCase {
    func conv4(size: Int, width: Int, downsampling: Conv4.Downsampling, classes: Int? = nil, seed: UInt64 = 1) -> Conv4 {
        var rng = TestGenerator(seed: seed)
        return Conv4(inputChannels: size == 84 ? 3 : 1, imageHeight: size, imageWidth: size, width: width,
                     downsampling: downsampling, classes: classes, using: &rng)
    }

    func testOutputShapes() {
        // (image size, width, downsampling) → feature count: 28 → 14 → 7 → 3 → 1 with pooling,
        // 28 → 14 → 7 → 4 → 2 with stride 2; 84 → 42 → 21 → 10 → 5 pooled, 84 → 42 → 21 → 11 → 6 strided.
        let cases: [(Int, Int, Conv4.Downsampling, Int)] = [
            (28, 64, .maxPool, 64 * 1 * 1), (28, 32, .maxPool, 32),
            (28, 64, .strided, 64 * 2 * 2), (28, 32, .strided, 32 * 4),
            (84, 64, .maxPool, 64 * 5 * 5), (84, 32, .maxPool, 32 * 25),
            (84, 64, .strided, 64 * 6 * 6), (84, 32, .strided, 32 * 36),
        ]
        for (size, width, down, features) in cases {
            let model = conv4(size: size, width: width, downsampling: down, classes: 5)
            XCTAssertEqual(model.featureCount, features, "\(size) \(width) \(down)")
            let x = randomTensor([2, size == 84 ? 3 : 1, size, size], seed: 3)
            let result = withoutGradients { model.forward(x, parameters: model.parameters, normalization: .batch) }
            XCTAssertEqual(result.features.shape, [2, features], "\(size) \(width) \(down)")
            XCTAssertEqual(result.output.shape, [2, 5])
            XCTAssertEqual(result.statistics.count, 4)
            let headless = conv4(size: size, width: width, downsampling: down)
            XCTAssertEqual(withoutGradients { headless(x) }.shape, [2, features])
            XCTAssertNil(headless.parameters["head.weight"])
        }
    }

    func testParameterNamesAndInitialisation() {
        let model = conv4(size: 28, width: 8, downsampling: .maxPool, classes: 3)
        XCTAssertEqual(model.parameters.names, (1...4).flatMap { i in
            ["conv.weight", "conv.bias", "bn.weight", "bn.bias"].map { "block\(i).\($0)" }
        } + ["head.weight", "head.bias"])
        XCTAssertEqual(model.parameters["block2.conv.weight"]?.shape, [8, 8, 3, 3])
        XCTAssertEqual(model.parameters["block1.bn.weight"]?.scalars, Array(repeating: 1, count: 8))
        XCTAssertEqual(model.parameters["block1.bn.bias"]?.scalars, Array(repeating: 0, count: 8))
        let bound = 1 / Float(8 * 9).squareRoot()
        XCTAssertTrue(model.parameters.require("block2.conv.weight").scalars.allSatisfy { abs($0) <= bound })
        // Deterministic from the seed; another seed gives other weights.
        let same = conv4(size: 28, width: 8, downsampling: .maxPool, classes: 3)
        let other = conv4(size: 28, width: 8, downsampling: .maxPool, classes: 3, seed: 2)
        XCTAssertEqual(model.parameters.tensors.map(\.scalars), same.parameters.tensors.map(\.scalars))
        XCTAssertNotEqual(model.parameters.require("block1.conv.weight").scalars,
                          other.parameters.require("block1.conv.weight").scalars)
    }

    func testForwardWithSubstitutedParametersLeavesTheModelAlone() {
        let model = conv4(size: 28, width: 8, downsampling: .maxPool, classes: 3)
        let before = model.parameters.tensors.map(\.scalars)
        let x = randomTensor([4, 1, 28, 28], seed: 5)
        let own = withoutGradients { model(x) }
        let fast = model.parameters.map { _, t in t.scaled(by: 1.1) }
        let substituted = withoutGradients { model.forward(x, parameters: fast, normalization: .batch).output }
        XCTAssertEqual(model.parameters.tensors.map(\.scalars), before)
        XCTAssertNotEqual(substituted.scalars, own.scalars)
        XCTAssertEqual(withoutGradients { model(x) }.scalars, own.scalars)
        // The model's own tree passed explicitly is the same as calling the model.
        XCTAssertEqual(withoutGradients { model.forward(x, parameters: model.parameters, normalization: .batch).output }.scalars,
                       own.scalars)
    }

    func testGivenStatisticsNormaliseEachImageIndependently() {
        let model = conv4(size: 28, width: 8, downsampling: .maxPool, classes: 3)
        let x = randomTensor([4, 1, 28, 28], seed: 6)
        let stats = withoutGradients { model.forward(x, parameters: model.parameters, normalization: .batch).statistics }
        let all = withoutGradients { model.forward(x, parameters: model.parameters, normalization: .given(stats)).output }
        let batched = withoutGradients { model(x) }
        assertClose(all.scalars, batched.scalars, relative: 1e-4, absolute: 1e-5)
        let one = withoutGradients {
            model.forward(x.slice(axis: 0, 0..<1), parameters: model.parameters, normalization: .given(stats)).output
        }
        assertClose(one.scalars, Array(all.scalars.prefix(3)), relative: 1e-5, absolute: 1e-6)
    }
}

final class OptimizerTests: XCTestCase {
    func tree(_ values: [Float]) -> Parameters {
        Parameters([("w", Tensor(shape: [values.count], scalars: values, requiresGrad: true))])
    }

    func testSGDStep() {
        let plain = ParameterOptimizer(SGD(), learningRate: 0.1)
        XCTAssertEqual(plain.update(tree([1, -2]), gradients: [Tensor(shape: [2], scalars: [0.5, 1])]).require("w").scalars,
                       [1 - 0.1 * 0.5, -2 - 0.1 * 1])
        // Weight decay λ = 0.01: g + λθ.
        let decayed = ParameterOptimizer(SGD(weightDecay: 0.01), learningRate: 0.1)
        let w = decayed.update(tree([1, -2]), gradients: [Tensor(shape: [2], scalars: [0.5, 1])]).require("w").scalars
        assertClose(w, [1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (1 - 0.02)], relative: 1e-6, absolute: 0)
    }

    func testSGDMomentumTwoSteps() {
        // μ = 0.9: b₁ = g₁, θ₁ = θ₀ − ηb₁; b₂ = μb₁ + g₂, θ₂ = θ₁ − ηb₂.
        let optimizer = ParameterOptimizer(SGD(momentum: 0.9), learningRate: 0.1)
        var p = tree([1])
        p = optimizer.update(p, gradients: [Tensor(shape: [1], scalars: [2])])
        XCTAssertEqual(p.require("w").scalars[0], 1 - 0.1 * 2, accuracy: 1e-7)
        p = optimizer.update(p, gradients: [Tensor(shape: [1], scalars: [1])])
        XCTAssertEqual(p.require("w").scalars[0], 0.8 - 0.1 * (0.9 * 2 + 1), accuracy: 1e-6)
        XCTAssertEqual(optimizer.state["w"]?[0][0] ?? 0, 2.8, accuracy: 1e-6)
        XCTAssertEqual(optimizer.step, 2)
    }

    func testAdamSteps() {
        // Step 1: m̂ = g, v̂ = g², so θ₁ = θ₀ − η·g/(|g| + ε) ≈ θ₀ − η·sign(g).
        let optimizer = ParameterOptimizer(Adam(), learningRate: 0.01)
        var p = tree([1, 1])
        p = optimizer.update(p, gradients: [Tensor(shape: [2], scalars: [0.5, -4])])
        assertClose(p.require("w").scalars, [1 - 0.01 * 0.5 / (0.5 + 1e-8), 1 + 0.01 * 4 / (4 + 1e-8)], relative: 1e-6, absolute: 0)
        // Step 2 by hand in Double.
        let g1 = [0.5, -4.0], g2 = [1.0, 2.0]
        var expected: [Double] = []
        for i in 0..<2 {
            let m = 0.9 * (0.1 * g1[i]) + 0.1 * g2[i]
            let v = 0.999 * (0.001 * g1[i] * g1[i]) + 0.001 * g2[i] * g2[i]
            let mHat = m / (1 - 0.81), vHat = v / (1 - 0.999 * 0.999)
            let first = Double(p.require("w").scalars[i])
            expected.append(first - 0.01 * mHat / (vHat.squareRoot() + 1e-8))
        }
        p = optimizer.update(p, gradients: [Tensor(shape: [2], scalars: g2.map(Float.init))])
        assertClose(p.require("w").scalars, expected.map(Float.init), relative: 1e-5, absolute: 1e-7)
        // β₁ = 0 (Reptile's inner Adam): m = g, so step 2 is η·g₂/(√v̂ + ε).
        let noMomentum = ParameterOptimizer(Adam(beta1: 0), learningRate: 0.01)
        var q = noMomentum.update(tree([0]), gradients: [Tensor(shape: [1], scalars: [3])])
        q = noMomentum.update(q, gradients: [Tensor(shape: [1], scalars: [1])])
        let v = (0.999 * 0.001 * 9 + 0.001 * 1) / (1 - 0.999 * 0.999)
        XCTAssertEqual(Double(q.require("w").scalars[0]), -0.01 - 0.01 * 1 / (v.squareRoot() + 1e-8), accuracy: 1e-7)
    }

    func testAdamWeightDecayIsAddedToTheGradient() {
        let optimizer = ParameterOptimizer(Adam(weightDecay: 0.1), learningRate: 0.01)
        // g + λθ = −0.5 + 0.1·5 = 0: the first step does not move.
        let p = optimizer.update(tree([5]), gradients: [Tensor(shape: [1], scalars: [-0.5])])
        XCTAssertEqual(p.require("w").scalars, [5])
    }

    func testStepDecaySchedule() {
        let schedule = LearningRateSchedule.stepDecay(0.1, factor: 0.5, every: 3)
        XCTAssertEqual((0..<10).map(schedule.rate(at:)), [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125])
        XCTAssertEqual(LearningRateSchedule.constant(0.3).rate(at: 1000), 0.3)
        // The optimizer steps through the schedule.
        let optimizer = ParameterOptimizer(SGD(), schedule: .stepDecay(1, factor: 0.1, every: 1))
        var p = tree([0])
        for _ in 0..<3 { p = optimizer.update(p, gradients: [Tensor(shape: [1], scalars: [1])]) }
        XCTAssertEqual(p.require("w").scalars[0], -(1 + 0.1 + 0.01), accuracy: 1e-6)
        XCTAssertEqual(optimizer.learningRate, 0.001, accuracy: 1e-8)
    }

    func testOptimizerStateRoundTrip() throws {
        let params = Parameters([("a", Tensor(shape: [2, 2], scalars: [1, 2, 3, 4], requiresGrad: true)),
                                 ("b.bias", Tensor(shape: [3], scalars: [0, 0, 0], requiresGrad: true))])
        let grads = [Tensor(shape: [2, 2], scalars: [0.1, -0.2, 0.3, -0.4]), Tensor(shape: [3], scalars: [1, 2, 3])]
        let first = ParameterOptimizer(Adam(), learningRate: 0.01)
        var p = first.update(params, gradients: grads)
        p = first.update(p, gradients: grads)
        let state = first.stateTensors()
        XCTAssertEqual(Set(state.keys), ["step", "a/m", "a/v", "b.bias/m", "b.bias/v"])
        XCTAssertEqual(state["step"]?.shape, [])

        let second = ParameterOptimizer(Adam(), learningRate: 0.01)
        try second.restore(state)
        XCTAssertEqual(second.step, 2)
        XCTAssertEqual(second.stateTensors().mapValues(\.scalars), state.mapValues(\.scalars))
        XCTAssertEqual(first.update(p, gradients: grads).tensors.map(\.scalars),
                       second.update(p, gradients: grads).tensors.map(\.scalars))

        XCTAssertThrowsError(try second.restore(["a/m": Tensor(shape: [1], scalars: [0])]))
        XCTAssertThrowsError(try second.restore(["step": Tensor(1), "a/momentum": Tensor(shape: [1], scalars: [0])]))
    }
}

/// Asserts that `a` and `b` agree within `absolute + relative·|b|`, element by element.
func assertClose(_ a: [Float], _ b: [Float], relative: Float, absolute: Float, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where !(abs(x - y) <= absolute + relative * abs(y)) {
        XCTFail("\(message) [\(i)]: \(x) vs \(y)", file: file, line: line)
        return
    }
}
