import Engine
import FewShotData
import Foundation
import Learners

/// Scores a learner on episodes: adapt to each support set, count the queries whose largest logit is at
/// their label. One visible branch: learners that adapt concurrently are evaluated a block of episodes at a
/// time on `ComputeThreads` threads, the others one episode at a time; results are gathered in episode
/// order, so they never depend on the thread count or scheduling.
struct EpisodeEvaluator {
    let label: String
    let progress: ProgressPrinter?

    struct Outcome {
        var correct: [Int] = []
        var accuracies: [Double] = []
        /// The queries of each episode.
        var queries: [Int] = []
        /// Time spent in `adapt` and `logits`.
        var seconds = 0.0
        var meanAccuracy: Double { Statistics.mean(accuracies) * 100 }
    }

    /// One episode's score and the time the learner took.
    struct Score {
        var correct: Int
        var queries: Int
        var nanoseconds: UInt64
    }

    func evaluate(_ learner: MetaLearner, sampler: EpisodeSampler, episodes: Int, memory: PeakMemorySampler,
                  showProgress: Bool) throws -> Outcome {
        try evaluate(learner, episodes: episodes, episode: sampler.episode, memory: memory, showProgress: showProgress)
    }

    /// Scores `learner` on `episode(0..<episodes)` (sampled, or read from an episode file).
    func evaluate(_ learner: MetaLearner, episodes: Int, episode: (Int) throws -> Episode, memory: PeakMemorySampler,
                  showProgress: Bool) throws -> Outcome {
        var outcome = Outcome()
        var nanoseconds: UInt64 = 0
        let parallel = learner.adaptsConcurrently && ComputeThreads.count > 1
        let block = parallel ? ComputeThreads.count * 4 : 1
        var first = 0
        while first < episodes {
            try Interruption.check()
            let count = min(block, episodes - first)
            let scores: [Score]
            if parallel {
                let start = first
                scores = try ComputeThreads.map(count) { i in
                    try score(learner, episode: episode(start + i), index: start + i)
                }
            } else {
                scores = [try score(learner, episode: episode(first), index: first)]
            }
            for (offset, s) in scores.enumerated() {
                nanoseconds += s.nanoseconds
                outcome.correct.append(s.correct)
                outcome.accuracies.append(s.queries > 0 ? Double(s.correct) / Double(s.queries) : 0)
                outcome.queries.append(s.queries)
                if showProgress {
                    progress?.evaluation(done: first + offset + 1, total: episodes, accuracy: outcome.meanAccuracy)
                }
            }
            memory.sample()
            first += count
        }
        outcome.seconds = Double(nanoseconds) / 1e9
        return outcome
    }

    /// One episode: adapt, score, count the correct queries.
    func score(_ learner: MetaLearner, episode: Episode, index: Int) throws -> Score {
        let n = episode.query.count
        let shape = episode.query.shape
        let queries = Tensor(shape: [n, shape.channels, shape.height, shape.width], scalars: episode.query.pixels)
        let start = DispatchTime.now().uptimeNanoseconds
        let classifier = try learner.adapt(support: episode.support, ways: episode.ways)
        let logits = try classifier.logits(queries: queries)
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        guard logits.shape == [n, episode.ways] else {
            throw RunnerError.invalidLogits(learner: label, expected: [n, episode.ways], got: logits.shape)
        }
        if let bad = logits.scalars.first(where: { !$0.isFinite }) {
            throw NonFiniteLogits(episode: index, value: bad)
        }
        return Score(correct: Self.correctCount(logits: logits.scalars, labels: episode.query.labels, ways: episode.ways),
                     queries: n, nanoseconds: elapsed)
    }

    /// Queries whose largest logit (the first, on ties; NaN logits never win) is at their label.
    static func correctCount(logits: [Float], labels: [Int], ways: Int) -> Int {
        var correct = 0
        for (row, label) in labels.enumerated() {
            var best = -1
            var bestValue = -Float.infinity
            for column in 0..<ways {
                let value = logits[row * ways + column]
                if !value.isNaN, best < 0 || value > bestValue {
                    best = column
                    bestValue = value
                }
            }
            if best >= 0, best == label { correct += 1 }
        }
        return correct
    }
}

/// Evaluation logits that are not all finite: the learner diverged (see `Divergence`).
struct NonFiniteLogits: Error, CustomStringConvertible {
    var episode: Int
    var value: Float
    var description: String { "evaluation episode \(episode): the learner's logits are not finite (\(value))" }
}
