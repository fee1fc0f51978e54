import Engine
import FewShotData
import Foundation
import Learners
import Models

/// A meta-trained learner kept in the output folder (`models/<first cell>.h5`: the learner's state as a
/// checkpoint, and what its training produced as metadata), so that a setting added to a suite later, or
/// a rerun after an interruption during evaluation, evaluates it without training again.
enum TrainedModel {
    static let metadataKey = "metabench_trained_model"

    /// What the training produced, beside the weights.
    struct Info: Codable, Equatable {
        /// The training's identity (`fingerprint(of:)`): the model is used only for the same training.
        var fingerprint: String
        var learningCurve: [CurvePoint]
        var trainingSeconds: Double
        var transductive: Bool
        var resumedAt: [Int]
        var peakResidentBytes: Int?
        var peakExact: Bool?
    }

    /// Everything the training depends on: the group's first cell's configuration but its evaluation
    /// (episode count and seed), which only scoring uses. (Its setting gives the training episodes and the
    /// validation episodes' shape.)
    static func fingerprint(of config: CellConfig) -> String {
        var training = config
        training.evaluation = EvaluationSpec(episodes: 0, seed: 0)
        training.evaluationDataset = nil
        return "training-" + training.fingerprint
    }

    /// Whether `path` holds a model of the training `fingerprint` (metadata only: the weights are not read).
    static func isStored(at path: String, fingerprint: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path),
              let metadata = try? Checkpoint.metadata(path), let text = metadata[metadataKey],
              let info = try? JSONDecoder().decode(Info.self, from: Data(text.utf8)) else { return false }
        return info.fingerprint == fingerprint
    }

    static func save(learner: MetaLearner, model: Info, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            let json = try encoder.encode(model)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Checkpoint.save(learner.checkpointState(), to: path,
                                metadata: [metadataKey: String(decoding: json, as: UTF8.self)])
        } catch {
            throw RunnerError.cannotWrite(path: path, reason: "\(error)")
        }
    }

    /// The learner of the group's configuration restored from `path`, when the file holds a model of the
    /// same training; nil otherwise (no file, another training's, or unreadable: then with a warning, and
    /// the group is trained again).
    static func load(from path: String, fingerprint: String, registry: LearnerRegistry, config: CellConfig,
                     data: DataPlan, progress: ProgressPrinter?) -> (MetaLearner, Info)? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func warn(_ reason: String) -> (MetaLearner, Info)? {
            progress?.message("warning: \(path): \(reason); training again")
            return nil
        }
        let model: Info
        do {
            let metadata = try Checkpoint.metadata(path)
            guard let text = metadata[metadataKey],
                  let info = try? JSONDecoder().decode(Info.self, from: Data(text.utf8)) else {
                return warn("not a trained model of this MetaBench version")
            }
            model = info
        } catch {
            return warn("cannot read it (\(error))")
        }
        guard model.fingerprint == fingerprint else { return nil }
        do {
            let learner = try data.makeLearner(config, registry: registry)
            try learner.restore(checkpointState: try Checkpoint.load(path))
            return (learner, model)
        } catch {
            return warn("cannot restore the learner from it (\(error))")
        }
    }
}
