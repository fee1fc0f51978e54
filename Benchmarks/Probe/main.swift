// Training steps of one learner on random pixels, outside ordo-one, for tools that watch a whole process
// (`heaptrack`, `perf`, `/usr/bin/time`): ordo-one's malloc interposer hides the benchmarks' allocations from
// heaptrack. Usage (from Benchmarks/): .build/release/Probe LEARNER WAYS SHOTS QUERIES STEPS [SIDE]
// e.g. `heaptrack .build/release/Probe protonet 60 5 5 3` — SIDE 28 (default) is 28×28 grey, any other value
// SIDE×SIDE colour (84: miniImageNet's shape). METABENCH_THREADS sets the threads (default 2); meta-batch 4
// for MAML's family, 1 otherwise; METABENCH_INNER_STEPS and METABENCH_META_BATCH set MAML's family's inner steps
// and meta-batch (the side_by_side shape `maml-5steps` is 5 and 2). Prints the mean time per step, then how much of it ran in the engine's parallel
// regions (`ComputeThreads.regionTotals`) and how long their threads waited there.
import Engine
import FewShotData
import Foundation
import Learners
import RandomEpisodes

let usage = "usage: Probe LEARNER WAYS SHOTS QUERIES STEPS [SIDE]   (e.g. Probe protonet 60 5 5 3)"
let arguments = Array(CommandLine.arguments.dropFirst())
let numbers = arguments.dropFirst().map { Int($0) }
guard arguments.count == 5 || arguments.count == 6, numbers.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 4096 }) else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}
let learnerName = arguments[0]
let (ways, shots, queries, steps) = (numbers[0]!, numbers[1]!, numbers[2]!, numbers[3]!)
let side = numbers.count == 5 ? numbers[4]! : 28
let imageShape = ImageShape(channels: side == 28 ? 1 : 3, height: side, width: side)

do {
    ComputeThreads.set(Int(ProcessInfo.processInfo.environment["METABENCH_THREADS"] ?? "") ?? 2)
    let environment = ProcessInfo.processInfo.environment
    let mamlFamily = ["maml", "fomaml", "reptile"].contains(learnerName)
    let metaBatch = mamlFamily ? Int(environment["METABENCH_META_BATCH"] ?? "") ?? 4 : 1
    let setting = LearnerSetting(imageShape: imageShape, ways: ways, shots: shots, queriesPerClass: queries,
                                 trainWays: ways, trainClassCount: 100, seed: 0, metaBatch: metaBatch,
                                 iterations: 1000)
    let given: [String: HyperValue] = environment["METABENCH_INNER_STEPS"].flatMap(Int.init).map { ["inner_steps": .int($0)] } ?? [:]
    let learner = try LearnerRegistry.builtIn.descriptor(named: learnerName).instantiate(given, setting: setting)
    let source = RandomEpisodes(ways: ways, shots: shots, queries: queries, shape: imageShape)
    ComputeThreads.resetRegionTotals()
    let start = Date()
    for i in 0..<steps { _ = try learner.trainStep(iteration: i, source: source) }
    let perStep = Date().timeIntervalSince(start) / Double(steps) * 1000
    print("\(learnerName) \(ways)w\(shots)s q\(queries) \(side)×\(side): \(String(format: "%.1f", perStep)) ms per step")
    // Where the step's wall-clock time goes between the engine's parallel regions and the rest (one thread).
    let regions = ComputeThreads.regionTotals
    if regions.count > 0 {
        func perStepMs(_ nanoseconds: UInt64) -> String { String(format: "%.1f", Double(nanoseconds) / 1e6 / Double(steps)) }
        print("  parallel regions: \(regions.count / steps) per step, \(perStepMs(regions.wallNanoseconds)) ms per step "
              + "(threads waiting in them: \(perStepMs(regions.capacityNanoseconds - regions.busyNanoseconds)) thread-ms); "
              + "outside them: \(String(format: "%.1f", perStep - Double(regions.wallNanoseconds) / 1e6 / Double(steps))) ms per step")
    }
} catch {
    FileHandle.standardError.write(Data("Probe: \(error)\n".utf8))
    exit(1)
}
