import Foundation
import Learners

/// `bench list learners`: every registered learner with its summary, paper and hyperparameters (type,
/// default, allowed values, meaning).
public enum LearnerListing {
    public static func text(_ registry: LearnerRegistry) -> String {
        guard !registry.descriptors.isEmpty else { return "no learners are registered\n" }
        var text = ""
        for (index, d) in registry.descriptors.enumerated() {
            if index > 0 { text += "\n" }
            text += "\(d.name) — \(d.summary)\n"
            if !d.paper.isEmpty { text += "  paper: \(d.paper)\n" }
            if d.hyperparameters.isEmpty {
                text += "  no hyperparameters\n"
                continue
            }
            let nameWidth = d.hyperparameters.map(\.name.count).max() ?? 0
            let kindWidth = d.hyperparameters.map(\.kind.rawValue.count).max() ?? 0
            let defaults = d.hyperparameters.map { "= \($0.defaultValue)" }
            let defaultWidth = defaults.map(\.count).max() ?? 0
            let allowed = d.hyperparameters.map(\.allowed.description)
            let allowedWidth = allowed.map(\.count).max() ?? 0
            for (spec, (value, range)) in zip(d.hyperparameters, zip(defaults, allowed)) {
                text += "  " + spec.name.rightPadded(to: nameWidth) + "  " + spec.kind.rawValue.rightPadded(to: kindWidth)
                    + "  " + value.rightPadded(to: defaultWidth) + "  " + range.rightPadded(to: allowedWidth)
                    + "  " + spec.help + "\n"
            }
        }
        return text
    }
}

/// `bench list suites`: the suites under `suites/` with their descriptions.
public enum SuiteListing {
    public static func text(directory: String = FileManager.default.currentDirectoryPath) throws -> String {
        let folder = (directory as NSString).appendingPathComponent("suites")
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            return "no suites/ folder in \(directory)\n"
        }
        var text = ""
        for file in files.sorted() where file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
            let path = (folder as NSString).appendingPathComponent(file)
            let name = (file as NSString).deletingPathExtension
            do {
                let suite = try Suite.load(path)
                text += name.rightPadded(to: 16) + "  " + (suite.summary ?? "") + "\n"
            } catch {
                text += name.rightPadded(to: 16) + "  (invalid: \(error))\n"
            }
        }
        return text.isEmpty ? "no suite files in \(folder)\n" : text
    }
}
