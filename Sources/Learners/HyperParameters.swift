/// A hyperparameter value as it appears in a suite file.
public enum HyperValue: Sendable, Equatable, CustomStringConvertible, Codable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .bool(let v): return String(v)
        case .string(let v): return v
        }
    }
}

/// The type a hyperparameter takes.
public enum HyperKind: String, Sendable, Equatable, Codable {
    case int, double, bool, string
}

/// One hyperparameter a learner accepts: its name, type, default and meaning.
public struct HyperParameterSpec: Sendable, Equatable {
    public var name: String
    public var kind: HyperKind
    public var defaultValue: HyperValue
    public var help: String

    public init(_ name: String, _ defaultValue: HyperValue, _ help: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.help = help
        switch defaultValue {
        case .int: kind = .int
        case .double: kind = .double
        case .bool: kind = .bool
        case .string: kind = .string
        }
    }
}

/// A hyperparameter problem, naming the learner and the key.
public enum HyperParameterError: Error, Equatable, CustomStringConvertible {
    case unknownKey(learner: String, key: String, known: [String])
    case wrongType(learner: String, key: String, expected: HyperKind, got: String)
    case invalid(learner: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .unknownKey(let learner, let key, let known):
            return "learner '\(learner)' has no hyperparameter '\(key)' (it has: \(known.joined(separator: ", ")))"
        case .wrongType(let learner, let key, let expected, let got):
            return "learner '\(learner)': hyperparameter '\(key)' must be \(expected == .int ? "an" : "a") \(expected.rawValue), got \(got)"
        case .invalid(let learner, let key, let reason):
            return "learner '\(learner)': hyperparameter '\(key)' \(reason)"
        }
    }
}

/// A learner's hyperparameters: the suite's values checked against the specs, defaults filled in.
public struct HyperParameters: Sendable, Equatable {
    public let learner: String
    public private(set) var values: [String: HyperValue]

    /// Checks `given` against `specs`: an unknown key or a value of the wrong type is an error naming it.
    /// An integer is accepted where a double is expected.
    public init(learner: String, specs: [HyperParameterSpec], given: [String: HyperValue]) throws {
        self.learner = learner
        var values: [String: HyperValue] = [:]
        for spec in specs { values[spec.name] = spec.defaultValue }
        for key in given.keys.sorted() {
            let value = given[key]!
            guard let spec = specs.first(where: { $0.name == key }) else {
                throw HyperParameterError.unknownKey(learner: learner, key: key, known: specs.map(\.name))
            }
            switch (spec.kind, value) {
            case (.int, .int), (.double, .double), (.bool, .bool), (.string, .string):
                values[key] = value
            case (.double, .int(let i)):
                values[key] = .double(Double(i))
            default:
                throw HyperParameterError.wrongType(learner: learner, key: key, expected: spec.kind,
                                                    got: "'\(value)'")
            }
        }
        self.values = values
    }

    public func int(_ key: String) -> Int {
        if case .int(let v)? = values[key] { return v }
        preconditionFailure("hyperparameter '\(key)' of '\(learner)' is not a declared int")
    }

    public func double(_ key: String) -> Double {
        if case .double(let v)? = values[key] { return v }
        preconditionFailure("hyperparameter '\(key)' of '\(learner)' is not a declared double")
    }

    public func bool(_ key: String) -> Bool {
        if case .bool(let v)? = values[key] { return v }
        preconditionFailure("hyperparameter '\(key)' of '\(learner)' is not a declared bool")
    }

    public func string(_ key: String) -> String {
        if case .string(let v)? = values[key] { return v }
        preconditionFailure("hyperparameter '\(key)' of '\(learner)' is not a declared string")
    }

    /// A positive double, or an error naming the key.
    public func positiveDouble(_ key: String) throws -> Double {
        let v = double(key)
        guard v > 0, v.isFinite else {
            throw HyperParameterError.invalid(learner: learner, key: key, reason: "must be positive, got \(v)")
        }
        return v
    }

    /// A double ≥ 0, or an error naming the key.
    public func nonNegativeDouble(_ key: String) throws -> Double {
        let v = double(key)
        guard v >= 0, v.isFinite else {
            throw HyperParameterError.invalid(learner: learner, key: key, reason: "must be zero or more, got \(v)")
        }
        return v
    }

    /// An integer ≥ `minimum`, or an error naming the key.
    public func int(_ key: String, atLeast minimum: Int) throws -> Int {
        let v = int(key)
        guard v >= minimum else {
            throw HyperParameterError.invalid(learner: learner, key: key, reason: "must be at least \(minimum), got \(v)")
        }
        return v
    }

    /// One of `choices`, or an error naming the key and the choices.
    public func choice(_ key: String, _ choices: [String]) throws -> String {
        let v = string(key)
        guard choices.contains(v) else {
            throw HyperParameterError.invalid(learner: learner, key: key,
                                              reason: "must be one of \(choices.joined(separator: ", ")), got '\(v)'")
        }
        return v
    }
}
