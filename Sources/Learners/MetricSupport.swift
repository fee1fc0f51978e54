import Engine
import FewShotData
import Models

/// Pieces the metric-based learners (Prototypical and Matching Networks, the fine-tuning baselines) share:
/// one-hot labels, class means, running batch-norm statistics in checkpoints, and gradient averaging.
enum MetricSupport {
    /// One-hot labels as a constant [count × ways].
    static func oneHot(_ labels: [Int], ways: Int) -> Tensor {
        var v = [Float](repeating: 0, count: labels.count * ways)
        for (i, l) in labels.enumerated() {
            precondition(l >= 0 && l < ways, "label \(l) out of 0..<\(ways)")
            v[i * ways + l] = 1
        }
        return Tensor(shape: [labels.count, ways], scalars: v)
    }

    /// The mean of the rows of `embeddings` [n × d] with each label: [ways × d] (differentiable).
    ///
    /// A class without rows gets the zero vector.
    static func classMeans(_ embeddings: Tensor, labels: [Int], ways: Int) -> Tensor {
        var counts = [Float](repeating: 0, count: ways)
        for l in labels { counts[l] += 1 }
        var w = [Float](repeating: 0, count: ways * labels.count)
        for (i, l) in labels.enumerated() { w[l * labels.count + i] = 1 / counts[l] }
        return Tensor.matmul(Tensor(shape: [ways, labels.count], scalars: w), embeddings)
    }

    /// Running batch-norm statistics as checkpoint tensors: "bn/block{i}/mean" and "bn/block{i}/variance".
    static func statisticsState(_ stats: [ChannelStatistics]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, s) in stats.enumerated() {
            out["bn/block\(i + 1)/mean"] = Tensor(shape: [s.mean.count], scalars: s.mean)
            out["bn/block\(i + 1)/variance"] = Tensor(shape: [s.variance.count], scalars: s.variance)
        }
        return out
    }

    /// Running statistics read back from `state`, shaped like `like`; throws naming a missing or misshapen entry.
    static func loadStatistics(_ state: [String: Tensor], like: [ChannelStatistics]) throws -> [ChannelStatistics] {
        try like.enumerated().map { i, s in
            func read(_ key: String, _ count: Int) throws -> [Float] {
                guard let t = state[key] else { throw ParameterMismatch("checkpoint has no '\(key)'") }
                guard t.shape == [count] else {
                    throw ParameterMismatch("'\(key)' has shape \(t.shape) in the checkpoint, the model expects \([count])")
                }
                return t.scalars
            }
            return ChannelStatistics(mean: try read("bn/block\(i + 1)/mean", s.mean.count),
                                     variance: try read("bn/block\(i + 1)/variance", s.variance.count))
        }
    }

    /// Optimizer state under "optimizer/…".
    static func optimizerState<R>(_ optimizer: ParameterOptimizer<R>) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, v) in optimizer.stateTensors() { out["optimizer/" + k] = v }
        return out
    }

    /// Restores optimizer state from the "optimizer/…" entries of `state`, checking each buffer's size
    /// against the parameter it belongs to.
    static func restoreOptimizer<R>(_ optimizer: ParameterOptimizer<R>, from state: [String: Tensor],
                                    parameters: Parameters) throws {
        let prefix = "optimizer/"
        let entries = state.filter { $0.key.hasPrefix(prefix) }.mapKeys { String($0.dropFirst(prefix.count)) }
        for (key, t) in entries where key != "step" {
            guard let slash = key.lastIndex(of: "/") else { throw ParameterMismatch("bad optimizer state key '\(prefix + key)'") }
            let name = String(key[..<slash])
            guard let p = parameters[name] else {
                throw ParameterMismatch("optimizer state '\(prefix + key)' names no parameter of the model")
            }
            guard t.count == p.count else {
                throw ParameterMismatch("optimizer state '\(prefix + key)' has \(t.count) values, the parameter has \(p.count)")
            }
        }
        try optimizer.restore(entries)
    }

    /// A seed that is a pure function of a support set's pixels and labels (and the learner's seed), so
    /// per-episode randomness is reproducible.
    static func contentSeed(_ images: LabelledImages, seed: UInt64) -> UInt64 {
        var h = StableHash()
        h.combine(seed)
        for l in images.labels { h.combine(UInt64(bitPattern: Int64(l))) }
        for p in images.pixels { h.combine(UInt64(p.bitPattern)) }
        return h.value
    }

    /// Runs `body` for each of `count` items (in parallel) and averages the gradients, losses and
    /// accuracies in a fixed order, so the result does not depend on thread scheduling.
    static func averaged(_ count: Int, _ body: (Int) throws -> (gradients: [Tensor], loss: Float, accuracy: Float))
        rethrows -> (gradients: [Tensor], loss: Float, accuracy: Float) {
        let results = try ComputeThreads.map(count, body)
        var total = results[0].gradients.map(\.scalars)
        for r in results.dropFirst() {
            for (j, g) in r.gradients.enumerated() {
                g.scalars.withUnsafeBufferPointer { src in
                    total[j].withUnsafeMutableBufferPointer { dst in for k in 0..<dst.count { dst[k] += src[k] } }
                }
            }
        }
        let scale = 1 / Float(results.count)
        let grads = zip(total, results[0].gradients).map { values, g in
            Tensor(shape: g.shape, scalars: results.count == 1 ? values : values.map { $0 * scale })
        }
        return (grads, results.map(\.loss).reduce(0, +) * scale, results.map(\.accuracy).reduce(0, +) * scale)
    }
}

extension Parameters {
    /// The parameters of `self` followed by those of `other`.
    func appending(_ other: Parameters) -> Parameters {
        var out = self
        for (name, t) in other { out[name] = t }
        return out
    }
}

/// Hyperparameters of the Adam optimiser with step decay that the metric learners share.
enum AdamOptions {
    static func specs(decayEvery: Int) -> [HyperParameterSpec] {
        [
            HyperParameterSpec("lr", .double(0.001), in: .learningRate, "Adam learning rate"),
            HyperParameterSpec("lr_decay", .double(0.5), in: .positive(upTo: 1), "learning-rate factor applied every lr_decay_every iterations"),
            HyperParameterSpec("lr_decay_every", .int(decayEvery), in: .iterations, "iterations between learning-rate decays (0: constant rate)"),
        ]
    }

    static func optimizer(_ p: HyperParameters) throws -> ParameterOptimizer<Adam> {
        let lr = Float(try p.positiveDouble("lr"))
        let factor = Float(try p.positiveDouble("lr_decay"))
        let every = try p.int("lr_decay_every", atLeast: 0)
        return ParameterOptimizer(Adam(), schedule: every == 0 ? .constant(lr) : .stepDecay(lr, factor: factor, every: every))
    }
}
