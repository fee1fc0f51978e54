import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// Every number, label, split and hyperparameter of a suite is checked when the suite is loaded, with an
/// error naming the key and the bound; sizes that depend on the images are checked against the memory
/// budget before training; a deeply nested file is rejected before Yams composes it.
final class SuiteBoundsTests: XCTestCase {
    /// A valid suite of built-in learners, each mutation below breaking one value.
    static let base = """
    name: bounds
    dataset:
      path: embedded
      image_size: 28
      splits: {train: train, val: val, test: test}
    normalization: {mean: [0.5], std: [0.25]}
    settings:
      - {ways: 5, shots: 1, queries: 15}
    learners:
      - name: maml
        hyperparameters: {width: 32, inner_lr: 0.4, inner_steps: 1}
      - name: baseline
        hyperparameters: {batch_size: 16}
        training: {iterations: 10, meta_batch: 1}
    training:
      iterations: 40
      meta_batch: 2
      validate_every: 20
      validation_episodes: 20
    evaluation:
      episodes: 100
      seed: 0
    seeds: [0, 1]
    published:
      maml: {5w1s: 98.7}
    """

    func parse(_ yaml: String) throws -> Suite {
        try Suite.parse(yaml: yaml, file: "b.yaml", registry: .builtIn)
    }

