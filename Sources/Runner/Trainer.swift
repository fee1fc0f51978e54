import Engine
import FewShotData
import Foundation
import Learners
import Models

/// Where a cell in training keeps its checkpoint and how often it saves it.
struct CheckpointPolicy {
    var path: String
    /// Seconds between periodic saves (0: after every iteration). A signal (SIGTERM, SIGINT) always saves.
    var interval: Double
}

/// The runner's side of a cell in training, saved beside the learner's state in a checkpoint: with the
/// learner, optimiser and running statistics it is everything the rest of training depends on (samplers
/// are pure functions of the iteration), so a resumed cell gives the bits of an uninterrupted one.
struct TrainingProgress: Codable, Equatable {
    static let metadataKey = "metabench_training_progress"

    var fingerprint: String
    /// Training steps applied to the learner.
    var iterationsDone = 0
    /// Whether the learning-curve point (and validation) due after `iterationsDone` is still to be taken.
    var pointPending = false
    var learningCurve: [CurvePoint] = []
    var lossSum = 0.0
    var lossCount = 0
    var lastLoss: Double?
    var lastValidation: Double?
    var trainingNanoseconds: UInt64 = 0
    /// The iterations at which training resumed from a checkpoint.
    var resumedAt: [Int] = []
}

/// A meta-trained cell, or where it diverged.
struct TrainedCell {
    enum End: Equatable {
        case trained
        case diverged(iteration: Int?, message: String)
    }
    var learner: MetaLearner
    var transductive: Bool
    var end: End
    var learningCurve: [CurvePoint]
    var trainingSeconds: Double
    var resumedAt: [Int]
    /// The progress at the end, for a checkpoint taken during evaluation.
    var state: TrainingProgress
}

/// Meta-trains one cell: builds the learner and its samplers, runs the training steps with validation and
/// the learning curve, applies the divergence rule, and checkpoints (periodically and when a signal
/// arrives) so that a rerun resumes where it stopped.
struct CellTrainer {
    let registry: LearnerRegistry
    let data: DataPlan
    let normalization: Normalization
    let progress: ProgressPrinter?
    /// Tests: behave as if SIGTERM arrived before this iteration (0-based).
    var interruptBeforeIteration: Int?

