import Engine

/// A model's parameters: named tensors in a fixed order, names dotted by layer ("block1.conv.weight").
///
/// A forward pass takes a `Parameters` value, so fast weights (θ' = θ − α∇L) are substituted without
/// touching the model. Values are immutable tensors; updates return a new tree.
public struct Parameters: Sequence {
    public private(set) var names: [String]
    public private(set) var tensors: [Tensor]
    private var index: [String: Int]

    public init() {
        names = []; tensors = []; index = [:]
    }

    public init(_ pairs: [(String, Tensor)]) {
        self.init()
        for (name, tensor) in pairs { self[name] = tensor }
    }

    public var count: Int { names.count }

    /// The tensor called `name`; setting adds it at the end when new.
    public subscript(name: String) -> Tensor? {
        get { index[name].map { tensors[$0] } }
        set {
            if let i = index[name] {
                if let newValue { tensors[i] = newValue } else {
                    names.remove(at: i); tensors.remove(at: i)
                    index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
                }
            } else if let newValue {
                index[name] = names.count
                names.append(name); tensors.append(newValue)
            }
        }
    }

    /// The tensor called `name`, for layers that know it exists.
    public func require(_ name: String) -> Tensor {
        guard let t = self[name] else { preconditionFailure("no parameter named '\(name)' (have: \(names))") }
        return t
    }

    public func makeIterator() -> Zip2Sequence<[String], [Tensor]>.Iterator {
        zip(names, tensors).makeIterator()
    }

    /// The same names with tensors `transform(name, tensor)`.
    public func map(_ transform: (String, Tensor) throws -> Tensor) rethrows -> Parameters {
        var out = self
        for i in 0..<names.count { out.tensors[i] = try transform(names[i], tensors[i]) }
        return out
    }

    /// The same names with `tensors` (in this order).
    public func replacing(_ newTensors: [Tensor]) -> Parameters {
        precondition(newTensors.count == tensors.count, "expected \(tensors.count) tensors, got \(newTensors.count)")
        var out = self
        out.tensors = newTensors
        return out
    }

    /// The parameters whose names start with `prefix` (kept whole).
    public func filter(prefix: String) -> Parameters {
        Parameters(zip(names, tensors).filter { $0.0.hasPrefix(prefix) })
    }

    /// Leaves that require gradients, holding the same values (start of a differentiable computation).
    public func asLeaves() -> Parameters { map { _, t in t.asParameter() } }

    /// Constants holding the same values.
    public func detached() -> Parameters { map { _, t in t.detached() } }

    /// One gradient-descent step, differentiable when recording: θ − α·g for each parameter.
    public func descended(along gradients: [Tensor], learningRate: Float) -> Parameters {
        precondition(gradients.count == tensors.count, "expected \(tensors.count) gradients, got \(gradients.count)")
        return replacing(zip(tensors, gradients).map { $0 - $1.scaled(by: learningRate) })
    }

    /// Total number of scalars.
    public var scalarCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// Name → tensor dictionary (checkpoints).
    public var dictionary: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(names, tensors).map { ($0, $1) })
    }
}

/// A parameter-tree problem (a checkpoint or state that does not match the model).
public struct ParameterMismatch: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Parameters {
    /// The same names with the values of `state`; throws when a name is missing or a shape differs.
    public func loading(_ state: [String: Tensor], prefix: String = "") throws -> Parameters {
        try map { name, t in
            guard let v = state[prefix + name] else { throw ParameterMismatch("checkpoint has no '\(prefix + name)'") }
            guard v.shape == t.shape else {
                throw ParameterMismatch("'\(prefix + name)' has shape \(v.shape) in the checkpoint, the model expects \(t.shape)")
            }
            return Tensor(shape: v.shape, scalars: v.scalars, requiresGrad: t.requiresGrad)
        }
    }
}
