import HDF5

/// What can go wrong reading a dataset or sampling episodes; each case names the problem for the user.
public enum DataError: Error, Equatable, CustomStringConvertible {
    case missingPath(String)
    case unknownLayout(path: String, reason: String)
    case invalidLabels(path: String, reason: String)
    case missingGroup(file: String, group: String)
    case badDataset(file: String, dataset: String, reason: String)
    case unknownSplit(String, available: [String])
    case notEnoughClasses(split: String, ways: Int, available: Int)
    case notEnoughImages(split: String, className: String, needed: Int, available: Int)
    case invalidEpisodeSettings(String)
    case imageDecoding(file: String, dataset: String, reason: String)
    case hdf5(String)
    case invalidOptions(String)
    /// The same class is in two splits (`splits` and `files`: the two splits and the files that list them).
    case classInTwoSplits(className: String, splits: [String], files: [String])
    /// Reading the dataset would take more memory than `ReadLimits.memoryBudget`, or a size overflows.
    case tooLarge(file: String, reason: String)

    public var description: String {
        switch self {
        case .missingPath(let path):
            return "no such file or folder: \(path)"
        case .unknownLayout(let path, let reason):
            return "\(path): unknown dataset layout: \(reason)"
        case .invalidLabels(let path, let reason):
            return "\(path): invalid labels file: \(reason)"
        case .missingGroup(let file, let group):
            return "\(file): the labels name '\(group)', which is not in the file"
        case .badDataset(let file, let dataset, let reason):
            return "\(file): dataset '\(dataset)': \(reason)"
        case .unknownSplit(let name, let available):
            return "no split named '\(name)' (the dataset has: \(available.joined(separator: ", ")))"
        case .notEnoughClasses(let split, let ways, let available):
            return "\(ways)-way episodes need \(ways) classes, but split '\(split)' has only \(available)"
        case .notEnoughImages(let split, let className, let needed, let available):
            return "episodes need \(needed) images per class (shots + queries), but class '\(className)' of split '\(split)' has only \(available)"
        case .invalidEpisodeSettings(let reason):
            return "invalid episode settings: \(reason)"
        case .imageDecoding(let file, let dataset, let reason):
            return "\(file): cannot decode an image of '\(dataset)': \(reason)"
        case .hdf5(let message):
            return message
        case .invalidOptions(let reason):
            return "invalid load options: \(reason)"
        case .classInTwoSplits(let className, let splits, let files):
            let places = zip(splits, files).map { "'\($0)' (\($1))" }.joined(separator: " and ")
            return "class '\(className)' is in both split \(places); a class must belong to one split only"
        case .tooLarge(let file, let reason):
            return "\(file): \(reason)"
        }
    }
}
