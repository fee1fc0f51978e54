import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// MetaBench's procedural few-shot dataset: generated, written to an HDF5 file on first use, no download.
///
/// "Stroke-drawn glyphs with per-writer jitter", in the spirit of Omniglot: each of the 300 classes is an
/// imaginary character of two to four pen strokes (lines, corners, quadratic Bézier arcs and S-curves,
/// control points drawn from the class's own random stream), and each of its 20 images is one "writer"
/// drawing it: control points moved a little, a random affine map (rotation ±10°, scale, shear,
/// translation) and a random pen width, rasterised with antialiasing into 28×28 single-channel bytes,
/// 255 on the stroke and 0 on the background (as torchmeta stores Omniglot). Classes 0..<200 form the
/// `train` split, 200..<250 `val` and 250..<300 `test`.
///
/// Everything follows from `seed` through named `SeededGenerator` streams (one per class, one per
/// image) and plain floating-point arithmetic, so the bytes are the same on every run and machine.
public enum EmbeddedDataset {
    /// The seed of every random choice in the dataset.
    public static let seed: UInt64 = 0x4D65_7461_4265_6E63   // "MetaBenc"
    public static let name = "embedded-glyphs"
    public static let layout = "metabench-fewshot-v1"
    public static let imageShape = ImageShape(channels: 1, height: 28, width: 28)
    public static let imagesPerClass = 20
    /// The splits in order and their number of classes; classes are numbered across splits.
    public static let splitNames = ["train", "val", "test"]
    public static let classesPerSplit = [200, 50, 50]
    /// Name of the cached file, changed whenever the generator changes.
    public static let cacheFileName = "embedded-glyphs-v1.h5"
    /// `digest(generate())`, fixed here so that a cached file altered in any way — even with a matching
    /// digest stored beside it — is noticed and regenerated. Changes only with the generator (and then
    /// `cacheFileName` changes too); `EmbeddedDatasetTests` checks it.
    public static let contentDigest: UInt64 = 0xCD51_F15D_6207_C325

    /// Total number of classes over all splits.
    public static var classCount: Int { classesPerSplit.reduce(0, +) }

    /// Image `writer` of class `classIndex` (numbered across splits, 0..<300), as 28×28 bytes, row-major.
    public static func renderGlyph(classIndex: Int, writer: Int) -> [UInt8] {
        Glyph(seed: seed, classIndex: classIndex)
            .render(seed: seed, classIndex: classIndex, writer: writer, size: imageShape.width)
    }

    /// The images of class `classIndex`, one after another.
    static func classImages(_ classIndex: Int) -> ImageClass {
        let glyph = Glyph(seed: seed, classIndex: classIndex)
        var pixels: [UInt8] = []
        pixels.reserveCapacity(imagesPerClass * imageShape.count)
        for writer in 0..<imagesPerClass {
            pixels += glyph.render(seed: seed, classIndex: classIndex, writer: writer, size: imageShape.width)
        }
        return ImageClass(name: String(format: "glyph-%03d", classIndex), count: imagesPerClass, pixels: pixels)
    }

    /// Generates the dataset in memory (deterministic; classes are drawn concurrently).
    public static func generate() -> FewShotDataset {
        let total = classCount
        var classes = [ImageClass?](repeating: nil, count: total)
        classes.withUnsafeMutableBufferPointer { slots in
            let slots = SendableBuffer(base: slots.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: total) { c in
                (slots.base + c).pointee = classImages(c)
            }
        }
        var splits: [Split] = []
        var first = 0
        for (splitName, count) in zip(splitNames, classesPerSplit) {
            splits.append(Split(name: splitName, classes: classes[first..<(first + count)].map { $0! }))
            first += count
        }
        return FewShotDataset(name: name, layout: layout, imageShape: imageShape, splits: splits)
    }

    /// Writes the dataset to `path` in MetaBench's layout.
    public static func write(to path: String) throws {
        try MetaBenchLayout.write(generate(), to: path)
    }

    /// The folder of the cached file: `$METABENCH_CACHE`, else `$XDG_CACHE_HOME/metabench`, else
    /// `~/.cache/metabench`.
    public static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let folder = environment["METABENCH_CACHE"], !folder.isEmpty { return folder }
        if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/metabench" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/metabench"
    }

    /// Loads the cached file, writing it first when missing, and again — with a one-line warning on standard
    /// error — when it cannot be read or its pixels do not have `contentDigest`.
    public static func load() throws -> FewShotDataset {
        let folder = cacheDirectory()
        let path = folder + "/" + cacheFileName
        if FileManager.default.fileExists(atPath: path) {
            do {
                let cached = try readChecked(path)
                if digest(cached) == contentDigest { return cached }
                warn("warning: \(path) does not hold the embedded dataset's pixels (checksum mismatch); regenerating it")
            } catch {
                warn("warning: \(path) cannot be read (\(error)); regenerating it")
            }
        }
        let dataset = generate()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Write beside the file, then rename: a concurrent reader never sees half a file.
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try MetaBenchLayout.write(dataset, to: temporary)
        guard rename(temporary, path) == 0 else {
            throw DataError.hdf5("cannot move \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
        return dataset
    }

    /// A 64-bit FNV-1a hash of a dataset's content: every split's name, then each class's name, image count
    /// and pixels, in order. Any changed byte changes it (each FNV-1a step is a bijection of the state).
    /// A class held as floats adds minus its number of values, then each value's bit pattern (little-endian).
    public static func digest(_ dataset: FewShotDataset) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        }
        func add(_ number: Int) { withUnsafeBytes(of: Int64(number).littleEndian) { add($0) } }
        for split in dataset.splits {
            add(split.name.utf8)
            add(split.classes.count)
            for imageClass in split.classes {
                add(imageClass.name.utf8)
                add(imageClass.count)
                switch imageClass.storage {
                case .bytes(let pixels):
                    add(pixels.count)
                    pixels.withUnsafeBufferPointer { add($0) }
                case .floats(let values):
                    add(-values.count)
                    for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { add($0) } }
                }
            }
        }
        return hash
    }

    private static func warn(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Reads `path` and checks that it holds this dataset's shape and splits.
    private static func readChecked(_ path: String) throws -> FewShotDataset {
        let dataset = try MetaBenchLayout.read(path)
        guard dataset.imageShape == imageShape,
              dataset.splits.map(\.name) == splitNames,
              dataset.splits.map(\.classes.count) == classesPerSplit,
              dataset.splits.allSatisfy({ $0.classes.allSatisfy { $0.count == imagesPerClass } })
        else {
            throw DataError.badDataset(file: path, dataset: "/", reason: "not the embedded glyphs dataset")
        }
        return dataset
    }
}

/// A pointer handed to concurrent workers that each write a different element.
private struct SendableBuffer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
}
