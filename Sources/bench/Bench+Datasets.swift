// STUB — to be replaced by the HDF5 readers work.
import ArgumentParser
extension Bench {
    struct Datasets: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "datasets", abstract: "Inspect or synthesize datasets.")
    }
}
