// Throughput of the engine and the meta-learning steps on Conv4-64, 28×28 grey images, random pixels. The
// PyTorch/learn2learn peer of every shape here except episode sampling is Benchmarks/Peer/peer_throughput.py
// (set-up and reading: Benchmarks/Peer/README.md); run both on the same machine in the same session.
//
// Each benchmark's scaled iteration is one unit of the quantity the peer reports (a GEMM, a task, an
// episode), so throughput in the report reads directly as GFLOP/s·(1/2n³), tasks/s or episodes/s.
import Benchmark
import Engine
import FewShotData
import Foundation
import Learners
import Models
import RandomEpisodes

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident, .mallocCountTotal],
        warmupIterations: 2,
        scalingFactor: .one,
        maxDuration: .seconds(10),
        maxIterations: 1000
    )
    let threads = Int(ProcessInfo.processInfo.environment["METABENCH_THREADS"] ?? "") ?? 2
    ComputeThreads.set(threads)

    // sgemm: one 1024×1024×1024 product (2.15 GFLOP) per iteration; GFLOP/s = throughput × 2.147.
    Benchmark("sgemm 1024³ (×2.147 GFLOP)") { benchmark in
        let n = 1024
        var rng = SeededGenerator(seed: 1)
        let a = Tensor(shape: [n, n], scalars: (0..<(n * n)).map { _ in rng.nextUnitFloat() })
        let b = Tensor(shape: [n, n], scalars: (0..<(n * n)).map { _ in rng.nextUnitFloat() })
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(Tensor.matmul(a, b))
        }
    }

    Benchmark("Conv4 forward+backward 80×1×28×28") { benchmark in
        var rng = SeededGenerator(seed: 2)
        let model = Conv4(inputChannels: 1, imageHeight: 28, imageWidth: 28, width: 64, classes: 5, using: &rng)
        let x = Tensor(shape: [80, 1, 28, 28], scalars: (0..<(80 * 784)).map { _ in rng.nextUnitFloat() })
        let labels = (0..<80).map { $0 % 5 }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let loss = Tensor.crossEntropy(logits: model(x), labels: labels)
            blackHole(gradients(of: loss, wrt: model.parameters.tensors))
        }
    }

    // One iteration = one meta-batch of 4 tasks (as the peer script); tasks/s = throughput × 4.
    for (name, firstOrder, steps, batch) in [("MAML", false, 1, 4), ("first-order MAML", true, 1, 4), ("MAML 5 steps", false, 5, 2)] {
        Benchmark("\(name) 5w1s q15 meta-step (×\(batch) tasks)") { benchmark in
            let learner = try makeMAML(firstOrder: firstOrder, innerSteps: steps, metaBatch: batch)
            let source = RandomEpisodes(ways: 5, shots: 1, queries: 15)
            var iteration = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try learner.trainStep(iteration: iteration, source: source))
                iteration += 1
            }
        }
    }

    for (ways, shots, queries) in [(60, 5, 5), (5, 1, 15)] {
        Benchmark("ProtoNet \(ways)w\(shots)s q\(queries) training episode") { benchmark in
            let descriptor = try LearnerRegistry.builtIn.descriptor(named: "protonet")
            let setting = LearnerSetting(imageShape: ImageShape(channels: 1, height: 28, width: 28), ways: ways,
                                         shots: shots, queriesPerClass: queries, trainWays: ways,
                                         trainClassCount: 100, seed: 0, metaBatch: 1, iterations: 1000)
            let learner = try descriptor.instantiate([:], setting: setting)
            let source = RandomEpisodes(ways: ways, shots: shots, queries: queries)
            var iteration = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try learner.trainStep(iteration: iteration, source: source))
                iteration += 1
            }
        }
    }

    // One evaluation episode of each learner: adapt to the support set, score the queries, with an untrained
    // learner (the work does not depend on the weights): episodes/s = throughput. The runner evaluates
    // `METABENCH_THREADS` episodes at once, each on one thread; run with METABENCH_THREADS=1 beside the peer's
    // `--threads 1` for the per-episode comparison.
    for (name, ways, shots, queries) in [("protonet", 5, 1, 15), ("matchingnet", 20, 1, 5), ("baseline", 20, 1, 5),
                                         ("baseline++", 20, 1, 5), ("maml", 5, 1, 15), ("reptile", 5, 1, 15)] {
        Benchmark("adapt \(name) \(ways)w\(shots)s q\(queries) evaluation episode") { benchmark in
            let setting = LearnerSetting(imageShape: ImageShape(channels: 1, height: 28, width: 28), ways: ways,
                                         shots: shots, queriesPerClass: queries, trainWays: ways,
                                         trainClassCount: 100, seed: 0, metaBatch: 1, iterations: 1000)
            let learner = try LearnerRegistry.builtIn.descriptor(named: name).instantiate([:], setting: setting)
            let episode = RandomEpisodes(ways: ways, shots: shots, queries: queries).episode
            let queryImages = episode.query.tensor
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try learner.adapt(support: episode.support, ways: ways).logits(queries: queryImages))
            }
        }
    }

    // Episode sampling from the embedded dataset held in memory: 5-way 5-shot 15-query episodes.
    Benchmark("episode sampling 5w5s q15 (embedded dataset)") { benchmark in
        let dataset = EmbeddedDataset.generate()
        let sampler = try EpisodeSampler(split: try dataset.split(named: "train"), imageShape: dataset.imageShape,
                                         settings: EpisodeSettings(ways: 5, shots: 5, queriesPerClass: 15), seed: 0)
        var index = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(sampler.episode(index))
            index += 1
        }
    }
}

func makeMAML(firstOrder: Bool, innerSteps: Int, metaBatch: Int) throws -> MetaLearner {
    let descriptor = try LearnerRegistry.builtIn.descriptor(named: firstOrder ? "fomaml" : "maml")
    let setting = LearnerSetting(imageShape: ImageShape(channels: 1, height: 28, width: 28), ways: 5, shots: 1,
                                 queriesPerClass: 15, trainWays: 5, trainClassCount: 100, seed: 0,
                                 metaBatch: metaBatch, iterations: 1000)
    return try descriptor.instantiate(["inner_steps": .int(innerSteps)], setting: setting)
}