    /// `yaml` fails with an error that starts with `prefix` and mentions every fragment.
    func assertRejects(_ yaml: String, _ prefix: String, _ fragments: [String],
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(yaml), yaml, file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(error is SuiteError, "\(type(of: error)): \(message)", file: file, line: line)
            XCTAssertTrue(message.hasPrefix(prefix), "\(message) should start with \(prefix)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "\(message) should mention \(fragment)", file: file, line: line)
            }
        }
    }

    func replacing(_ old: String, _ new: String) -> String {
        precondition(Self.base.contains(old), old)
        return Self.base.replacingOccurrences(of: old, with: new)
    }

    func testBaseSuiteIsValid() throws {
        let suite = try parse(Self.base)
        XCTAssertEqual(suite.learners.map(\.label), ["maml", "baseline"])
        XCTAssertEqual(suite.training.metaBatch, 2)
        XCTAssertNoThrow(try suite.validate(imageShape: ImageShape(channels: 1, height: 28, width: 28),
                                            trainClassCount: 200, memoryBudget: 1 << 30))
    }

    // MARK: - Suite numbers

    func testEverySuiteNumberHasBounds() {
        let huge = "99999999999999999999"  // beyond Int
        let cases: [(String, String, [String])] = [
            (replacing("ways: 5", "ways: 10001"), "b.yaml:8:", ["ways", "at most 10000", "10001"]),
            (replacing("ways: 5", "ways: \(huge)"), "b.yaml:8:", ["ways", "at most 10000", huge]),
            (replacing("ways: 5", "ways: -\(huge)"), "b.yaml:8:", ["ways", "at least 2"]),
            (replacing("shots: 1", "shots: 9223372036854775807"), "b.yaml:8:", ["shots", "at most 100000"]),
            (replacing("queries: 15", "queries: 9223372036854775807"), "b.yaml:8:", ["queries", "at most 100000"]),
            (replacing("queries: 15", "queries: 0"), "b.yaml:8:", ["queries", "at least 1"]),
            (replacing("shots: 1, queries: 15", "shots: 50000, queries: 50001"), "b.yaml:8:",
             ["5w50000s", "shots + queries", "at most 100000", "100001"]),
            (replacing("queries: 15}", "queries: 15, train_ways: 10001}"), "b.yaml:8:", ["train_ways", "at most 10000"]),
            (replacing("queries: 15}", "queries: 15, train_shots: 99999, train_queries: 2}"), "b.yaml:8:",
             ["train_shots + train_queries", "100001"]),
            (replacing("meta_batch: 1}", "meta_batch: 1, train_shots: 99990}"), "b.yaml:12:",
             ["learner baseline", "train_shots + train_queries", "100005"]),
            (replacing("iterations: 40", "iterations: 1000000001"), "b.yaml:16:", ["training.iterations", "at most 1000000000"]),
            (replacing("iterations: 40", "iterations: -1"), "b.yaml:16:", ["training.iterations", "at least 0"]),
            (replacing("meta_batch: 2", "meta_batch: 10001"), "b.yaml:17:", ["training.meta_batch", "at most 10000"]),
            (replacing("meta_batch: 1}", "meta_batch: 4611686018427387904}"), "b.yaml:14:", ["training.meta_batch", "at most 10000"]),
            (replacing("iterations: 10,", "iterations: 1000000001,"), "b.yaml:14:", ["training.iterations", "at most"]),
            (replacing("validate_every: 20", "validate_every: 1000000001"), "b.yaml:18:", ["training.validate_every", "at most"]),
            (replacing("validation_episodes: 20", "validation_episodes: 10000001"), "b.yaml:19:",
             ["training.validation_episodes", "at most 10000000"]),
            (replacing("episodes: 100", "episodes: 10000001"), "b.yaml:21:", ["evaluation.episodes", "at most 10000000"]),
            (replacing("episodes: 100", "episodes: 0"), "b.yaml:21:", ["evaluation.episodes", "at least 1"]),
            (replacing("seed: 0", "seed: \(huge)"), "b.yaml:22:", ["evaluation.seed", "at most 9223372036854775807"]),
            (replacing("seeds: [0, 1]", "seeds: [0, \(huge)]"), "b.yaml:23:", ["seeds", "at most"]),
            (replacing("image_size: 28", "image_size: 1025"), "b.yaml:4:", ["dataset.image_size", "at most 1024"]),
            (replacing("image_size: 28", "image_size: 0"), "b.yaml:4:", ["dataset.image_size", "at least 1"]),
            (replacing("std: [0.25]", "std: [1e-9]"), "b.yaml:6:", ["normalization.std", "from 1e-06 to 1000000"]),
            (replacing("std: [0.25]", "std: [1.0e+40]"), "b.yaml:6:", ["normalization.std", "from"]),
            (replacing("mean: [0.5]", "mean: [.inf]"), "b.yaml:6:", ["normalization.mean", "finite"]),
            (replacing("mean: [0.5]", "mean: [-2e7]"), "b.yaml:6:", ["normalization.mean", "from -1000000 to 1000000"]),
            (replacing("{5w1s: 98.7}", "{5w1s: 101}"), "b.yaml:25:", ["published.maml.5w1s", "from 0 to 100"]),
            (replacing("{5w1s: 98.7}", "{5w1s: .nan}"), "b.yaml:25:", ["published.maml.5w1s", "finite"]),
        ]
        for (yaml, prefix, fragments) in cases { assertRejects(yaml, prefix, fragments) }
    }

    /// The bounds keep the products the runner forms from suite numbers inside `Int`.
    func testBoundsKeepProductsInsideInt() {
        let imagesPerEpisode = SuiteLimits.ways.upperBound.multipliedReportingOverflow(by: SuiteLimits.imagesPerClass)
        XCTAssertFalse(imagesPerEpisode.overflow)
        let metaBatchImages = imagesPerEpisode.partialValue.multipliedReportingOverflow(by: SuiteLimits.metaBatch.upperBound)
        XCTAssertFalse(metaBatchImages.overflow)
        let queries = SuiteLimits.episodes.upperBound.multipliedReportingOverflow(by: imagesPerEpisode.partialValue)
        XCTAssertFalse(queries.overflow)
        XCTAssertLessThanOrEqual(SuiteLimits.shots.upperBound, SuiteLimits.imagesPerClass)
    }

    // MARK: - Hyperparameters

    func testHyperparametersOutsideTheirRangeAreRejected() {
        let maml: [(String, String, [String])] = [
            ("width: 32", "width: 5000", ["learner 'maml'", "'width' must be in [1, 4096], got 5000"]),
            ("inner_lr: 0.4", "inner_lr: 0", ["'inner_lr' must be in (0, 1000], got 0.0"]),
            ("inner_lr: 0.4", "inner_lr: -0.5", ["'inner_lr' must be in (0, 1000], got -0.5"]),
            ("inner_lr: 0.4", "inner_lr: .nan", ["'inner_lr' must be in (0, 1000], got nan"]),
            ("inner_lr: 0.4", "inner_lr: .inf", ["'inner_lr' must be in (0, 1000], got inf"]),
            ("inner_lr: 0.4", "inner_lr: 1e+300", ["'inner_lr' must be in (0, 1000], got 1e+300"]),
            ("inner_steps: 1", "inner_steps: 10001", ["'inner_steps' must be in [1, 10000], got 10001"]),
            ("inner_steps: 1", "inner_steps: 0", ["'inner_steps' must be in [1, 10000], got 0"]),
        ]
        for (old, new, fragments) in maml {
            assertRejects(replacing(old, new), "b.yaml:10:", fragments)
        }
        let baseline: [(String, [String])] = [
            ("batch_size: 0", ["learner 'baseline'", "'batch_size' must be in [1, 100000], got 0"]),
            ("batch_size: 9223372036854775807", ["'batch_size' must be in [1, 100000]"]),
            ("batch_size: 99999999999999999999", ["'batch_size' must be an int in [1, 100000], got '99999999999999999999'"]),
            ("batch_size: 16, finetune_steps: 1000000", ["'finetune_steps' must be in [0, 10000]"]),
            ("batch_size: 16, lr_decay: 1.5", ["'lr_decay' must be in (0, 1], got 1.5"]),
            ("batch_size: 16, lr_decay_every: -1", ["'lr_decay_every' must be in [0, 1000000000], got -1"]),
            ("batch_size: 16, downsampling: avgpool", ["'downsampling' must be one of maxpool, strided, got 'avgpool'"]),
        ]
        for (new, fragments) in baseline {
            assertRejects(replacing("batch_size: 16", new), "b.yaml:12:", fragments)
        }
        assertRejects(replacing("name: baseline", "name: reptile").replacingOccurrences(of: "batch_size: 16", with: "inner_optimizer: rmsprop"),
                      "b.yaml:12:", ["'inner_optimizer' must be one of adam, sgd"])
        assertRejects(replacing("name: baseline", "name: matchingnet").replacingOccurrences(of: "batch_size: 16", with: "fce_steps: 1001"),
                      "b.yaml:12:", ["'fce_steps' must be in [1, 1000]"])
        assertRejects(replacing("name: baseline", "name: baseline++").replacingOccurrences(of: "batch_size: 16", with: "scale: -1"),
                      "b.yaml:12:", ["'scale' must be in [0, 1000]"])
    }

    /// Every built-in hyperparameter has bounds (a range for numbers, choices for strings), its default
    /// satisfies them, and `bench list learners` shows them.
    func testEveryBuiltInHyperparameterIsBounded() throws {
        for descriptor in LearnerRegistry.builtIn.descriptors {
            for spec in descriptor.hyperparameters {
                switch (spec.kind, spec.allowed) {
                case (.int, .range), (.double, .range), (.string, .oneOf), (.bool, .any): break
                default: XCTFail("\(descriptor.name).\(spec.name) (\(spec.kind)) has no bounds: \(spec.allowed)")
                }
                XCTAssertNil(spec.problem(with: spec.defaultValue), "\(descriptor.name).\(spec.name) default")
                if case .range(let range) = spec.allowed {
                    XCTAssertTrue(range.lower.isFinite && range.upper.isFinite)
                }
            }
            // The defaults build a learner description without error.
            XCTAssertNoThrow(try HyperParameters(learner: descriptor.name, specs: descriptor.hyperparameters, given: [:]))
        }
        let listing = LearnerListing.text(.builtIn)
        XCTAssertTrue(listing.contains("[1, 4096]"), listing)
        XCTAssertTrue(listing.contains("maxpool|strided"), listing)
        XCTAssertTrue(listing.contains("(0, 1000]"), listing)
    }

    func testRangeNotation() {
        XCTAssertEqual(HyperRange.integers(1...4096).description, "[1, 4096]")
        XCTAssertEqual(HyperRange.positive(upTo: 1).description, "(0, 1]")
        XCTAssertEqual(HyperRange(lower: 0, upper: 1, upperClosed: false).description, "[0, 1)")
        XCTAssertFalse(HyperRange(lower: 0, upper: 1, upperClosed: false).contains(1.0))
        XCTAssertTrue(HyperRange(lower: 0, upper: 1, upperClosed: false).contains(0.999))
        XCTAssertFalse(HyperRange.positive(upTo: 1).contains(0.0))
        XCTAssertFalse(HyperRange.closed(-1e300, 1e300).contains(Double.nan))
        XCTAssertFalse(HyperRange.closed(-1e300, 1e300).contains(Double.infinity))
        XCTAssertFalse(HyperRange.integers(1...10).contains(Int.max))
    }

    // MARK: - Splits, labels and names

    func testSplitsMustDiffer() {
        assertRejects(replacing("{train: train, val: val, test: test}", "{train: train, val: val, test: train}"), "b.yaml:5:",
                      ["dataset.splits.train and dataset.splits.test both name split 'train'"])
        assertRejects(replacing("{train: train, val: val, test: test}", "{train: background, val: background}"), "b.yaml:5:",
                      ["dataset.splits.train and dataset.splits.val both name split 'background'", "val: none"])
        assertRejects(replacing("{train: train, val: val, test: test}", "{test: val}"), "b.yaml:5:",
                      ["dataset.splits.val (by default) and dataset.splits.test both name split 'val'"])
        assertRejects(replacing("{train: train, val: val, test: test}", "{train: ''}"), "b.yaml:5:",
                      ["dataset.splits.train", "empty"])
        XCTAssertNoThrow(try parse(replacing("{train: train, val: val, test: test}", "{train: train, val: none, test: val}")))
        XCTAssertNoThrow(try parse(replacing("{train: train, val: val, test: test}", "{train: background, test: evaluation}")))
    }

    func testLabelsThatCannotNameAFile() {
        let cases: [(String, [String])] = [
            ("label: a/b", ["learner label 'a/b' cannot contain '/'"]),
            ("label: ''", ["learner label '' is empty"]),
            ("label: '.'", ["learner label '.' cannot be '.'"]),
            ("label: '..'", ["cannot be '..'"]),
            ("label: \"a\\0b\"", ["learner label 'a\\u{0}b' cannot contain control characters (U+0000)"]),
            ("label: \"a\\tb\"", ["control characters (U+0009)"]),
            ("label: \"a\\x7Fb\"", ["control characters (U+007F)"]),
            ("label: 'maml,fast'", ["cannot contain ','", "--only"]),
            ("label: ' maml'", ["cannot start or end with a space"]),
            ("label: \(String(repeating: "m", count: 65))", ["is longer than 64 bytes"]),
        ]
        for (label, fragments) in cases {
            assertRejects(replacing("  - name: baseline\n", "  - name: baseline\n    \(label)\n"), "b.yaml:12:", fragments)
        }
        XCTAssertNoThrow(try parse(replacing("  - name: baseline\n", "  - name: baseline\n    label: baseline (16)\n")))
    }

    func testSuiteNamesThatCannotNameAFolder() {
        assertRejects(replacing("name: bounds", "name: ../elsewhere"), "b.yaml:1:", ["suite name '../elsewhere' cannot contain '/'"])
        assertRejects(replacing("name: bounds", "name: '..'"), "b.yaml:1:", ["cannot be '..'"])
        XCTAssertThrowsError(try Suite.parse(yaml: replacing("name: bounds\n", ""), file: "x/\u{1}.yaml", registry: .builtIn)) { error in
            XCTAssertTrue("\(error)".contains("control characters"), "\(error)")
            XCTAssertTrue("\(error)".contains("it comes from the file name"), "\(error)")
        }
    }

    // MARK: - Nesting

    func testDeepNestingIsRejectedBeforeComposing() {
        let depth = 100_000
        let flow = "name: deep\nsettings: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
        assertRejects(flow, "b.yaml:2:", ["nesting deeper than 64 levels at line 2"])
        let mappings = "name: deep\nsettings: " + String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth)
        assertRejects(mappings, "b.yaml:2:", ["nesting deeper than 64 levels"])
        let block = "name: deep\nsettings:\n" + (1..<300).map { String(repeating: " ", count: $0) + "- " }.joined(separator: "\n")
        assertRejects(block, "b.yaml:66:", ["nesting deeper than 64 levels at line 66"])
        let dashes = "name: deep\nsettings:\n" + String(repeating: "- ", count: 50_000) + "x\n"
        assertRejects(dashes, "b.yaml:3:", ["nesting deeper than 64 levels"])
        let keys = "name: deep\n" + (0..<300).map { String(repeating: "  ", count: $0) + "k\($0):" }.joined(separator: "\n")
        assertRejects(keys, "b.yaml:", ["nesting deeper than 64 levels"])
        // Each anchor nests the previous one 40 levels deeper: the aliases make the tree deep, not the text.
        var chain = ["name: chain", "a0: &a0 " + String(repeating: "[", count: 40) + "1" + String(repeating: "]", count: 40)]
        for k in 1..<2000 {
            chain.append("a\(k): &a\(k) " + String(repeating: "[", count: 40) + "*a\(k - 1)" + String(repeating: "]", count: 40))
        }
        assertRejects(chain.joined(separator: "\n"), "b.yaml:3:", ["nesting deeper than 64 levels at line 3"])
    }

    /// What is not structure (quoted scalars, comments, block scalars, brackets inside plain scalars,
    /// repeated aliases of a shallow node) does not count.
    func testNestingScanCountsStructureOnly() throws {
        let brackets = String(repeating: "[{", count: 100)
        let yaml = Self.base
            .replacingOccurrences(of: "name: bounds", with: """
                name: bounds
                description: "\(brackets) \\" \(brackets)"   # \(brackets)
                # \(brackets)
                """)
            .replacingOccurrences(of: "seeds: [0, 1]", with: """
                seeds: [0, 1]   # '\(brackets)
                """)
        let suite = try parse(yaml)
        XCTAssertEqual(suite.summary, "\(brackets) \" \(brackets)")
        XCTAssertNoThrow(try parse(replacing("name: bounds", "name: bounds\ndescription: it's [not a list {\n  continued [ here")))
        XCTAssertNoThrow(try parse(replacing("name: bounds", "name: bounds\ndescription: |\n  \(brackets)\n    \(brackets)\n")))
        XCTAssertNoThrow(try parse(replacing("name: bounds", "name: bounds\ndescription: >-\n  - - - - - -\n")))
        let anchors = replacing("{width: 32, inner_lr: 0.4, inner_steps: 1}", "&shared {width: 32}")
            .replacingOccurrences(of: "{batch_size: 16}", with: "*shared")
        XCTAssertEqual(try parse(anchors).learners[1].hyperparameters, ["width": .int(32)])
        let manyAliases = "x: &x [1]\ny: [" + Array(repeating: "*x", count: 500).joined(separator: ", ") + "]"
        XCTAssertEqual(YAMLNesting.depth(of: manyAliases), 3)
        XCTAssertEqual(YAMLNesting.depth(of: "a: [[[1]]]\nb:\n  c:\n    - - d\n"), 5)
        XCTAssertEqual(YAMLNesting.depth(of: "'[[[': [ \"]]]\", '[''' ]"), 2)
    }

    /// A YAML tree for the scan: scalars, sequences and mappings, written in block and flow styles.
    indirect enum Tree {
        case scalar(String)
        case sequence([Tree])
        case mapping([(String, Tree)])

        var depth: Int {
            switch self {
            case .scalar: return 1
            case .sequence(let items): return 1 + (items.map(\.depth).max() ?? 0)
            case .mapping(let pairs): return 1 + (pairs.map(\.1.depth).max() ?? 0)
            }
        }

        static func random(depth: Int, using rng: inout SeededGenerator) -> Tree {
            if depth <= 1 { return .scalar(["x", "1", "'a [b'", "\"c: {d\"", "e f"][rng.nextInt(below: 5)]) }
            let count = 1 + rng.nextInt(below: 3)
            // The first child carries the full depth, so the tree is exactly `depth` deep.
            let children = (0..<count).map { i in random(depth: i == 0 ? depth - 1 : 1 + rng.nextInt(below: depth - 1), using: &rng) }
            if rng.nextInt(below: 2) == 0 { return .sequence(children) }
            return .mapping(children.enumerated().map { ("k\($0.offset)", $0.element) })
        }

        /// Flow style: `[x, {k0: 1}]`.
        var flow: String {
            switch self {
            case .scalar(let s): return s
            case .sequence(let items): return "[" + items.map(\.flow).joined(separator: ", ") + "]"
            case .mapping(let pairs): return "{" + pairs.map { "\($0.0): \($0.1.flow)" }.joined(separator: ", ") + "}"
            }
        }

        /// Block style at `indent`, a collection in flow style now and then; a sequence under a key at the
        /// key's indentation or deeper, entries of a sequence compact (`- - x`, `- k: v`).
        func block(indent: Int, using rng: inout SeededGenerator) -> [String] {
            let pad = String(repeating: " ", count: indent)
            switch self {
            case .scalar(let s): return [pad + s]
            case .sequence(let items):
                return items.flatMap { item -> [String] in
                    if case .scalar(let s) = item { return [pad + "- " + s] }
                    if rng.nextInt(below: 4) == 0 { return [pad + "- " + item.flow] }
                    var lines = item.block(indent: indent + 2, using: &rng)
                    lines[0] = pad + "- " + lines[0].dropFirst(indent + 2)
                    return lines
                }
            case .mapping(let pairs):
                return pairs.flatMap { key, value -> [String] in
                    if case .scalar(let s) = value { return [pad + "\(key): " + s] }
                    if rng.nextInt(below: 4) == 0 { return [pad + "\(key): " + value.flow] }
                    if case .sequence = value, rng.nextInt(below: 2) == 0 {
                        return [pad + "\(key):"] + value.block(indent: indent, using: &rng)
                    }
                    return [pad + "\(key):"] + value.block(indent: indent + 2, using: &rng)
                }
            }
        }
    }

    /// On random trees written in block and flow styles, the scan never counts fewer levels than the
    /// tree's collections nest, and never many more.
    func testNestingScanNeverFallsShort() {
        var rng = SeededGenerator(seed: 42)
        for trial in 0..<300 {
            let depth = 1 + rng.nextInt(below: 12)
            let tree = Tree.random(depth: depth, using: &rng)
            XCTAssertEqual(tree.depth, depth)
            for text in [tree.block(indent: 0, using: &rng).joined(separator: "\n"), tree.flow, "top: " + tree.flow] {
                // Collections nest depth − 1 levels (the scalars at the bottom may or may not count).
                let measured = YAMLNesting.depth(of: text)
                let collections = (text.hasPrefix("top: ") ? depth : depth - 1)
                XCTAssertGreaterThanOrEqual(measured, collections, "trial \(trial):\n\(text)")
                XCTAssertLessThanOrEqual(measured, 2 * collections + 1, "trial \(trial):\n\(text)")
            }
        }
    }

    /// The shipped suites nest a few levels, far from the limit.
    func testShippedSuitesNestShallowly() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let folder = root.appendingPathComponent("suites")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            XCTAssertLessThanOrEqual(YAMLNesting.depth(of: text), 6, file)
        }
    }

    // MARK: - Memory, once the image shape is known

    func testSizesBeyondTheMemoryBudgetNameTheirKeys() throws {
        let gib = 1 << 30
        let miniImageNet = ImageShape(channels: 3, height: 84, width: 84)
        let wide = try parse(replacing("width: 32", "width: 4096"))
        XCTAssertThrowsError(try wide.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("b.yaml:10: learner maml, setting 5w1s with 3×84×84 images: "), message)
            XCTAssertTrue(message.contains("first-block activations of a training episode needs "
                                           + "train_ways × (train_shots + train_queries) (80) × width (4096) × image height × width (7056)"), message)
            XCTAssertTrue(message.contains("more than the memory budget of 4.0 GiB"), message)
        }
        // The same suite fits 28×28 images.
        XCTAssertNoThrow(try wide.validate(imageShape: ImageShape(channels: 1, height: 28, width: 28), trainClassCount: 64,
                                           memoryBudget: 4 * gib))

        let batch = try parse(replacing("meta_batch: 2", "meta_batch: 10000").replacingOccurrences(of: "queries: 15}", with: "queries: 99}"))
        XCTAssertThrowsError(try batch.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib)) { error in
            XCTAssertTrue("\(error)".contains("the images of a meta-batch needs meta_batch (10000) × train_ways × (train_shots + train_queries) (500)"), "\(error)")
        }
        let pretraining = try parse(replacing("batch_size: 16", "batch_size: 100000"))
        XCTAssertThrowsError(try pretraining.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib)) { error in
            XCTAssertTrue("\(error)".hasPrefix("b.yaml:12: learner baseline"), "\(error)")
            XCTAssertTrue("\(error)".contains("batch_size (100000)"), "\(error)")
        }
        let fce = try parse(replacing("name: baseline", "name: matchingnet")
            .replacingOccurrences(of: "batch_size: 16", with: "fce: true, width: 1024"))
        XCTAssertThrowsError(try fce.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib)) { error in
            XCTAssertTrue("\(error)".contains("the attention LSTM's recurrent weights (fce) needs 8 × features (width × final height × width) (25600)"), "\(error)")
        }
        let steps = try parse(replacing("inner_steps: 1", "inner_steps: 10000"))
        XCTAssertThrowsError(try steps.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib)) { error in
            XCTAssertTrue("\(error)".contains("the second-order graph of the inner steps needs inner_steps (10000)"), "\(error)")
        }
        // First-order MAML keeps no graph across the inner steps.
        let firstOrder = try parse(replacing("inner_steps: 1", "inner_steps: 10000").replacingOccurrences(of: "- name: maml", with: "- name: fomaml")
            .replacingOccurrences(of: "  maml: {", with: "  fomaml: {"))
        XCTAssertNoThrow(try firstOrder.validate(imageShape: miniImageNet, trainClassCount: 64, memoryBudget: 4 * gib))
    }

    /// A suite built in code, past the parser's bounds, still gets an error, not an overflow trap.
    func testOverflowingSizesAreErrors() throws {
        var suite = try parse(Self.base)
        suite.settings = [SettingSpec(ways: Int.max / 2, shots: Int.max / 2, queries: Int.max / 2)]
        XCTAssertThrowsError(try suite.validate(imageShape: ImageShape(channels: 3, height: Int.max, width: 84),
                                                trainClassCount: 64)) { error in
            XCTAssertTrue("\(error)".contains("overflows a 64-bit integer"), "\(error)")
        }
    }

    /// The shipped suites fit their datasets' images in 4 GiB per allocation.
    func testShippedSuitesFitTheirImages() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let shapes: [(String, ImageShape, Int)] = [
            ("smoke", ImageShape(channels: 1, height: 28, width: 28), 200),
            ("omniglot-small", ImageShape(channels: 1, height: 28, width: 28), 732),
            ("omniglot", ImageShape(channels: 1, height: 28, width: 28), 4112),
            ("miniimagenet", ImageShape(channels: 3, height: 84, width: 84), 64),
        ]
        for (name, shape, classes) in shapes {
            let suite = try Suite.load(root + "/suites/\(name).yaml")
            XCTAssertNoThrow(try suite.validate(imageShape: shape, trainClassCount: classes, memoryBudget: 4 << 30), name)
        }
    }
}
