import ArgumentParser
import FewShotData

extension Bench {
    /// `bench datasets`: inspect a dataset on disk, or write the embedded one.
    struct Datasets: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "datasets",
            abstract: "Inspect or synthesize datasets.",
            subcommands: [Inspect.self, Synthesize.self])

        /// `bench datasets inspect PATH`: the detected layout, splits, class counts and image shape.
        struct Inspect: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Report a dataset's layout, splits, class counts and image shape.")

            @Argument(help: "A torchmeta dataset folder (Omniglot, miniImageNet, tieredImageNet, cifar100) or a MetaBench .h5 file.")
            var path: String

            @Option(help: "Resize images to N×N (with --resize).")
            var imageSize: Int?

            @Option(help: "How --image-size resizes: area (exact area averaging, kept as floats), bilinear (antialiased, as PyTorch), or area-uint8 (area averaging rounded to bytes).")
            var resize: ResizeMode?

            @Flag(help: "Add 90/180/270-degree rotations as extra classes.")
            var rotations = false

            @Option(help: "Omniglot labels-file prefix: \"\" or \"vinyals_\".")
            var labelsPrefix = ""

            @Option(help: "CIFAR-100 variant: cifar-fs or fc100.")
            var variant: String?

            func validate() throws {
                if let size = imageSize, size <= 0 {
                    throw ValidationError("--image-size must be positive, got \(size)")
                }
                if let resize, imageSize == nil {
                    throw ValidationError("--resize \(resize.rawValue) needs --image-size (it chooses how images are resized)")
                }
                if let variant, !["cifar-fs", "fc100"].contains(variant) {
                    throw ValidationError("--variant must be cifar-fs or fc100, got '\(variant)'")
                }
            }

            func run() throws {
                let options = LoadOptions(imageSize: imageSize, resize: resize ?? .area, rotations: rotations,
                                          labelsPrefix: labelsPrefix, variant: variant)
                let dataset = try DatasetLoader.load(path, options: options)
                print(Inspect.report(dataset, path: path), terminator: "")
            }

            /// The inspection report, one fact per line.
            static func report(_ dataset: FewShotDataset, path: String) -> String {
                func range(_ r: ClosedRange<Int>) -> String {
                    r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)–\(r.upperBound)"
                }
                var lines = [
                    "path: \(path)",
                    "layout: \(dataset.layout)",
                    "name: \(dataset.name)",
                    "image shape: \(dataset.imageShape)",
                ]
                if dataset.splits.contains(where: { $0.classes.contains { $0.storage.bytesPerValue > 1 } }) {
                    lines.append("pixels: float32 in [0, 1] (resized in floating point)")
                }
                lines.append("splits:")
                for split in dataset.splits {
                    lines.append("  \(split.name): \(split.classes.count) classes, \(range(split.imagesPerClass)) images per class")
                }
                let total = dataset.splits.reduce(0) { $0 + $1.classes.count }
                let all = dataset.splits.flatMap(\.classes).map(\.count)
                lines.append("total: \(total) classes, \(all.reduce(0, +)) images")
                lines.append("images per class: min \(all.min() ?? 0), max \(all.max() ?? 0)")
                return lines.joined(separator: "\n") + "\n"
            }
        }

        /// `bench datasets synthesize OUT`: writes MetaBench's embedded procedural dataset.
        struct Synthesize: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write the embedded procedural dataset to an HDF5 file in MetaBench's layout.")

            @Argument(help: "The .h5 file to write.")
            var output: String

            func run() throws {
                try EmbeddedDataset.write(to: output)
                print("wrote \(output)")
            }
        }
    }
}

extension ResizeMode: ExpressibleByArgument {}
