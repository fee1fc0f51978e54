import FewShotData
import Foundation
import Learners
import Yams

/// Reads a suite from YAML nodes, checking every key and value; errors name the file and line.
struct SuiteParser {
    let file: String
    let registry: LearnerRegistry

    static let topKeys = ["name", "description", "exact", "dataset", "normalization", "settings", "learners",
                          "training", "evaluation", "seeds", "published"]
    static let datasetKeys = ["path", "image_size", "resize", "rotations", "labels_prefix", "variant", "splits"]
    static let splitKeys = ["train", "val", "test"]
    static let settingKeys = ["ways", "shots", "queries", "train_ways", "train_shots", "train_queries"]
    static let learnerKeys = ["name", "label", "hyperparameters", "training", "settings"]
    static let learnerTrainingKeys = ["iterations", "meta_batch", "validate_every", "validation_episodes",
                                      "train_ways", "train_shots", "train_queries"]
    static let trainingKeys = ["iterations", "meta_batch", "validate_every", "validation_episodes"]
    static let evaluationKeys = ["episodes", "seed", "dataset", "episodes_file"]
    static let normalizationKeys = ["mean", "std"]

    func parse(_ yaml: String) throws -> Suite {
        // Yams composes recursively: a deeply nested text would overflow the stack, so it is measured first.
        if let line = YAMLNesting.firstLine(deeperThan: SuiteLimits.nestingDepth, in: yaml) {
            throw SuiteError(file: file, line: line,
                             "nesting deeper than \(SuiteLimits.nestingDepth) levels at line \(line) (a suite needs about five; an alias counts with the levels of the node it names)")
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw SuiteError(file: file, line: nil, "the suite file is empty (expected a mapping with keys: \(Self.topKeys.joined(separator: ", ")))")
            }
            root = node
        } catch let error as SuiteError {
            throw error
        } catch let error as YamlError {
            throw SuiteError(file: file, line: Self.line(of: error), "invalid YAML: \(Self.problem(of: error))")
        } catch {
            throw SuiteError(file: file, line: nil, "invalid YAML: \(error)")
        }

        let top = try mapping(root, "the suite", allowed: Self.topKeys)
        let defaultName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = try top["name"].map { try string($0.value, "name") } ?? defaultName
        if let problem = SuiteLimits.nameProblem(name, maxBytes: SuiteLimits.nameBytes, commas: true) {
            throw SuiteError(file: file, line: top["name"].flatMap { line($0.value) },
                             "suite name '\(Self.printable(name))' \(problem)"
                                + (top["name"] == nil ? " (it comes from the file name; set `name:`)" : ""))
        }
        let summary = try top["description"].map { try string($0.value, "description") }
        let exact = try top["exact"].map { try bool($0.value, "exact") } ?? false
        let dataset = try top["dataset"].map { try parseDataset($0.value) } ?? DatasetSpec()
        let normalization = try top["normalization"].map { try parseNormalization($0.value) } ?? .none

        guard let settingsNode = top["settings"] else { throw missing("settings", in: root, "the suite") }
        let settings = try sequence(settingsNode.value, "settings").map(parseSetting)
        if settings.isEmpty { throw SuiteError(file: file, line: line(settingsNode.value), "settings: expected at least one setting") }
        var seenSettings: Set<String> = []
        for (setting, node) in zip(settings, try sequence(settingsNode.value, "settings")) where !seenSettings.insert(setting.id).inserted {
            throw SuiteError(file: file, line: line(node), "settings: '\(setting.id)' appears twice")
        }

