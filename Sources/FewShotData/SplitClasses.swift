/// The class names one split lists, and where it lists them: what the loaders check before reading pixels.
struct SplitClasses {
    /// The split (`train`, `val`, `test`, …).
    var split: String
    /// The file that lists the classes (a labels file, or the HDF5 file of MetaBench's layout).
    var source: String
    /// The class names, in order.
    var names: [String]
    /// Where each name comes from, for messages ("entry 3", "dataset /train/000003").
    var places: [String]

    init(split: String, source: String, names: [String], places: [String]? = nil) {
        self.split = split
        self.source = source
        self.names = names
        self.places = places ?? names.indices.map { "entry \($0)" }
    }

    /// Checks that no split names a class twice and that no class is in two splits.
    ///
    /// A class listed twice gets twice the weight in episodes and makes two labels of one class in an
    /// episode possible; a class in both the training and an evaluation split makes the evaluation measure
    /// memory, not few-shot learning. Both are errors naming the class and the files.
    static func checkDistinct(_ splits: [SplitClasses]) throws {
        var owner: [String: Int] = [:]
        for (splitIndex, split) in splits.enumerated() {
            var first: [String: Int] = [:]
            for (index, name) in split.names.enumerated() {
                if let earlier = first[name] {
                    throw DataError.invalidLabels(path: split.source, reason: "class '\(name)' is listed twice in split '\(split.split)' "
                                                  + "(\(split.places[earlier]) and \(split.places[index]))")
                }
                first[name] = index
                if let other = owner[name] {
                    let earlier = splits[other]
                    throw DataError.classInTwoSplits(className: name, splits: [earlier.split, split.split],
                                                     files: [earlier.source, split.source])
                }
            }
            for name in split.names { owner[name] = splitIndex }
        }
    }
}
