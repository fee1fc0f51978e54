import FewShotData
import Foundation
import Learners

/// The most memory one allocation, or one piece a learner holds at once, may take: half of the machine's
/// memory (or of the container's limit, when a cgroup sets a lower one). Above it an allocation would fail
/// (an abort in Swift) or the system would kill the run.
public enum MemoryBudget {
    public static var bytes: Int { Int(clamping: machineBytes / 2) }

    /// Physical memory, or the cgroup (v2 or v1) memory limit when it is lower.
    static var machineBytes: UInt64 {
        var bytes = ProcessInfo.processInfo.physicalMemory
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let limit = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                bytes = min(bytes, limit)
            }
        }
        return bytes
    }

    /// `8.0 GiB`.
    static func gibibytes(_ bytes: Int) -> String {
        String(format: "%.1f GiB", Double(bytes) / Double(1 << 30))
    }
}

extension Suite {
    /// Checks the sizes that depend on the images, once the dataset is loaded and before any training: for
    /// every learner (or those given) and setting, the images of a meta-batch and of an evaluation episode
    /// and the learner's own footprint (`LearnerDescriptor.footprint`: weights, activations, heads), each
    /// multiplied without overflow and compared with `memoryBudget`. The error names the learner, the
    /// setting, the keys and their values.
    public func validate(imageShape: ImageShape, trainClassCount: Int, registry: LearnerRegistry = .builtIn,
                         learners selected: [LearnerEntry]? = nil, memoryBudget: Int = MemoryBudget.bytes) throws {
        for entry in selected ?? learners {
            let descriptor: LearnerDescriptor
            let hyperparameters: HyperParameters
            do {
                descriptor = try registry.descriptor(named: entry.name)
                hyperparameters = try HyperParameters(learner: entry.name, specs: descriptor.hyperparameters,
                                                      given: entry.hyperparameters)
            } catch {
                throw SuiteError(file: file, line: entry.line, "\(error)")
            }
            let budget = training(for: entry)
            // The suite's settings, then each shape of the episode files the learner is evaluated on (with the
            // training shape of the setting whose model serves them).
            var checked = settings.filter { entry.runs(in: $0) }.map { (name: $0.id, setting: entry.training.applied(to: $0)) }
            if let serving = servingSetting(for: entry).map(entry.training.applied) {
                for file in evaluation.episodeFiles where entry.runs(inSettingNamed: file.name) {
                    checked += file.summary.shapes.map { shape in
                        (name: "\(file.name) (\(shape.name) episodes)",
                         setting: SettingSpec(ways: shape.ways, shots: shape.shots, queries: shape.queries, trainWays: serving.trainWays,
                                              trainShots: serving.trainShots, trainQueries: serving.trainQueries))
                    }
                }
            }
            for (name, setting) in checked {
                let context = FootprintContext(
                    imageShape: imageShape,
                    trainEpisodeImages: .init("train_ways × (train_shots + train_queries)",
                                              Self.product(setting.trainWays, Self.sum(setting.trainShots, setting.trainQueries))),
                    evaluationEpisodeImages: .init("ways × (shots + queries)",
                                                   Self.product(setting.ways, Self.sum(setting.shots, setting.queries))),
                    metaBatch: .init("meta_batch", budget.metaBatch),
                    trainClasses: .init("training classes", trainClassCount))
                let footprints = [
                    MemoryFootprint("the images of a meta-batch",
                                    [context.metaBatch, context.trainEpisodeImages, context.imageValues]),
                    MemoryFootprint("the images of an evaluation episode",
                                    [context.evaluationEpisodeImages, context.imageValues]),
                ] + descriptor.footprint(hyperparameters, context)
                for footprint in footprints {
                    if let problem = Self.problem(footprint, budget: memoryBudget) {
                        throw SuiteError(file: file, line: entry.line,
                                         "learner \(entry.label), setting \(name) with \(imageShape) images: \(problem)")
                    }
                }
            }
        }
    }

    /// Why `footprint` does not fit in `budget` bytes, or nil when it does.
    static func problem(_ footprint: MemoryFootprint, budget: Int) -> String? {
        let needs = "\(footprint.what) needs \(footprint.formula)"
        guard let count = footprint.count, let bytes = footprint.bytes else {
            return "\(needs) float32 values, a number that overflows a 64-bit integer"
        }
        guard bytes > budget else { return nil }
        return "\(needs) = \(count) float32 values (\(MemoryBudget.gibibytes(bytes))), more than the memory budget of "
            + "\(MemoryBudget.gibibytes(budget)) (half of this machine's memory)"
    }

    static func sum(_ a: Int, _ b: Int) -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : s
    }

    static func product(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : p
    }
}

extension SuiteRunner {
    /// Everything a run checks before it trains, without training (`bench validate --dataset`): loads the
    /// dataset, resolves the splits, builds every sampler the selected learners need and checks their
    /// sizes against the memory budget. Returns the dataset.
    public func checkBeforeTraining() throws -> FewShotDataset {
        let learners = try selectedLearners()
        let dataset = try Self.loadDataset(suite.dataset, suiteFile: suite.file)
        let plan = try DataPlan(suite: suite, dataset: dataset)
        try plan.checkSamplers(learners: learners, normalization: suite.normalization, suite: suite)
        try suite.validate(imageShape: dataset.imageShape, trainClassCount: plan.train.classes.count,
                           registry: registry, learners: learners)
        try checkEpisodeFiles(imageShape: dataset.imageShape)
        return dataset
    }
}
