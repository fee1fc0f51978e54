// TEMPORARY — delete at merge: the real `MetaBenchLayout` (the HDF5 layer) comes from another branch.

/// Stand-in for MetaBench's own HDF5 layout so that this branch compiles; every call throws.
public enum MetaBenchLayout {
    public static func write(_ dataset: FewShotDataset, to path: String) throws {
        throw DataError.hdf5("MetaBenchLayout is not available on this branch (stub): cannot write \(path)")
    }

    public static func read(_ path: String) throws -> FewShotDataset {
        throw DataError.hdf5("MetaBenchLayout is not available on this branch (stub): cannot read \(path)")
    }
}
