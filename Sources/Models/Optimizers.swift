import Engine
import Foundation
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Lane-wise square roots, correctly rounded as `Float.squareRoot()` is (the same bits). The standard library's
/// `SIMD8.squareRoot()` goes lane by lane through `sqrtf` with its errno check; SSE's `sqrtps` does four at once.
@inline(__always)
func laneSquareRoots(_ x: SIMD8<Float>) -> SIMD8<Float> {
    #if arch(x86_64)
    return SIMD8(lowHalf: _mm_sqrt_ps(x.lowHalf), highHalf: _mm_sqrt_ps(x.highHalf))
    #else
    return x.squareRoot()
    #endif
}

/// The per-parameter rule of an optimiser; `ParameterOptimizer` does the walk over the tree.
public protocol UpdateRule {
    /// Names of the state buffers each parameter keeps (e.g. ["m", "v"] for Adam).
    var stateNames: [String] { get }
    /// Updates `value` in place from `gradient` at step `t` (1-based) with learning rate `lr`.
    func update(value: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>,
                state: inout [[Float]], step t: Int, learningRate lr: Float)
}

/// Stochastic gradient descent with momentum, dampening, weight decay and Nesterov momentum, as PyTorch's
/// `torch.optim.SGD` computes it: g ← g + λθ; b ← g at the first step, else μb + (1 − τ)g;
/// d ← g + μb with Nesterov, else b; θ ← θ − η·d (θ ← θ − η·g without momentum).
public struct SGD: UpdateRule {
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool
    public init(momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }
    public var stateNames: [String] { momentum != 0 ? ["momentum"] : [] }
    public func update(value: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>,
                       state: inout [[Float]], step t: Int, learningRate lr: Float) {
        let n = value.count
        if momentum == 0 {
            for i in 0..<n { value[i] -= lr * (gradient[i] + weightDecay * value[i]) }
            return
        }
        let (mu, keep) = (momentum, 1 - dampening)
        state[0].withUnsafeMutableBufferPointer { b in
            for i in 0..<n {
                let g = gradient[i] + weightDecay * value[i]
                b[i] = t == 1 ? g : mu * b[i] + keep * g
                value[i] -= lr * (nesterov ? g + mu * b[i] : b[i])
            }
        }
    }
}

/// Adam (Kingma & Ba 2015): m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// θ ← θ − η·m̂/(√v̂ + ε) with bias-corrected m̂, v̂. Weight decay is added to the gradient (L2).
public struct Adam: UpdateRule {
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
    public var stateNames: [String] { ["m", "v"] }
    public func update(value: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>,
                       state: inout [[Float]], step t: Int, learningRate lr: Float) {
        let c1 = 1 - Foundation.pow(beta1, Float(t)), c2 = 1 - Foundation.pow(beta2, Float(t))
        let n = value.count
        let (b1, b2, eps, wd) = (beta1, beta2, epsilon, weightDecay)
        var m = state[0], v = state[1]
        state = []
        m.withUnsafeMutableBufferPointer { pm in
            v.withUnsafeMutableBufferPointer { pv in
                // Eight lanes at a time (the compiler cannot vectorise through the pointers, which may alias
                // as far as it knows), the same correctly rounded operations in the same order lane by lane,
                // so the values are those of the scalar loop that finishes the tail.
                let lanes = 8
                var i = 0
                if n >= lanes {
                    let one = SIMD8<Float>(repeating: 1)
                    let (vb1, vb2) = (SIMD8<Float>(repeating: b1), SIMD8<Float>(repeating: b2))
                    let (vc1, vc2) = (SIMD8<Float>(repeating: c1), SIMD8<Float>(repeating: c2))
                    let (veps, vwd, vlr) = (SIMD8<Float>(repeating: eps), SIMD8<Float>(repeating: wd), SIMD8<Float>(repeating: lr))
                    let raw = UnsafeMutableRawPointer(value.baseAddress!), rawM = UnsafeMutableRawPointer(pm.baseAddress!)
                    let rawV = UnsafeMutableRawPointer(pv.baseAddress!), rawG = UnsafeRawPointer(gradient.baseAddress!)
                    while i + lanes <= n {
                        let offset = i * MemoryLayout<Float>.stride
                        let x = raw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                        let g = rawG.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + vwd * x
                        let mi = vb1 * rawM.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + (one - vb1) * g
                        let vi = vb2 * rawV.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + (one - vb2) * g * g
                        rawM.storeBytes(of: mi, toByteOffset: offset, as: SIMD8<Float>.self)
                        rawV.storeBytes(of: vi, toByteOffset: offset, as: SIMD8<Float>.self)
                        raw.storeBytes(of: x - vlr * (mi / vc1) / (laneSquareRoots(vi / vc2) + veps),
                                       toByteOffset: offset, as: SIMD8<Float>.self)
                        i += lanes
                    }
                }
                while i < n {
                    let g = gradient[i] + wd * value[i]
                    pm[i] = b1 * pm[i] + (1 - b1) * g
                    pv[i] = b2 * pv[i] + (1 - b2) * g * g
                    value[i] -= lr * (pm[i] / c1) / ((pv[i] / c2).squareRoot() + eps)
                    i += 1
                }
            }
        }
        state = [m, v]
    }
}