    func train(_ cell: PlannedCell, config: CellConfig, memory: PeakMemorySampler,
               checkpoint: CheckpointPolicy?) throws -> TrainedCell {
        let setting = config.setting
        let seed = config.seed
        var learner = try data.makeLearner(config, registry: registry)
        let evalSettings = EpisodeSettings(ways: setting.ways, shots: setting.shots, queriesPerClass: setting.queries,
                                           normalization: normalization)
        let source = try data.trainingSource(config, normalization: normalization)
        var validationSampler: EpisodeSampler?
        if let val = data.validation, config.training.validateEvery > 0 {
            validationSampler = try EpisodeSampler(split: val, imageShape: data.dataset.imageShape,
                                                   settings: evalSettings, seed: Seeds.derive(seed, "validation"))
        }
        let evaluator = EpisodeEvaluator(label: cell.entry.label, progress: nil)

        var state = TrainingProgress(fingerprint: config.fingerprint)
        if let checkpoint {
            let (restored, touched) = Self.resume(learner: learner, from: checkpoint.path,
                                                  fingerprint: config.fingerprint, progress: progress)
            if let restored {
                state = restored
                state.resumedAt.append(state.iterationsDone)
            } else if touched {
                // A restore that failed halfway: start from a learner nothing was loaded into.
                learner = try data.makeLearner(config, registry: registry)
            }
        }

        let budget = config.training
        let curveStride = max(1, budget.iterations / 100)
        var lastSave = DispatchTime.now().uptimeNanoseconds
        func save() throws {
            guard let checkpoint else { return }
            try Self.save(learner: learner, progress: state, to: checkpoint.path)
            lastSave = DispatchTime.now().uptimeNanoseconds
        }
        func diverged(_ iteration: Int?, _ message: String) -> TrainedCell {
            TrainedCell(learner: learner, transductive: learner.isTransductive, end: .diverged(iteration: iteration, message: message),
                        learningCurve: state.learningCurve, trainingSeconds: Double(state.trainingNanoseconds) / 1e9,
                        resumedAt: state.resumedAt, state: state)
        }

        do {
            while state.iterationsDone < budget.iterations || state.pointPending {
                if !state.pointPending {
                    let iteration = state.iterationsDone
                    if let stop = interruptBeforeIteration, iteration == stop {
                        throw RunnerError.interrupted(signal: SIGTERM)
                    }
                    try Interruption.check()
                    let start = DispatchTime.now().uptimeNanoseconds
                    let stats: StepStats
                    do {
                        stats = try learner.trainStep(iteration: iteration, source: source)
                    } catch let error as DivergedError {
                        return diverged(error.iteration, "\(error)")
                    }
                    state.trainingNanoseconds += DispatchTime.now().uptimeNanoseconds - start
                    memory.sample()
                    let done = iteration + 1
                    state.iterationsDone = done
                    guard !Divergence.diverged(loss: stats.loss) else {
                        if state.lossCount > 0 {
                            state.learningCurve.append(CurvePoint(iteration: iteration,
                                                                  loss: state.lossSum / Double(state.lossCount)))
                        }
                        return diverged(done, stats.loss.isFinite
                            ? "training loss \(stats.loss) at iteration \(done) exceeds the divergence bound \(Divergence.lossBound)"
                            : "training loss became \(stats.loss) at iteration \(done)")
                    }
                    state.lossSum += Double(stats.loss)
                    state.lossCount += 1
                    state.lastLoss = Double(stats.loss)
                    let validates = validationSampler != nil && (done % budget.validateEvery == 0 || done == budget.iterations)
                    state.pointPending = validates || done % curveStride == 0 || done == budget.iterations
                }
                if state.pointPending {
                    let done = state.iterationsDone
                    var validation: Double?
                    if let sampler = validationSampler,
                       done % budget.validateEvery == 0 || done == budget.iterations {
                        let outcome = try evaluator.evaluate(learner, sampler: sampler, episodes: budget.validationEpisodes,
                                                             memory: memory, showProgress: false)
                        validation = outcome.meanAccuracy
                        state.lastValidation = validation
                    }
                    state.learningCurve.append(CurvePoint(iteration: done, loss: state.lossSum / Double(max(state.lossCount, 1)),
                                                          validationAccuracy: validation))
                    state.lossSum = 0
                    state.lossCount = 0
                    state.pointPending = false
                }
                progress?.training(done: state.iterationsDone, total: budget.iterations, loss: state.lastLoss,
                                   validation: state.lastValidation, elapsed: Double(state.trainingNanoseconds) / 1e9)
                if let checkpoint, state.iterationsDone < budget.iterations,
                   Double(DispatchTime.now().uptimeNanoseconds - lastSave) / 1e9 >= checkpoint.interval {
                    do {
                        try save()
                    } catch {
                        // Training goes on; only a resume would have needed it.
                        progress?.message("warning: no checkpoint this time: \(error)")
                        lastSave = DispatchTime.now().uptimeNanoseconds
                    }
                }
            }
        } catch let error as NonFiniteLogits {
            return diverged(nil, "validation: \(error)")
        } catch RunnerError.interrupted(let signal) {
            // The learner and `state` agree here: a step is either applied and counted or not started.
            do {
                try save()
            } catch {
                progress?.message("warning: the cell in training could not be checkpointed (\(error)); a rerun trains it from the start")
            }
            throw RunnerError.interrupted(signal: signal)
        }
        return TrainedCell(learner: learner, transductive: learner.isTransductive, end: .trained,
                           learningCurve: state.learningCurve, trainingSeconds: Double(state.trainingNanoseconds) / 1e9,
                           resumedAt: state.resumedAt, state: state)
    }

    /// Saves the learner's state and the progress, atomically (temporary file, then rename).
    static func save(learner: MetaLearner, progress: TrainingProgress, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json: Data
        do {
            json = try encoder.encode(progress)
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "cannot encode the training progress: \(error)")
        }
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Checkpoint.save(learner.checkpointState(), to: path,
                                metadata: [TrainingProgress.metadataKey: String(decoding: json, as: UTF8.self)])
        } catch let error as RunnerError {
            throw error
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "\(error)")
        }
    }

    /// Restores `learner` from the checkpoint at `path` when it belongs to this configuration; nil (and the
    /// file removed) when there is none, it is another configuration's, or it cannot be read (with a warning).
    /// `touched`: whether the learner may have been partly loaded before the restore failed.
    static func resume(learner: MetaLearner, from path: String, fingerprint: String,
                       progress: ProgressPrinter?) -> (state: TrainingProgress?, touched: Bool) {
        guard FileManager.default.fileExists(atPath: path) else { return (nil, false) }
        func discard(_ reason: String?, touched: Bool = false) -> (state: TrainingProgress?, touched: Bool) {
            if let reason { progress?.message("warning: \(path): \(reason); training the cell from the start") }
            try? FileManager.default.removeItem(atPath: path)
            return (nil, touched)
        }
        let metadata: [String: String]
        do {
            metadata = try Checkpoint.metadata(path)
        } catch {
            return discard("cannot read the checkpoint (\(error))")
        }
        guard let text = metadata[TrainingProgress.metadataKey],
              let state = try? JSONDecoder().decode(TrainingProgress.self, from: Data(text.utf8)) else {
            return discard("not a training checkpoint of this MetaBench version")
        }
        guard state.fingerprint == fingerprint else { return discard(nil) }
        do {
            try learner.restore(checkpointState: try Checkpoint.load(path))
        } catch {
            return discard("cannot restore the learner from it (\(error))", touched: true)
        }
        progress?.message("note: resuming from \(path) at iteration \(state.iterationsDone)")
        return (state, false)
    }
}