        guard let learnersNode = top["learners"] else { throw missing("learners", in: root, "the suite") }
        var learners = try sequence(learnersNode.value, "learners").map(parseLearner)
        if learners.isEmpty { throw SuiteError(file: file, line: line(learnersNode.value), "learners: expected at least one learner") }
        for entry in learners {
            if let problem = SuiteLimits.nameProblem(entry.label, maxBytes: SuiteLimits.labelBytes, commas: false) {
                throw SuiteError(file: file, line: entry.line, "learner label '\(Self.printable(entry.label))' \(problem)")
            }
        }
        let evaluation = try top["evaluation"].map { try parseEvaluation($0.value) } ?? EvaluationSpec()
        let fileSettings = evaluation.episodeFiles.map { SettingSpec(ways: 0, shots: 0, episodesFile: $0.name) }
        // A learner's own list of settings names the suite's settings: by id (5w1s, 5w1s5q,
        // 5w1s-train20w1s15q), or by the short name (5w1s) when exactly one setting has it; an episode file's
        // setting by its name.
        for index in learners.indices {
            guard let names = learners[index].settings else { continue }
            let entry = learners[index]
            var ids: [String] = []
            for name in names {
                let all = settings + fileSettings
                let matches = all.filter { $0.id == name }.isEmpty ? all.filter { $0.shortName == name }
                    : all.filter { $0.id == name }
                guard matches.count == 1, let match = matches.first else {
                    let known = all.map(\.id).joined(separator: ", ")
                    throw SuiteError(file: file, line: entry.line, matches.isEmpty
                        ? "learner \(entry.label): settings: '\(Self.printable(name))' is not a setting of this suite (settings: \(known))"
                        : "learner \(entry.label): settings: '\(name)' names \(matches.count) settings (\(matches.map(\.id).joined(separator: ", "))); use the full id")
                }
                guard !ids.contains(match.id) else {
                    throw SuiteError(file: file, line: entry.line, "learner \(entry.label): settings: '\(match.id)' appears twice")
                }
                ids.append(match.id)
            }
            learners[index].settings = ids
        }
        var seenLabels: Set<String> = []
        for entry in learners where !seenLabels.insert(entry.label).inserted {
            throw SuiteError(file: file, line: entry.line,
                             "learner label '\(entry.label)' appears twice (give one of them a different `label:`)")
        }

        guard let trainingNode = top["training"] else { throw missing("training", in: root, "the suite") }
        let training = try parseTraining(trainingNode.value)
        try checkImagesPerClass(settings: settings, settingNodes: try sequence(settingsNode.value, "settings"),
                                learners: learners)

        var seeds: [UInt64] = [0]
        if let seedsNode = top["seeds"] {
            let items = try sequence(seedsNode.value, "seeds")
            if items.isEmpty { throw SuiteError(file: file, line: line(seedsNode.value), "seeds: expected at least one seed") }
            seeds = try items.map { UInt64(try int($0, "seeds", in: SuiteLimits.seed)) }
            if Set(seeds).count != seeds.count {
                throw SuiteError(file: file, line: line(seedsNode.value), "seeds: a seed appears twice")
            }
        }

        var published: [String: [String: Double]] = [:]
        if let publishedNode = top["published"] {
            let labels = learners.map(\.label)
            for (labelNode, valuesNode) in try mappingPairs(publishedNode.value, "published") {
                let label = try string(labelNode, "published")
                guard labels.contains(label) else {
                    throw SuiteError(file: file, line: line(labelNode),
                                     "published: '\(label)' is not a learner label of this suite (labels: \(labels.joined(separator: ", ")))")
                }
                var values: [String: Double] = [:]
                for (keyNode, valueNode) in try mappingPairs(valuesNode, "published.\(label)") {
                    let key = try string(keyNode, "published.\(label)")
                    guard Self.isShortSettingName(key) || evaluation.episodeFiles.contains(where: { $0.name == key }) else {
                        throw SuiteError(file: file, line: line(keyNode),
                                         "published.\(label): expected a setting name like 5w1s (ways, 'w', shots, 's') or an episode file's name, got '\(key)'")
                    }
                    values[key] = try double(valueNode, "published.\(label).\(key)", in: SuiteLimits.publishedAccuracy)
                }
                published[label] = values
            }
        }

        // Learner names and hyperparameters are checked against the registry now, not after hours of training.
        for entry in learners {
            let descriptor: LearnerDescriptor
            do {
                descriptor = try registry.descriptor(named: entry.name)
            } catch {
                throw SuiteError(file: file, line: entry.line, "\(error)")
            }
            do {
                _ = try HyperParameters(learner: entry.name, specs: descriptor.hyperparameters, given: entry.hyperparameters)
            } catch {
                throw SuiteError(file: file, line: entry.line, "\(error)")
            }
        }

