// STUB — to be replaced by the embedded-dataset work.
import Foundation

/// MetaBench's procedural few-shot dataset: generated, written to an HDF5 file on first use, no download.
public enum EmbeddedDataset {
    /// Generates the dataset in memory (deterministic).
    public static func generate() -> FewShotDataset { fatalError("stub") }

    /// Writes the dataset to `path` in MetaBench's layout.
    public static func write(to path: String) throws { fatalError("stub") }

    /// Loads the cached file, writing it first when missing.
    public static func load() throws -> FewShotDataset { fatalError("stub") }
}