/// A learning rate as a function of the step: constant, or multiplied by `factor` every `every` steps.
public struct LearningRateSchedule: Equatable, Sendable {
    public var initial: Float
    public var factor: Float
    public var every: Int

    public static func constant(_ lr: Float) -> LearningRateSchedule {
        LearningRateSchedule(initial: lr, factor: 1, every: 0)
    }

    /// Step decay: η·factor^⌊step/every⌋ (step counted from 0).
    public static func stepDecay(_ lr: Float, factor: Float, every: Int) -> LearningRateSchedule {
        LearningRateSchedule(initial: lr, factor: factor, every: every)
    }

    public func rate(at step: Int) -> Float {
        guard every > 0, factor != 1 else { return initial }
        return initial * Foundation.pow(factor, Float(step / every))
    }
}

/// Applies an update rule to every parameter of a tree, keeping per-parameter state by name.
public final class ParameterOptimizer<Rule: UpdateRule> {
    public var rule: Rule
    public var schedule: LearningRateSchedule
    /// Steps taken so far.
    public private(set) var step: Int = 0
    /// State buffers by parameter name.
    public private(set) var state: [String: [[Float]]] = [:]

    public init(_ rule: Rule, learningRate: Float) {
        self.rule = rule
        self.schedule = .constant(learningRate)
    }

    public init(_ rule: Rule, schedule: LearningRateSchedule) {
        self.rule = rule
        self.schedule = schedule
    }

    /// The learning rate of the next step.
    public var learningRate: Float { schedule.rate(at: step) }

    /// New parameters after one step along `gradients` (same order as `parameters`); leaves that
    /// require gradients.
    public func update(_ parameters: Parameters, gradients: [Tensor]) -> Parameters {
        precondition(gradients.count == parameters.count, "expected \(parameters.count) gradients, got \(gradients.count)")
        let lr = schedule.rate(at: step)
        step += 1
        var updated: [Tensor] = []
        updated.reserveCapacity(parameters.count)
        for (i, (name, p)) in parameters.enumerated() {
            let g = gradients[i]
            precondition(g.shape == p.shape, "gradient of '\(name)' has shape \(g.shape), expected \(p.shape)")
            // Taken out of the dictionary while it is updated, so that its buffers are not shared and the rule
            // updates them in place (a shared buffer would be copied first: two parameter-sized copies a step).
            var s = state.removeValue(forKey: name) ?? rule.stateNames.map { _ in [Float](repeating: 0, count: p.count) }
            var value = p.scalars
            value.withUnsafeMutableBufferPointer { pv in
                g.scalars.withUnsafeBufferPointer { pg in
                    rule.update(value: pv, gradient: pg, state: &s, step: step, learningRate: lr)
                }
            }
            state[name] = s
            updated.append(Tensor(shape: p.shape, scalars: value, requiresGrad: true))
        }
        return parameters.replacing(updated)
    }

    /// The optimiser's state as named tensors ("<param>/<buffer>", plus "step"), for checkpoints.
    public func stateTensors() -> [String: Tensor] {
        var out: [String: Tensor] = ["step": Tensor(Float(step))]
        for (name, buffers) in state {
            for (b, values) in zip(rule.stateNames, buffers) {
                out["\(name)/\(b)"] = Tensor(shape: [values.count], scalars: values)
            }
        }
        return out
    }

    /// Restores state produced by `stateTensors()`.
    public func restore(_ tensors: [String: Tensor]) throws {
        guard let s = tensors["step"], s.count == 1 else { throw ParameterMismatch("optimizer state has no step") }
        var restored: [String: [[Float]]] = [:]
        for (key, t) in tensors where key != "step" {
            guard let slash = key.lastIndex(of: "/") else { throw ParameterMismatch("bad optimizer state key '\(key)'") }
            let name = String(key[..<slash]), buffer = String(key[key.index(after: slash)...])
            guard let bi = rule.stateNames.firstIndex(of: buffer) else {
                throw ParameterMismatch("optimizer state '\(key)' is not a buffer of this optimizer")
            }
            var buffers = restored[name] ?? rule.stateNames.map { _ in [Float]() }
            buffers[bi] = t.scalars
            restored[name] = buffers
        }
        step = Int(s.item)
        state = restored
    }
}
