import ArgumentParser

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark few-shot meta-learning algorithms.")
    func run() throws {}
}
