import Foundation

/// A small, fast, seedable random number generator (xoshiro256**, seeded through SplitMix64).
///
/// Every random choice in MetaBench (episodes, initialisation, shuffles) draws from one of these, so a
/// seed fixes a run to the bit. Its stream is the same on every platform and Swift version.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&sm); s1 = splitMix(&sm); s2 = splitMix(&sm); s3 = splitMix(&sm)
    }

    /// A generator for one purpose: a pure function of the seed and the parts (strings and numbers).
    public init(seed: UInt64, _ parts: StreamKey...) {
        var h = StableHash()
        h.combine(seed)
        for part in parts {
            switch part {
            case .string(let s): h.combine(s)
            case .number(let n): h.combine(n)
            }
        }
        self.init(seed: h.value)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform float in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextNormal() -> Float {
        var u1 = nextUnitFloat()
        while u1 <= 0 { u1 = nextUnitFloat() }
        let u2 = nextUnitFloat()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * Float.pi * u2)
    }

    /// A uniform integer in 0..<bound, without modulo bias (Lemire's method).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// Fisher–Yates shuffle with this generator (the standard library's shuffle may change between releases).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }

    /// `count` distinct indices from 0..<population, in random order (partial Fisher–Yates).
    public mutating func sample(_ count: Int, from population: Int) -> [Int] {
        precondition(count <= population, "cannot sample more than the population")
        var pool = Array(0..<population)
        for i in 0..<count {
            let j = i + nextInt(below: population - i)
            pool.swapAt(i, j)
        }
        return Array(pool[0..<count])
    }
}

/// One part of a random stream's name: `SeededGenerator(seed: s, "episode", .string(split), .number(i))`.
public enum StreamKey: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, Sendable {
    case string(String)
    case number(UInt64)
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: UInt64) { self = .number(value) }
    public static func int(_ n: Int) -> StreamKey { .number(UInt64(bitPattern: Int64(n))) }
}

/// FNV-1a then a SplitMix finaliser: a hash that is the same in every process (Swift's `Hasher` is not).
public struct StableHash: Sendable {
    public private(set) var state: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    public mutating func combine(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) {
            state ^= (value >> UInt64(shift)) & 0xFF
            state = state &* 0x0000_0100_0000_01B3
        }
    }
    public mutating func combine(_ string: String) {
        for byte in string.utf8 {
            state ^= UInt64(byte)
            state = state &* 0x0000_0100_0000_01B3
        }
        combine(UInt64(string.utf8.count))
    }
    public var value: UInt64 {
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