        let suite = Suite(name: name, file: file, summary: summary, exact: exact, dataset: dataset,
                          normalization: normalization, settings: settings, learners: learners, training: training,
                          evaluation: evaluation, seeds: seeds, published: published)
        try suite.checkEpisodeFiles(registry: registry)
        return suite
    }

    // MARK: - Sections

    func parseDataset(_ node: Node, _ what: String = "dataset") throws -> DatasetSpec {
        if node.scalar != nil {
            return DatasetSpec(path: try string(node, "\(what)"), line: line(node))
        }
        let m = try mapping(node, "\(what)", allowed: Self.datasetKeys)
        var spec = DatasetSpec(line: line(node))
        if let p = m["path"] {
            spec.path = try string(p.value, "\(what).path")
            spec.line = line(p.value)
            if spec.path.isEmpty { throw SuiteError(file: file, line: line(p.value), "\(what).path: expected a path or 'embedded', got an empty string") }
        }
        if let v = m["image_size"] { spec.options.imageSize = try int(v.value, "\(what).image_size", in: SuiteLimits.imageSize) }
        if let v = m["resize"] {
            let name = try string(v.value, "\(what).resize")
            guard let mode = ResizeMode(rawValue: name) else {
                throw SuiteError(file: file, line: line(v.value),
                                 "\(what).resize: expected one of \(ResizeMode.names), got '\(Self.printable(name))'")
            }
            guard spec.options.imageSize != nil else {
                throw SuiteError(file: file, line: line(v.value),
                                 "\(what).resize: needs dataset.image_size (it chooses how images are resized)")
            }
            spec.options.resize = mode
        }
        if let v = m["rotations"] { spec.options.rotations = try bool(v.value, "\(what).rotations") }
        if let v = m["labels_prefix"] { spec.options.labelsPrefix = try string(v.value, "\(what).labels_prefix") }
        if let v = m["variant"] { spec.options.variant = try string(v.value, "\(what).variant") }
        if let s = m["splits"] {
            let splits = try mapping(s.value, "\(what).splits", allowed: Self.splitKeys)
            func split(_ key: String) throws -> String? {
                guard let v = splits[key] else { return nil }
                let name = try string(v.value, "\(what).splits.\(key)")
                if name.isEmpty { throw SuiteError(file: file, line: line(v.value), "\(what).splits.\(key): expected a split name, got an empty string") }
                return name
            }
            if let name = try split("train") { spec.trainSplit = name }
            if let name = try split("test") { spec.testSplit = name }
            if let v = splits["val"] {
                spec.valSplit = v.value.null != nil ? nil : try split("val").flatMap { $0 == "none" ? nil : $0 }
                spec.valSplitExplicit = true
            }
            try checkDistinctSplits(spec, splits)
        }
        return spec
    }

    /// Train, validation and test must be different splits (the same split twice would validate or test on
    /// the training data).
    func checkDistinctSplits(_ spec: DatasetSpec, _ nodes: [String: (key: Node, value: Node)]) throws {
        var uses: [(key: String, name: String)] = [("train", spec.trainSplit)]
        if let val = spec.valSplit { uses.append(("val", val)) }
        uses.append(("test", spec.testSplit))
        for (i, a) in uses.enumerated() {
            for b in uses[(i + 1)...] where a.name == b.name {
                func shown(_ key: String) -> String { "dataset.splits.\(key)" + (nodes[key] == nil ? " (by default)" : "") }
                let at = nodes[b.key] ?? nodes[a.key]
                throw SuiteError(file: file, line: at.flatMap { line($0.value) },
                                 "\(shown(a.key)) and \(shown(b.key)) both name split '\(a.name)': train, val and test must be different splits"
                                    + (b.key == "val" || a.key == "val" ? " (val: none turns validation off)" : ""))
            }
        }
    }

    func parseNormalization(_ node: Node) throws -> Normalization {
        if let scalar = node.scalar {
            guard scalar.string == "none" else {
                throw SuiteError(file: file, line: line(node),
                                 "normalization: expected 'none' or a mapping with mean and std lists, got '\(scalar.string)'")
            }
            return .none
        }
        let m = try mapping(node, "normalization", allowed: Self.normalizationKeys)
        guard let meanNode = m["mean"] else { throw missing("mean", in: node, "normalization") }
        guard let stdNode = m["std"] else { throw missing("std", in: node, "normalization") }
        let mean = try sequence(meanNode.value, "normalization.mean").map {
            Float(try double($0, "normalization.mean", in: SuiteLimits.normalizationMean))
        }
        let std = try sequence(stdNode.value, "normalization.std").map {
            Float(try double($0, "normalization.std", in: SuiteLimits.normalizationStd))
        }
        guard !mean.isEmpty, mean.count == std.count else {
            throw SuiteError(file: file, line: line(node),
                             "normalization: mean and std must be non-empty lists of the same length (one value per channel), got \(mean.count) and \(std.count)")
        }
        if let bad = std.firstIndex(where: { !($0 > 0) }) {
            throw SuiteError(file: file, line: line(stdNode.value), "normalization.std: every value must be positive, got \(std[bad])")
        }
        return .meanStd(mean: mean, std: std)
    }

    func parseSetting(_ node: Node) throws -> SettingSpec {
        let m = try mapping(node, "a setting", allowed: Self.settingKeys)
        guard let w = m["ways"] else { throw missing("ways", in: node, "setting") }
        guard let s = m["shots"] else { throw missing("shots", in: node, "setting") }
        let ways = try int(w.value, "ways", in: SuiteLimits.ways)
        let shots = try int(s.value, "shots", in: SuiteLimits.shots)
        let queries = try m["queries"].map { try int($0.value, "queries", in: SuiteLimits.queries) } ?? 15
        return SettingSpec(ways: ways, shots: shots, queries: queries,
                           trainWays: try m["train_ways"].map { try int($0.value, "train_ways", in: SuiteLimits.ways) },
                           trainShots: try m["train_shots"].map { try int($0.value, "train_shots", in: SuiteLimits.shots) },
                           trainQueries: try m["train_queries"].map { try int($0.value, "train_queries", in: SuiteLimits.queries) })
    }

    func parseLearner(_ node: Node) throws -> LearnerEntry {
        let m = try mapping(node, "a learner", allowed: Self.learnerKeys)
        guard let n = m["name"] else { throw missing("name", in: node, "learner") }
        let name = try string(n.value, "learner name")
        let label = try m["label"].map { try string($0.value, "label") }
        var hyperparameters: [String: HyperValue] = [:]
        if let h = m["hyperparameters"] {
            if h.value.null == nil || h.value.mapping != nil {
                for (keyNode, valueNode) in try mappingPairs(h.value, "hyperparameters") {
                    let key = try string(keyNode, "hyperparameters")
                    hyperparameters[key] = try hyperValue(valueNode, "hyperparameters.\(key)")
                }
            }
        }
        var training = TrainingOverride()
        if let t = m["training"] {
            let tm = try mapping(t.value, "learner training", allowed: Self.learnerTrainingKeys)
            func value(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
                try tm[key].map { try int($0.value, "training.\(key)", in: range) }
            }
            training = TrainingOverride(
                iterations: try value("iterations", in: SuiteLimits.iterations),
                metaBatch: try value("meta_batch", in: SuiteLimits.metaBatch),
                validateEvery: try value("validate_every", in: SuiteLimits.iterations),
                validationEpisodes: try value("validation_episodes", in: SuiteLimits.episodes),
                trainWays: try value("train_ways", in: SuiteLimits.ways),
                trainShots: try value("train_shots", in: SuiteLimits.shots),
                trainQueries: try value("train_queries", in: SuiteLimits.queries))
        }
        var settingNames: [String]?
        if let list = m["settings"] {
            let items = try sequence(list.value, "learner settings")
            if items.isEmpty {
                throw SuiteError(file: file, line: line(list.value), "settings of learner \(label ?? name): expected at least one setting name (leave the key out to run every setting)")
            }
            settingNames = try items.map { try string($0, "learner settings") }
        }
        return LearnerEntry(name: name, label: label, hyperparameters: hyperparameters, training: training,
                            settings: settingNames, line: line(node))
    }

    func parseTraining(_ node: Node) throws -> TrainingBudget {
        let m = try mapping(node, "training", allowed: Self.trainingKeys)
        guard let it = m["iterations"] else { throw missing("iterations", in: node, "training") }
        var budget = TrainingBudget(iterations: try int(it.value, "training.iterations", in: SuiteLimits.iterations))
        if let v = m["meta_batch"] { budget.metaBatch = try int(v.value, "training.meta_batch", in: SuiteLimits.metaBatch) }
        if let v = m["validate_every"] { budget.validateEvery = try int(v.value, "training.validate_every", in: SuiteLimits.iterations) }
        if let v = m["validation_episodes"] {
            budget.validationEpisodes = try int(v.value, "training.validation_episodes", in: SuiteLimits.episodes)
        }
        return budget
    }

    func parseEvaluation(_ node: Node) throws -> EvaluationSpec {
        let m = try mapping(node, "evaluation", allowed: Self.evaluationKeys)
        var spec = EvaluationSpec()
        if let v = m["episodes"] { spec.episodes = try int(v.value, "evaluation.episodes", in: SuiteLimits.episodes) }
        if let v = m["seed"] { spec.seed = UInt64(try int(v.value, "evaluation.seed", in: SuiteLimits.seed)) }
        if let v = m["dataset"] {
            // Cross-domain: evaluated on this dataset's test split (`splits: {test: name}` names another);
            // its other splits are not used.
            spec.dataset = try parseDataset(v.value, "evaluation.dataset")
        }
        if let v = m["episodes_file"] {
            // One path, or a list of paths: each file is a setting of its own.
            let nodes = v.value.sequence != nil ? try sequence(v.value, "evaluation.episodes_file") : [v.value]
            if nodes.isEmpty {
                throw SuiteError(file: file, line: line(v.value), "evaluation.episodes_file: expected a path or a list of paths")
            }
            spec.episodeFiles = try nodes.map { node in
                try EpisodeFileSpec.load(path: try string(node, "evaluation.episodes_file"), line: line(node), suiteFile: file)
            }
        }
        return spec
    }

    // MARK: - Typed access with line numbers

    func line(_ node: Node) -> Int? { node.mark?.line }

    /// Whether the node's resolved tag is `name` (`Tag.name` is not public).
    func has(_ node: Node, _ name: Tag.Name) -> Bool { node.tag == Tag(name) }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
             .composer(let context, let problem, _, _):
            return (context.map { "\($0.text) " } ?? "") + problem
        default: return "\(error)"
        }
    }

    static func isShortSettingName(_ s: String) -> Bool {
        let parts = s.split(separator: "w", omittingEmptySubsequences: false)
        guard parts.count == 2, Int(parts[0]) != nil, parts[1].hasSuffix("s") else { return false }
        return Int(parts[1].dropLast()) != nil
    }

    func missing(_ key: String, in node: Node, _ what: String) -> SuiteError {
        SuiteError(file: file, line: line(node), "\(what): missing required key '\(key)'")
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.string.isEmpty ? "an empty value" : "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// The key–value pairs of a mapping node with string keys, checking for duplicates.
    func mappingPairs(_ node: Node, _ what: String) throws -> [(Node, Node)] {
        guard let m = node.mapping else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a mapping, got \(describe(node))")
        }
        var seen: Set<String> = []
        var pairs: [(Node, Node)] = []
        for (k, v) in m {
            guard let key = k.scalar?.string else {
                throw SuiteError(file: file, line: line(k), "\(what): keys must be plain strings")
            }
            guard seen.insert(key).inserted else {
                throw SuiteError(file: file, line: line(k), "\(what): key '\(key)' appears twice")
            }
            pairs.append((k, v))
        }
        return pairs
    }

    /// A mapping's values by key; a key outside `allowed` is an error listing the allowed ones.
    func mapping(_ node: Node, _ what: String, allowed: [String]) throws -> [String: (key: Node, value: Node)] {
        guard node.mapping != nil else {
            throw SuiteError(file: file, line: line(node),
                             "\(what): expected a mapping with keys \(allowed.joined(separator: ", ")), got \(describe(node))")
        }
        var result: [String: (key: Node, value: Node)] = [:]
        for (k, v) in try mappingPairs(node, what) {
            let key = k.scalar?.string ?? ""
            guard allowed.contains(key) else {
                throw SuiteError(file: file, line: line(k),
                                 "\(what): unknown key '\(key)' (allowed: \(allowed.joined(separator: ", ")))")
            }
            result[key] = (k, v)
        }
        return result
    }

    func sequence(_ node: Node, _ what: String) throws -> [Node] {
        guard let s = node.sequence else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a list, got \(describe(node))")
        }
        return Array(s)
    }

    func isQuoted(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .singleQuoted || scalar.style == .doubleQuoted || scalar.style == .literal || scalar.style == .folded
    }

    func string(_ node: Node, _ what: String) throws -> String {
        guard let s = node.scalar, node.null == nil || isQuoted(s) else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a string, got \(describe(node))")
        }
        return s.string
    }

    /// An integer in `range`; the error names the bound it crosses (an integer too large for `Int` too).
    func int(_ node: Node, _ what: String, in range: ClosedRange<Int>) throws -> Int {
        guard let s = node.scalar, !isQuoted(s), has(node, .int) else {
            throw SuiteError(file: file, line: line(node), "\(what): expected an integer, got \(describe(node))")
        }
        guard let value = node.int else {
            // An integer literal beyond Int's range.
            let negative = s.string.hasPrefix("-")
            throw SuiteError(file: file, line: line(node),
                             "\(what): expected an integer of at \(negative ? "least \(range.lowerBound)" : "most \(range.upperBound)"), got \(describe(node))")
        }
        guard value >= range.lowerBound else {
            throw SuiteError(file: file, line: line(node), "\(what): expected an integer of at least \(range.lowerBound), got \(value)")
        }
        guard value <= range.upperBound else {
            throw SuiteError(file: file, line: line(node), "\(what): expected an integer of at most \(range.upperBound), got \(value)")
        }
        return value
    }

    /// A finite number in `range`.
    func double(_ node: Node, _ what: String, in range: ClosedRange<Double>) throws -> Double {
        guard let s = node.scalar, !isQuoted(s) else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a number, got \(describe(node))")
        }
        let number: Double
        if has(node, .int), let v = node.int {
            number = Double(v)
        } else if has(node, .float), let v = node.float, v.isFinite {
            number = v
        } else if let v = Double(s.string), v.isFinite {
            number = v
        } else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a finite number, got \(describe(node))")
        }
        guard range.contains(number) else {
            throw SuiteError(file: file, line: line(node),
                             "\(what): expected a number from \(Self.number(range.lowerBound)) to \(Self.number(range.upperBound)), got \(describe(node))")
        }
        return number
    }

    static func number(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    /// `text` with control characters shown as `\u{…}` escapes, for error messages.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Shots + queries (the images drawn per class) of every setting and every learner's training shape.
    func checkImagesPerClass(settings: [SettingSpec], settingNodes: [Node], learners: [LearnerEntry]) throws {
        let limit = SuiteLimits.imagesPerClass
        for (setting, node) in zip(settings, settingNodes) {
            if setting.shots + setting.queries > limit {
                throw SuiteError(file: file, line: line(node),
                                 "setting \(setting.shortName): shots + queries (the images drawn per class) must be at most \(limit), got \(setting.shots + setting.queries)")
            }
            if setting.trainShots + setting.trainQueries > limit {
                throw SuiteError(file: file, line: line(node),
                                 "setting \(setting.shortName): train_shots + train_queries (the images drawn per class) must be at most \(limit), got \(setting.trainShots + setting.trainQueries)")
            }
            for entry in learners where entry.runs(in: setting) {
                let own = entry.training.applied(to: setting)
                if own.trainShots + own.trainQueries > limit {
                    throw SuiteError(file: file, line: entry.line,
                                     "learner \(entry.label), setting \(setting.shortName): train_shots + train_queries (the images drawn per class) must be at most \(limit), got \(own.trainShots + own.trainQueries)")
                }
            }
        }
    }

    func bool(_ node: Node, _ what: String) throws -> Bool {
        guard let s = node.scalar, !isQuoted(s), has(node, .bool), let value = node.bool else {
            throw SuiteError(file: file, line: line(node), "\(what): expected true or false, got \(describe(node))")
        }
        return value
    }

    /// A hyperparameter scalar: an int, a float, a bool or a string (quoted scalars are always strings).
    func hyperValue(_ node: Node, _ what: String) throws -> HyperValue {
        guard let s = node.scalar else {
            throw SuiteError(file: file, line: line(node), "\(what): expected a number, true/false or a string, got \(describe(node))")
        }
        if isQuoted(s) { return .string(s.string) }
        if has(node, .int), let v = node.int { return .int(v) }
        if has(node, .float), let v = node.float { return .double(v) }
        if has(node, .bool), let v = node.bool { return .bool(v) }
        if has(node, .null) { throw SuiteError(file: file, line: line(node), "\(what): expected a value, got nothing") }
        // YAML 1.1 reads `1e3` (no sign in the exponent) as a string; take it as the number it looks like.
        if let v = Double(s.string), v.isFinite, s.string.contains(where: { $0 == "e" || $0 == "E" || $0 == "." }) {
            return .double(v)
        }
        return .string(s.string)
    }
}
