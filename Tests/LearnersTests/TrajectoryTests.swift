import Engine
import FewShotData
import Foundation
import HDF5
@testable import Learners
import Models
import XCTest

/// Twenty optimizer steps of every learner in MetaBench and in PyTorch from the same initial weights on the
/// same episodes and batches, read from `Reference/torch-trajectories.h5` (written by
/// `Reference/make_torch_trajectories.py`, hand-written PyTorch twins of the learners): the loss of every
/// step, the final weights and running batch-norm statistics, and for the baselines one episode's support
/// features, fine-tuned head and query logits. Unlike single-gradient checks, these catch differences in
/// optimizer state, schedules, scales and batch-norm modes, which only show after several steps.
///
/// The cases keep every hyperparameter at its default except those the file names (width 8 throughout), so
/// a reverted default (attention scale, dampening, batch-norm mode) fails them; `testRevertedKnobsDiverge`
/// checks that it does.
///
/// Parameters whose gradient is zero up to rounding (a convolution bias in front of batch norm with batch
/// statistics, Prototypical Networks' last batch-norm shift; see `not_identifiable` in the script) take
/// steps that Adam (ε = 1e-8) scales up from rounding noise to the learning rate, different in every
/// implementation and even between PyTorch in float32 and float64 (1e-2 apart after 20 steps). They change
/// nothing else in forward passes with batch statistics but enter the running means, so MetaBench replays
/// PyTorch's values of them before every step (`replay/…`) and they are not compared.
final class TrajectoryTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/torch-trajectories.h5").path

    /// Tolerances: a loss relative to PyTorch's, any other value relative to the largest magnitude of its
    /// tensor. Both implementations compute in float32 (rounding 6e-8) in different orders, and differences
    /// grow over 20 steps. PyTorch's own float32 trajectories stay within 5.8e-6 of its float64 ones (losses;
    /// weights 7.7e-6, running statistics 9.1e-7, fine-tuned logits 1.3e-6: `make_torch_trajectories.py
    /// --float64-check`), and MetaBench's within 7.3e-6 of PyTorch's (losses, Matching Networks with
    /// transductive batch norm) and 9.1e-6 (values, Prototypical Networks' block2.bn.bias) under OpenBLAS's
    /// Haswell, SkylakeX and Zen kernels; set `METABENCH_TRAJECTORY_REPORT` to print each case's worst. The
    /// bounds sit about five times above those; a reverted knob moves a loss or a value by 1e-1 or more
    /// (`testRevertedKnobsDiverge`). They hold only away from ties (`testCasesHoldUnderRoundingPerturbations`).
    static let lossTolerance = 5e-5
    static let valueTolerance = 5e-5
    /// The largest relative change of an initial weight in `testCasesHoldUnderRoundingPerturbations`: about
    /// one unit in the last place of a float32 (2⁻²³ ≈ 1.19e-7), as `--perturbation-check` in the script.
    static let perturbationSize = 1.2e-7
    /// Perturbed runs of each case: 8, or `METABENCH_TRAJECTORY_PERTURBATIONS` (to vet a new case's seed).
    static let perturbationRuns = ProcessInfo.processInfo.environment["METABENCH_TRAJECTORY_PERTURBATIONS"]
        .flatMap { Int($0) }.map { Swift.max(1, $0) } ?? 8

    // MARK: - The stored data

    struct Store {
        let file: File

        func tensor(_ path: String) throws -> Tensor {
            let dataset = try file.dataset(path)
            return Tensor(shape: try dataset.shape(), scalars: try dataset.read(as: Float.self))
        }
        func ints(_ path: String) throws -> [Int] { try file.dataset(path).read(as: Int64.self).map { Int($0) } }
        func attribute(_ name: String) throws -> Int { try file.root().intAttribute(name) }
        /// The datasets of `group` by name.
        func tensors(_ group: String) throws -> [String: Tensor] {
            let members = try file.group(group).members().filter { $0.kind == .dataset }
            return Dictionary(uniqueKeysWithValues: try members.map { ($0.name, try tensor(group + "/" + $0.name)) })
        }
        func exists(_ path: String) throws -> Bool { try file.exists(path) }
        /// A JSON object of hyperparameters, typed by the learner's specs.
        func hyperparameters(_ group: String, specs: [HyperParameterSpec]) throws -> [String: HyperValue] {
            let text = try file.group(group).stringAttribute("hyperparameters")
            let raw = try JSONDecoder().decode([String: JSONScalar].self, from: Data(text.utf8))
            return try raw.reduce(into: [:]) { out, entry in
                guard let spec = specs.first(where: { $0.name == entry.key }), let value = entry.value.value(spec.kind) else {
                    throw StoreError("\(group): hyperparameter \(entry.key) = \(entry.value) fits no spec")
                }
                out[entry.key] = value
            }
        }
    }

    struct StoreError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A JSON number, boolean or string.
    enum JSONScalar: Decodable {
        case bool(Bool), int(Int), double(Double), string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .double(d) }
            else { self = .string(try c.decode(String.self)) }
        }
        func value(_ kind: HyperKind) -> HyperValue? {
            switch (kind, self) {
            case (.int, .int(let i)): return .int(i)
            case (.double, .int(let i)): return .double(Double(i))
            case (.double, .double(let d)): return .double(d)
            case (.bool, .bool(let b)): return .bool(b)
            case (.string, .string(let s)): return .string(s)
            default: return nil
            }
        }
    }

    /// The image pool, the episodes of every iteration and the pre-training batches.
    struct Stored {
        let store: Store
        let shape: ImageShape
        let pool: [Float]
        let source: StoredSource
        let setting: LearnerSetting

        init(_ store: Store) throws {
            let side = try store.attribute("side")
            let shape = ImageShape(channels: 1, height: side, width: side)
            let pool = try store.tensor("pool/x").scalars, poolLabels = try store.ints("pool/y")
            let (ways, shots, queries) = (try store.attribute("ways"), try store.attribute("shots"), try store.attribute("queries"))
            let (steps, metaBatch) = (try store.attribute("steps"), try store.attribute("meta_batch"))
            let support = try store.ints("episodes/support"), supportLabels = try store.ints("episodes/support_labels")
            let query = try store.ints("episodes/query"), queryLabels = try store.ints("episodes/query_labels")
            let (ns, nq) = (ways * shots, ways * queries)
            let episodes = (0..<steps).map { t in
                (0..<metaBatch).map { j in
                    let e = t * metaBatch + j
                    return Episode(ways: ways, shots: shots, queriesPerClass: queries,
                                   support: Self.images(pool, shape, Array(support[(e * ns)..<((e + 1) * ns)]),
                                                        Array(supportLabels[(e * ns)..<((e + 1) * ns)])),
                                   query: Self.images(pool, shape, Array(query[(e * nq)..<((e + 1) * nq)]),
                                                      Array(queryLabels[(e * nq)..<((e + 1) * nq)])),
                                   classIndices: Array(0..<ways))
                }
            }
            let batchIndices = try store.ints("batches"), batchSize = batchIndices.count / steps
            let batches = (0..<steps).map { t in
                let indices = Array(batchIndices[(t * batchSize)..<((t + 1) * batchSize)])
                return Self.images(pool, shape, indices, indices.map { poolLabels[$0] })
            }
            let classes = try store.attribute("classes")
            self.store = store
            self.shape = shape
            self.pool = pool
            source = StoredSource(episodes: episodes, batches: batches, classCount: classes)
            setting = LearnerSetting(imageShape: shape, ways: ways, shots: shots, queriesPerClass: queries, trainWays: ways,
                                     trainClassCount: classes, seed: 0, metaBatch: metaBatch, iterations: steps)
        }

        /// Pool images `indices` with `labels`.
        static func images(_ pool: [Float], _ shape: ImageShape, _ indices: [Int], _ labels: [Int]) -> LabelledImages {
            let n = shape.count
            return LabelledImages(shape: shape, pixels: indices.flatMap { pool[($0 * n)..<(($0 + 1) * n)] }, labels: labels)
        }

        func images(_ indices: [Int], _ labels: [Int]) -> LabelledImages { Self.images(pool, shape, indices, labels) }
    }

    /// The stored episodes and classification batches of each iteration.
    struct StoredSource: TrainingSource {
        let episodes: [[Episode]]
        let batches: [LabelledImages]
        let classCount: Int

        func episodes(iteration: Int, count: Int) throws -> [Episode] {
            guard episodes.indices.contains(iteration), episodes[iteration].count == count else {
                throw StoreError("no meta-batch of \(count) episodes stored for iteration \(iteration)")
            }
            return episodes[iteration]
        }

        func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages {
            guard batches.indices.contains(iteration), batches[iteration].count == size else {
                throw StoreError("no batch of \(size) images stored for iteration \(iteration)")
            }
            return batches[iteration]
        }
    }

    static let stored = Result(catching: { try Stored(Store(file: File(path))) })

    // MARK: - Learners' trained state

    /// The learner's Conv4 (every learner has one).
    static func model(_ learner: MetaLearner) throws -> Conv4 {
        switch learner {
        case let m as MAML: return m.model
        case let r as Reptile: return r.model
        case let p as ProtoNet: return p.model
        case let m as MatchingNet: return m.model
        case let b as Baseline: return b.model
        default: throw StoreError("no Conv4 known in \(type(of: learner))")
        }
    }

    /// Every trained parameter: the Conv4's, and the LSTMs of full-context embeddings or the baselines' head.
    static func parameters(_ learner: MetaLearner) throws -> Parameters {
        let own = try model(learner).parameters
        if let m = learner as? MatchingNet { return own.appending(m.fce) }
        if let b = learner as? Baseline { return own.appending(b.head) }
        return own
    }

    /// Sets the parameters named in `values` (all or some), keeping the others.
    static func set(_ values: [String: Tensor], in learner: MetaLearner) throws {
        let all = try parameters(learner).dictionary.merging(values) { _, new in new }
        let model = try model(learner)
        model.parameters = try model.parameters.loading(all)
        if let m = learner as? MatchingNet { m.fce = try m.fce.loading(all) }
        if let b = learner as? Baseline { b.head = try b.head.loading(all) }
    }

    // MARK: - Running a case

    /// The largest difference found for each kind of value, with what it was.
    struct Worst: CustomStringConvertible {
        var loss = (0.0, ""), value = (0.0, "")
        var failures: [String] = []

        mutating func loss(_ ours: Float, _ theirs: Float, _ what: String) {
            let d = abs(Double(ours) - Double(theirs)) / max(abs(Double(theirs)), 1e-6)
            if d > loss.0 { loss = (d, what) }
            if !(d <= TrajectoryTests.lossTolerance) { failures.append("\(what): \(ours) vs PyTorch's \(theirs)") }
        }

        /// Compares two tensors: the largest difference relative to the reference's largest magnitude.
        mutating func values(_ ours: [Float], _ theirs: [Float], _ what: String) {
            guard ours.count == theirs.count else {
                failures.append("\(what): \(ours.count) values, PyTorch has \(theirs.count)")
                return
            }
            let scale = theirs.map { abs(Double($0)) }.max() ?? 0
            let d = zip(ours, theirs).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let relative = d / max(scale, 1e-6)
            if relative > value.0 { value = (relative, what) }
            if !(relative <= TrajectoryTests.valueTolerance) {
                failures.append("\(what): differs by \(d), largest value \(scale)")
            }
        }

        var description: String {
            String(format: "losses %.1e (%@), values %.1e (%@)", loss.0, loss.1, value.0, value.1)
        }
    }

    /// Runs case `name` in MetaBench and compares it with PyTorch's; `overrides` change hyperparameters (to
    /// check that a reverted knob is caught); a `perturbation` seed first moves every initial weight by up to
    /// about one unit in the last place (`testCasesHoldUnderRoundingPerturbations`).
    func run(_ name: String, overrides: [String: HyperValue] = [:], perturbation: UInt64? = nil) throws -> Worst {
        let data = try Self.stored.get(), store = data.store
        let group = "cases/" + name
        let descriptor = try LearnerRegistry.builtIn.descriptor(named: try store.file.group(group).stringAttribute("learner"))
        var given = try store.hyperparameters(group, specs: descriptor.hyperparameters)
        given.merge(overrides) { _, new in new }
        let learner = try descriptor.instantiate(given, setting: data.setting)
        var worst = Worst()

        var initial = try store.tensors(group + "/initial")
        if let perturbation {
            var generator = SeededGenerator(seed: perturbation)
            for name in initial.keys.sorted() {
                guard let t = initial[name] else { continue }
                initial[name] = Tensor(shape: t.shape, scalars: t.scalars.map { v in
                    Float(Double(v) * (1 + Self.perturbationSize * Double.random(in: -1...1, using: &generator)))
                })
            }
        }
        XCTAssertEqual(Set(initial.keys), Set(try Self.parameters(learner).names), "\(name): parameter names")
        try Self.set(initial, in: learner)
        let replay = try store.exists(group + "/replay") ? try store.tensors(group + "/replay") : [:]
        func replayed(_ step: Int) -> [String: Tensor] {
            replay.mapValues { t in
                let shape = Array(t.shape.dropFirst()), n = shape.reduce(1, *)
                return Tensor(shape: shape, scalars: Array(t.scalars[(step * n)..<((step + 1) * n)]))
            }
        }
        let losses = try store.tensor(group + "/losses").scalars
        for (t, loss) in losses.enumerated() {
            try Self.set(replayed(t), in: learner)
            worst.loss(try learner.trainStep(iteration: t, source: data.source).loss, loss, "\(name) step \(t) loss")
        }
        try Self.set(replayed(losses.count), in: learner)

        let final = try store.tensors(group + "/final")
        for (parameter, ours) in try Self.parameters(learner) where replay[parameter] == nil {
            worst.values(ours.scalars, final[parameter]?.scalars ?? [], "\(name) \(parameter)")
        }
        if try store.exists(group + "/running") {
            for (i, s) in try Self.model(learner).runningStatistics.enumerated() {
                let prefix = "\(group)/running/block\(i + 1)/"
                worst.values(s.mean, try store.tensor(prefix + "mean").scalars, "\(name) running mean \(i + 1)")
                worst.values(s.variance, try store.tensor(prefix + "variance").scalars, "\(name) running variance \(i + 1)")
            }
        }
        if let baseline = learner as? Baseline {
            try fineTune(baseline, name, descriptor: descriptor, given: given, data: data, worst: &worst)
        }
        if ProcessInfo.processInfo.environment["METABENCH_TRAJECTORY_REPORT"] != nil {
            print("\(name)\(overrides.isEmpty ? "" : " \(overrides)")\(perturbation.map { " perturbed \($0)" } ?? ""): \(worst)")
        }
        return worst
    }

    /// One episode's fine-tuning after pre-training: the support features (running statistics), and for each
    /// stored variant of the SGD knobs the tuned head and the query logits, from the stored initial head and
    /// mini-batches.
    func fineTune(_ baseline: Baseline, _ name: String, descriptor: LearnerDescriptor, given: [String: HyperValue],
                  data: Stored, worst: inout Worst) throws {
        let store = data.store, group = "cases/\(name)/finetune"
        let support = data.images(try store.ints("finetune/support"), try store.ints("finetune/support_labels"))
        let query = data.images(try store.ints("finetune/query"), try store.ints("finetune/query_labels"))
        let features = baseline.features(support.tensor)
        worst.values(features.scalars, try store.tensor(group + "/features").scalars, "\(name) support features")
        let queryFeatures = baseline.features(query.tensor)
        let flat = try store.ints("finetune/batches")
        var batches: [[Int]] = [], start = 0
        for size in try store.ints("finetune/batch_sizes") {
            batches.append(Array(flat[start..<(start + size)]))
            start += size
        }
        let head = Parameters(try store.tensors(group + "/initial").sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        for variant in ["default", "nesterov"] {
            let knobs = try store.hyperparameters("\(group)/\(variant)", specs: descriptor.hyperparameters)
            guard let tuner = try descriptor.instantiate(given.merging(knobs) { _, new in new }, setting: data.setting) as? Baseline else {
                throw StoreError("\(name) is not a baseline")
            }
            let tuned = tuner.fineTune(features: features, labels: support.labels, head: head, batches: batches).head
            let theirs = try store.tensors("\(group)/\(variant)/head")
            for (parameter, ours) in tuned {
                worst.values(ours.scalars, theirs[parameter]?.scalars ?? [], "\(name) fine-tuned (\(variant)) \(parameter)")
            }
            worst.values(tuner.headLogits(queryFeatures, tuned).scalars, try store.tensor("\(group)/\(variant)/logits").scalars,
                         "\(name) query logits (\(variant))")
        }
    }

    func check(_ names: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        for name in names {
            let worst = try run(name)
            XCTAssert(worst.failures.isEmpty, worst.failures.prefix(5).joined(separator: "\n"), file: file, line: line)
        }
    }

    // MARK: - Tests

    func testMAMLMatchesPyTorch() throws { try check(["maml", "maml_2steps", "maml_support", "fomaml"]) }

    func testReptileMatchesPyTorch() throws { try check(["reptile_adam", "reptile_sgd"]) }

    func testProtoNetMatchesPyTorch() throws { try check(["protonet_running", "protonet_transductive"]) }

    func testMatchingNetMatchesPyTorch() throws {
        try check(["matchingnet_running", "matchingnet_transductive", "matchingnet_fce"])
    }

    func testBaselinesMatchPyTorch() throws { try check(["baseline", "baseline++"]) }

    /// Rounding in another order (another OpenBLAS kernel family or CPU, PyTorch's own kernels) moves values
    /// by about a unit in the last place. A trajectory that passes near a tie (the two largest inputs of a
    /// max-pool, a ReLU's input at zero) takes the other branch under some of those orders and then leaves
    /// PyTorch's by far more than rounding, so its comparison tests luck: `protonet_transductive` from its former seed
    /// left it by 1.7e-4 under OpenBLAS's SkylakeX kernels alone (and in 3 of 12 runs under Haswell's from
    /// initial weights moved by up to 1e-7), `reptile_sgd` from its former seed by 0.57 in 5 of 16 such runs. The
    /// cases' seeds are chosen clear of ties (`make_torch_trajectories.py --perturbation-check`); this checks
    /// it on MetaBench's side, on whatever kernels run it: every case, from initial weights moved by up to
    /// about one unit in the last place, stays within the tolerances in each of eight runs (more with
    /// `METABENCH_TRAJECTORY_PERTURBATIONS`).
    func testCasesHoldUnderRoundingPerturbations() throws {
        let cases = try Self.stored.get().store.file.group("cases").members().map(\.name).sorted()
        XCTAssertEqual(cases.count, 13, "cases in \(Self.path)")
        for name in cases {
            for perturbation in 1...UInt64(Self.perturbationRuns) {
                let worst = try run(name, perturbation: perturbation)
                XCTAssert(worst.failures.isEmpty, "\(name), perturbation \(perturbation): "
                          + worst.failures.prefix(3).joined(separator: "\n"))
            }
        }
    }

    /// Reverting a knob to its former value (MAML's batch-norm mode, Prototypical Networks' one joint batch,
    /// Matching Networks' attention scale, the baselines' dampening) leaves PyTorch's trajectory by far more
    /// than the tolerances.
    func testRevertedKnobsDiverge() throws {
        for (name, overrides) in [
            ("maml", ["batch_norm": HyperValue.string("support")]),
            ("protonet_running", ["batch_norm": .string("transductive")]),
            ("matchingnet_running", ["attention_scale": .double(1)]),
            ("baseline", ["finetune_dampening": .double(0)]),
        ] {
            let worst = try run(name, overrides: overrides)
            XCTAssertFalse(worst.failures.isEmpty, "\(name) with \(overrides) still matches PyTorch: \(worst)")
        }
    }
}
