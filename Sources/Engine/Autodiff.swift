import Foundation

/// A recorded operation: its inputs and the rule that maps the gradient of its output to theirs.
///
/// The rule is written with differentiable tensor operations, so when gradients are taken with
/// `createGraph: true` the rule is itself recorded and can be differentiated again (gradients of gradients).
final class Node {
    /// The inputs; empty once released.
    private(set) var inputs: [Tensor]
    /// Given the output's gradient and the output itself, the gradient of each input (nil: none flows).
    private(set) var backward: (_ grad: Tensor, _ output: Tensor) -> [Tensor?]
    let name: String
    /// Whether a backward pass that did not retain the graph has run this node and let go of what it kept.
    private(set) var isReleased = false

    init(_ name: String, inputs: [Tensor], backward: @escaping (Tensor, Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }

    /// Lets go of the inputs and of what the backward rule captured (saved activations, indices), so they
    /// are freed as the backward pass moves on instead of when the whole graph goes.
    func release() {
        inputs = []
        backward = { _, _ in [] }
        isReleased = true
    }
}

/// Whether operations record themselves on the tape, per thread (so tasks on other threads are unaffected).
public enum GradMode {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// True unless inside `withoutGradients` on this thread.
    public static var isEnabled: Bool {
        get { pthread_getspecific(key) == nil }
        set { pthread_setspecific(key, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }
}

/// Runs `body` with recording off: results are constants, and nothing is kept for backward.
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let saved = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = saved }
    return try body()
}

/// Runs `body` with recording on (the default).
public func withGradients<R>(_ body: () throws -> R) rethrows -> R {
    let saved = GradMode.isEnabled
    GradMode.isEnabled = true
    defer { GradMode.isEnabled = saved }
    return try body()
}

/// Makes an operation's result, recording it when recording is on and some input requires gradients.
@inline(__always)
func record(_ name: String, _ shape: [Int], _ scalars: [Float], inputs: [Tensor],
            backward: @escaping (Tensor, Tensor) -> [Tensor?]) -> Tensor {
    if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
        return Tensor(shape: shape, scalars: scalars, node: Node(name, inputs: inputs, backward: backward))
    }
    return Tensor(shape: shape, scalars: scalars, node: nil)
}

/// Reverse-mode gradients of a scalar `loss` with respect to `parameters`.
///
/// With `createGraph`, the backward pass is recorded, so the returned gradients are differentiable
/// functions of the parameters (and of whatever the loss depended on): differentiating a loss computed from
/// `θ' = θ − α∇L(θ)` with respect to θ gives the exact second-order meta-gradient. Without it, the
/// gradients are constants and the backward pass keeps nothing.
///
/// With `retainGraph: false` (for a graph's last backward pass) each operation lets go of its inputs and
/// saved values as soon as its gradient rule has run, so a large activation is freed once the pass has gone
/// below it instead of when the whole graph goes (PyTorch's `retain_graph=False`). Differentiating that
/// graph again then stops with a message, so the built-in learners pass it only where each loss is
/// differentiated once and no part of its graph is shared with another thread's; the default keeps the graph.
///
/// A parameter the loss does not depend on gets a zero gradient.
public func gradients(of loss: Tensor, wrt parameters: [Tensor], createGraph: Bool = false,
                      retainGraph: Bool = true) -> [Tensor] {
    precondition(loss.count == 1, "gradients(of:) needs a scalar loss, shape is \(loss.shape)")
    var order = topologicalOrder(from: loss)
    var grads: [ObjectIdentifier: Tensor] = [:]
    let wanted = Set(parameters.map { ObjectIdentifier($0) })
    // Only tensors on a path to a wanted one need a gradient: the walk stops at the rest. (Fast weights
    // after several inner steps depend on the whole earlier graph, which their gradient does not need.)
    var needed = Set<ObjectIdentifier>()
    for tensor in order {
        let id = ObjectIdentifier(tensor)
        if wanted.contains(id) || (tensor.node?.inputs.contains { needed.contains(ObjectIdentifier($0)) } ?? false) {
            needed.insert(id)
        }
    }
    let saved = GradMode.isEnabled
    GradMode.isEnabled = createGraph
    defer { GradMode.isEnabled = saved }
    grads[ObjectIdentifier(loss)] = Tensor.ones(loss.shape)
    // `order` lists each tensor after everything it depends on; walk it backwards, dropping each tensor
    // from the list as it is reached (so, with the graph released, it is freed once its rule has run).
    while let tensor = order.popLast() {
        let id = ObjectIdentifier(tensor)
        guard let node = tensor.node, let grad = grads[id] else { continue }
        if !wanted.contains(id) { grads[id] = nil }  // free intermediate gradients as soon as used
        guard node.inputs.contains(where: { needed.contains(ObjectIdentifier($0)) }) else { continue }
        let inputGrads = node.backward(grad, tensor)
        let inputs = node.inputs
        if !retainGraph { node.release() }
        for (input, g) in zip(inputs, inputGrads) {
            guard let g, input.requiresGrad, needed.contains(ObjectIdentifier(input)) else { continue }
            let key = ObjectIdentifier(input)
            if let existing = grads[key] {
                grads[key] = existing + g
            } else {
                grads[key] = g
            }
        }
    }
    return parameters.map { p in
        grads[ObjectIdentifier(p)] ?? Tensor.zeros(p.shape)
    }
}

/// Tensors reachable from `root` through recorded nodes, each after all its inputs.
private func topologicalOrder(from root: Tensor) -> [Tensor] {
    var order: [Tensor] = []
    var visited = Set<ObjectIdentifier>()
    // Iterative depth-first search (graphs of long inner loops would overflow a recursive one).
    var stack: [(Tensor, Int)] = [(root, 0)]
    visited.insert(ObjectIdentifier(root))
    while let (tensor, next) = stack.popLast() {
        if let node = tensor.node {
            precondition(!node.isReleased, """
                gradients(of:): the graph through "\(node.name)" was already differentiated with \
                retainGraph: false and freed; keep the graph (the default) in that call to differentiate it again
                """)
        }
        let inputs = tensor.node?.inputs ?? []
        if next < inputs.count {
            stack.append((tensor, next + 1))
            let child = inputs[next]
            if child.requiresGrad, visited.insert(ObjectIdentifier(child)).inserted {
                stack.append((child, 0))
            }
        } else {
            order.append(tensor)
        }
    }
    return order
}
