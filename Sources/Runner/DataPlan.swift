import Engine
import FewShotData
import Foundation
import Learners

/// Meta-training data for one cell: training-split episodes and classification batches, both pure
/// functions of the iteration and the cell's seed.
public struct SamplerTrainingSource: TrainingSource {
    public let episodeSampler: EpisodeSampler
    public let classificationSampler: ClassificationSampler

    public init(episodeSampler: EpisodeSampler, classificationSampler: ClassificationSampler) {
        self.episodeSampler = episodeSampler
        self.classificationSampler = classificationSampler
    }

    public func episodes(iteration: Int, count: Int) throws -> [Episode] {
        episodeSampler.metaBatch(iteration, size: count)
    }

    public func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages {
        classificationSampler.batch(iteration, size: size)
    }

    public var classCount: Int { episodeSampler.split.classes.count }
}

/// Seeds for the random streams of a cell, derived from its seed and a purpose.
public enum Seeds {
    public static func derive(_ seed: UInt64, _ parts: String...) -> UInt64 {
        var hash = StableHash()
        hash.combine(seed)
        for part in parts { hash.combine(part) }
        return hash.value
    }
}

/// The splits a suite runs on, resolved against the loaded dataset.
struct DataPlan {
    let dataset: FewShotDataset
    let train: Split
    let validation: Split?
    /// The split the cells are evaluated on: the training dataset's test split, or (cross-domain) the
    /// evaluation dataset's.
    let test: Split
    let validationNote: String?
    /// The dataset `test` comes from when it is not the training dataset (`evaluation.dataset`).
    let evaluationDataset: FewShotDataset?

    /// `evaluationDataset`: the suite's `evaluation.dataset`, already loaded (loaded here when nil).
    init(suite: Suite, dataset: FewShotDataset, evaluationDataset: FewShotDataset? = nil) throws {
        self.dataset = dataset
        let spec = suite.dataset
        do {
            train = try dataset.split(named: spec.trainSplit)
        } catch {
            throw RunnerError.dataset(file: suite.file, line: spec.line, message: "\(error)")
        }
        if let evaluationSpec = suite.evaluation.dataset {
            let other = try evaluationDataset ?? SuiteRunner.loadDataset(evaluationSpec, suiteFile: suite.file)
            guard other.imageShape == dataset.imageShape else {
                throw RunnerError.dataset(file: suite.file, line: evaluationSpec.line,
                                          message: "evaluation.dataset: its images are \(other.imageShape), but the training dataset's are \(dataset.imageShape); give both the same image_size (and channels)")
            }
            do {
                test = try other.split(named: evaluationSpec.testSplit)
            } catch {
                throw RunnerError.dataset(file: suite.file, line: evaluationSpec.line, message: "evaluation.dataset: \(error)")
            }
            self.evaluationDataset = other
        } else {
            do {
                test = try dataset.split(named: spec.testSplit)
            } catch {
                throw RunnerError.dataset(file: suite.file, line: spec.line, message: "\(error)")
            }
            self.evaluationDataset = nil
        }
        if let valName = spec.valSplit {
            if let split = dataset.splits.first(where: { $0.name == valName }) {
                validation = split
                validationNote = nil
            } else if spec.valSplitExplicit {
                throw RunnerError.dataset(file: suite.file, line: spec.line,
                                          message: "\(DataError.unknownSplit(valName, available: dataset.splits.map(\.name)))")
            } else {
                validation = nil
                validationNote = "the dataset has no '\(valName)' split, so there is no validation (learning curves show training loss only; the test split is never used for validation)"
            }
        } else {
            validation = nil
            let validates = suite.learners.contains { suite.training(for: $0).validateEvery > 0 }
            validationNote = validates ? "validation is turned off (splits.val: none)" : nil
        }
    }

