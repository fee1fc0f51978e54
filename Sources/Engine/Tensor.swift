/// A float32 tensor: a shape, contiguous row-major values, and (when it came from a recorded operation)
/// the node that differentiates it.
///
/// Tensors are immutable once made: every operation returns a new tensor. Identity matters to the tape,
/// so `Tensor` is a class; values are held in a copy-on-write array.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    /// The values, row-major.
    public let scalars: [Float]
    /// Whether gradients flow to this tensor: parameters, or results of operations on them.
    public let requiresGrad: Bool
    /// The recorded operation that produced this tensor, when gradients flow through it.
    let node: Node?

    /// A constant or a leaf (a parameter when `requiresGrad` is true).
    public init(shape: [Int], scalars: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
        self.requiresGrad = requiresGrad
        self.node = nil
    }

    /// The result of an operation; records `node` when gradient recording is on and an input needs it.
    init(shape: [Int], scalars: [Float], node: Node?) {
        self.shape = shape
        self.scalars = scalars
        self.requiresGrad = node != nil
        self.node = node
    }

    /// A scalar (rank-0) tensor.
    public convenience init(_ value: Float) {
        self.init(shape: [], scalars: [value])
    }

    public static func zeros(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public static func ones(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, scalars: [Float](repeating: 1, count: shape.reduce(1, *)))
    }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        Tensor(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var rank: Int { shape.count }
    public var count: Int { scalars.count }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(scalars.count == 1, "item needs a one-element tensor, shape is \(shape)")
        return scalars[0]
    }

    /// The same values with gradients cut off (a constant).
    public func detached() -> Tensor {
        node == nil && !requiresGrad ? self : Tensor(shape: shape, scalars: scalars)
    }

    /// The same values as a new leaf that requires gradients (a parameter or fast weight to differentiate).
    public func asParameter() -> Tensor {
        Tensor(shape: shape, scalars: scalars, requiresGrad: true)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(scalars.count > 8 ? ", …" : "")])"
    }
}
