import Foundation
import Learners

/// The bounds of every number in a suite file and of the `bench run` flags, checked when the suite is
/// loaded. They lie far above what a real benchmark uses, and low enough that the products the runner
/// forms from them (images per episode, episodes per run, cells) cannot overflow `Int`; the sizes that also
/// depend on the images are checked against the memory budget once the dataset is loaded
/// (`Suite.validate(imageShape:trainClassCount:registry:)`).
public enum SuiteLimits {
    /// Classes per episode (`ways`, `train_ways`).
    public static let ways = 2...10_000
    /// Support images per class (`shots`, `train_shots`).
    public static let shots = 1...100_000
    /// Query images per class (`queries`, `train_queries`).
    public static let queries = 1...100_000
    /// Images drawn per class: shots + queries (and train_shots + train_queries).
    public static let imagesPerClass = 100_000
    /// Meta-training iterations, and `validate_every`.
    public static let iterations = 0...1_000_000_000
    /// Episodes per meta-training iteration.
    public static let metaBatch = 1...10_000
    /// Evaluation episodes (`evaluation.episodes`, `--episodes`) and `validation_episodes`.
    public static let episodes = 1...10_000_000
    /// `dataset.image_size`: the side images are resized to.
    public static let imageSize = 1...1024
    /// `--threads`.
    public static let threads = 1...256
    /// Seeds (`seeds`, `evaluation.seed`): any integer a suite file can hold that is not negative.
    public static let seed = 0...Int.max
    /// Normalisation means and standard deviations (standard deviations must be positive).
    public static let normalizationMean = -1e6...1e6
    public static let normalizationStd = 1e-6...1e6
    /// Published accuracies, in percent.
    public static let publishedAccuracy = 0.0...100.0
    /// Nesting levels of the YAML text (Yams composes recursively; a suite needs about five).
    public static let nestingDepth = 64
    /// UTF-8 bytes of a learner label (it names the learner's cell files).
    public static let labelBytes = 64
    /// UTF-8 bytes of a suite name (it names the default output folder, results/<name>).
    public static let nameBytes = 128

    /// Why `text` cannot name a learner or a suite (it names files and folders, and `--only` takes a
    /// comma-separated list of labels), or nil when it can.
    public static func nameProblem(_ text: String, maxBytes: Int, commas: Bool) -> String? {
        if text.isEmpty { return "is empty" }
        if text == "." || text == ".." { return "cannot be '\(text)' (it names a file)" }
        if text.contains("/") { return "cannot contain '/' (it names a file)" }
        if let c = text.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            return "cannot contain control characters (" + String(format: "U+%04X", c.value) + ")"
        }
        if !commas, text.contains(",") { return "cannot contain ',' (--only separates labels with commas)" }
        if text.first?.isWhitespace == true || text.last?.isWhitespace == true {
            return "cannot start or end with a space"
        }
        if text.utf8.count > maxBytes { return "is longer than \(maxBytes) bytes (UTF-8)" }
        return nil
    }
}