    /// Builds every sampler once so that a setting (with each learner's own training shape) the data
    /// cannot serve fails before any training.
    func checkSamplers(learners: [LearnerEntry], normalization: Normalization, suite: Suite) throws {
        if case .meanStd(let mean, _) = normalization, mean.count != dataset.imageShape.channels {
            throw RunnerError.dataset(file: suite.file, line: nil,
                                      message: "normalization has \(mean.count) mean/std values, but images have \(dataset.imageShape.channels) channels")
        }
        // (setting with the learner's training shape, whether that learner validates), each checked once.
        var checked = Set<String>()
        for entry in learners {
            let validates = suite.training(for: entry).validateEvery > 0
            for suiteSetting in suite.settings where entry.runs(in: suiteSetting) {
                let setting = entry.training.applied(to: suiteSetting)
                guard checked.insert("\(setting.id) \(validates)").inserted else { continue }
                do {
                    let trainSettings = EpisodeSettings(ways: setting.trainWays, shots: setting.trainShots,
                                                        queriesPerClass: setting.trainQueries, normalization: normalization)
                    let evalSettings = EpisodeSettings(ways: setting.ways, shots: setting.shots,
                                                       queriesPerClass: setting.queries, normalization: normalization)
                    _ = try EpisodeSampler(split: train, imageShape: dataset.imageShape, settings: trainSettings, seed: 0)
                    _ = try EpisodeSampler(split: test, imageShape: dataset.imageShape, settings: evalSettings, seed: 0)
                    if let validation, validates {
                        _ = try EpisodeSampler(split: validation, imageShape: dataset.imageShape, settings: evalSettings, seed: 0)
                    }
                } catch {
                    // Name the learner when its own training shape is the one the data cannot serve.
                    let own = setting != suiteSetting
                    throw RunnerError.dataset(file: suite.file, line: own ? entry.line : nil,
                                              message: (own ? "learner \(entry.label), " : "") + "setting \(setting.id): \(error)")
                }
            }
        }
    }

    /// A new learner of a cell's configuration: the one constructor the trainer, `bench plan`'s timing and a
    /// stored model's restore share, so they all build the same learner.
    func makeLearner(_ config: CellConfig, registry: LearnerRegistry) throws -> MetaLearner {
        let setting = config.setting
        return try registry.descriptor(named: config.learner).instantiate(
            config.hyperparameters.values,
            setting: LearnerSetting(imageShape: dataset.imageShape, ways: setting.ways, shots: setting.shots,
                                    queriesPerClass: setting.queries, trainWays: setting.trainWays,
                                    trainClassCount: train.classes.count, seed: config.seed,
                                    metaBatch: config.training.metaBatch, iterations: config.training.iterations))
    }

    /// A cell's meta-training data: its training-episode and classification streams, derived from its seed.
    func trainingSource(_ config: CellConfig, normalization: Normalization) throws -> SamplerTrainingSource {
        let setting = config.setting
        return SamplerTrainingSource(
            episodeSampler: try EpisodeSampler(split: train, imageShape: dataset.imageShape,
                                               settings: EpisodeSettings(ways: setting.trainWays, shots: setting.trainShots,
                                                                         queriesPerClass: setting.trainQueries,
                                                                         normalization: normalization),
                                               seed: Seeds.derive(config.seed, "train")),
            classificationSampler: try ClassificationSampler(split: train, imageShape: dataset.imageShape,
                                                             normalization: normalization,
                                                             seed: Seeds.derive(config.seed, "train", "classification")))
    }

    /// The report's remark on a cross-domain suite.
    var crossDomainNote: String? {
        guard let other = evaluationDataset else { return nil }
        return "cross-domain: trained on \(dataset.name) (\(dataset.layout)), evaluated on the '\(test.name)' split of \(other.name) (\(other.layout), \(test.classes.count) classes)"
    }

    /// The evaluation dataset's part of a cell's configuration (cross-domain only).
    func evaluationConfig(suite: Suite) -> DatasetConfig? {
        guard let other = evaluationDataset, let spec = suite.evaluation.dataset else { return nil }
        return DatasetConfig(path: spec.path, options: spec.options, name: other.name, layout: other.layout,
                             imageShape: other.imageShape, trainSplit: "", valSplit: nil, testSplit: test.name,
                             classCounts: ["test": test.classes.count], normalization: suite.normalization)
    }

    func config(suite: Suite) -> DatasetConfig {
        var counts = ["train": train.classes.count, "test": test.classes.count]
        if let validation { counts["val"] = validation.classes.count }
        return DatasetConfig(path: suite.dataset.path, options: suite.dataset.options, name: dataset.name,
                             layout: dataset.layout, imageShape: dataset.imageShape,
                             trainSplit: train.name, valSplit: validation?.name, testSplit: test.name,
                             classCounts: counts, normalization: suite.normalization)
    }
}
