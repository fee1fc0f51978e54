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

/// The values a numeric hyperparameter may take: an interval whose ends are each open or closed, always
/// finite (so a value inside is finite too).
public struct HyperRange: Sendable, Equatable, CustomStringConvertible {
    public var lower: Double
    public var lowerClosed: Bool
    public var upper: Double
    public var upperClosed: Bool

    public init(lower: Double, lowerClosed: Bool = true, upper: Double, upperClosed: Bool = true) {
        self.lower = lower
        self.lowerClosed = lowerClosed
        self.upper = upper
        self.upperClosed = upperClosed
    }

    /// [lower, upper].
    public static func closed(_ lower: Double, _ upper: Double) -> HyperRange {
        HyperRange(lower: lower, upper: upper)
    }

    /// [lower, upper] for an integer.
    public static func integers(_ range: ClosedRange<Int>) -> HyperRange {
        HyperRange(lower: Double(range.lowerBound), upper: Double(range.upperBound))
    }

    /// (0, upper]: a step size, a learning rate or another positive factor.
    public static func positive(upTo upper: Double) -> HyperRange {
        HyperRange(lower: 0, lowerClosed: false, upper: upper)
    }

    /// Whether `value` lies in the interval (never for NaN or an infinity).
    public func contains(_ value: Double) -> Bool {
        value.isFinite && (lowerClosed ? value >= lower : value > lower) && (upperClosed ? value <= upper : value < upper)
    }

    /// Whether the integer `value` lies in the interval.
    public func contains(_ value: Int) -> Bool { contains(Double(value)) }

    /// Interval notation: `[1, 4096]`, `(0, 1000]`.
    public var description: String {
        func number(_ v: Double) -> String {
            v.rounded() == v && abs(v) < 1e15 ? String(Int(v)) : String(v)
        }
        return (lowerClosed ? "[" : "(") + number(lower) + ", " + number(upper) + (upperClosed ? "]" : ")")
    }
}

extension HyperRange {
    /// (0, 1000]: learning rates and step sizes (a rate above 1000 diverges at once).
    public static let learningRate = HyperRange.positive(upTo: 1000)
    /// [1, 10 000]: gradient steps per task or per episode (each step is a pass of the network; the exact
    /// MAML gradient also keeps every step's activations).
    public static let steps = HyperRange.integers(1...10_000)
    /// [0, 10⁹]: iteration counts (a billion meta-iterations is years of training).
    public static let iterations = HyperRange.integers(0...1_000_000_000)
}

/// What a hyperparameter's value must satisfy beyond its type.
public enum HyperConstraint: Sendable, Equatable, CustomStringConvertible {
    /// Any value of the type (a bool).
    case any
    /// A number in the range.
    case range(HyperRange)
    /// One of these strings.
    case oneOf([String])

    /// As `bench list learners` shows it: `[1, 4096]`, `maxpool|strided`, or nothing.
    public var description: String {
        switch self {
        case .any: return ""
        case .range(let range): return range.description
        case .oneOf(let choices): return choices.joined(separator: "|")
        }
    }
}

/// One hyperparameter a learner accepts: its name, type, default, allowed values and meaning.
public struct HyperParameterSpec: Sendable, Equatable {
    public var name: String
    public var kind: HyperKind
    public var defaultValue: HyperValue
    /// Checked when a suite is loaded, so a value out of range fails before any training.
    public var allowed: HyperConstraint
    public var help: String

    public init(_ name: String, _ defaultValue: HyperValue, _ help: String) {
        self.init(name, defaultValue, allowed: .any, help)
    }

    /// A number that must lie in `range`.
    public init(_ name: String, _ defaultValue: HyperValue, in range: HyperRange, _ help: String) {
        self.init(name, defaultValue, allowed: .range(range), help)
    }

    /// A string that must be one of `choices`.
    public init(_ name: String, _ defaultValue: HyperValue, oneOf choices: [String], _ help: String) {
        self.init(name, defaultValue, allowed: .oneOf(choices), help)
    }

    public init(_ name: String, _ defaultValue: HyperValue, allowed: HyperConstraint, _ help: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.allowed = allowed
        self.help = help
        switch defaultValue {
        case .int: kind = .int
        case .double: kind = .double
        case .bool: kind = .bool
        case .string: kind = .string
        }
    }

    /// Why `value` (already of the spec's kind) is not allowed, or nil when it is.
    public func problem(with value: HyperValue) -> String? {
        switch (allowed, value) {
        case (.range(let range), .int(let v)) where !range.contains(v):
            return "must be in \(range), got \(v)"
        case (.range(let range), .double(let v)) where !range.contains(v):
            return "must be in \(range), got \(v)"
        case (.oneOf(let choices), .string(let v)) where !choices.contains(v):
            return "must be one of \(choices.joined(separator: ", ")), got '\(v)'"
        default:
            return nil
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

    /// Checks `given` against `specs`: an unknown key, a value of the wrong type or one outside the spec's
    /// allowed values is an error naming it. An integer is accepted where a double is expected.
    public init(learner: String, specs: [HyperParameterSpec], given: [String: HyperValue]) throws {
        self.learner = learner
        var values: [String: HyperValue] = [:]
        for spec in specs { values[spec.name] = spec.defaultValue }
        for (key, value) in given.sorted(by: { $0.key < $1.key }) {
            guard let spec = specs.first(where: { $0.name == key }) else {
                throw HyperParameterError.unknownKey(learner: learner, key: key, known: specs.map(\.name))
            }
            switch (spec.kind, value) {
            case (.int, .int), (.double, .double), (.bool, .bool), (.string, .string):
                values[key] = value
            case (.double, .int(let i)):
                values[key] = .double(Double(i))
            default:
                if case .range(let range) = spec.allowed {
                    // A number too large for its type arrives as a string: say which numbers are allowed.
                    throw HyperParameterError.invalid(learner: learner, key: key,
                                                      reason: "must be \(spec.kind == .int ? "an int" : "a double") in \(range), got '\(value)'")
                }
                throw HyperParameterError.wrongType(learner: learner, key: key, expected: spec.kind,
                                                    got: "'\(value)'")
            }
            if let value = values[key], let reason = spec.problem(with: value) {
                throw HyperParameterError.invalid(learner: learner, key: key, reason: reason)
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
