import XCTest
import Engine
import Models
@testable import Learners
import FewShotData
import Foundation
func cpuSeconds() -> Double { var u = rusage(); getrusage(RUSAGE_SELF.rawValue, &u); return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec)*1e-6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec)*1e-6 }

final class ZZProbe: XCTestCase {
    func testProbe() throws {
        var rng = SeededGenerator(seed: 1)
        func ep() -> Episode {
            let s = LabelledImages(shape: ImageShape(channels: 1, height: 28, width: 28), pixels: (0..<(5*784)).map { _ in rng.nextUnitFloat() }, labels: [0,1,2,3,4])
            let q = LabelledImages(shape: ImageShape(channels: 1, height: 28, width: 28), pixels: (0..<(75*784)).map { _ in rng.nextUnitFloat() }, labels: (0..<75).map { $0 / 15 })
            return Episode(ways: 5, shots: 1, queriesPerClass: 15, support: s, query: q, classIndices: [0,1,2,3,4])
        }
        let e = ep()
        for fo in (ProcessInfo.processInfo.environment["FO"] == "1" ? [true] : [false]) {
            let setting = LearnerSetting(imageShape: ImageShape(channels: 1, height: 28, width: 28), ways: 5, shots: 1, queriesPerClass: 15, trainWays: 5, trainClassCount: 10, seed: 0)
            let m = try MAML(HyperParameters(learner: "maml", specs: MAML.hyperparameters, given: [:]), setting, firstOrder: fo)
            _ = m.metaGradient(m.model.parameters, episode: e)
            ComputeThreads.set(1); var c0 = cpuSeconds(); var t0 = Date()
            for _ in 0..<20 { _ = m.metaGradient(m.model.parameters, episode: e) }
            var dt = Date().timeIntervalSince(t0)
            print("PROBE cpu-ms/task=\((cpuSeconds()-c0)/20*1000) firstOrder=\(fo) tasks/s = \(20 / dt)  threads=\(ComputeThreads.count) core=\(BLAS.coreName)")
            struct Src: TrainingSource { let e: Episode; func episodes(iteration: Int, count: Int) throws -> [Episode] { Array(repeating: e, count: count) }; func classificationBatch(iteration: Int, size: Int) throws -> LabelledImages { fatalError() }; var classCount: Int { 5 } }
            ComputeThreads.set(2); m.metaBatchSize = 4
            _ = try m.trainStep(iteration: 0, source: Src(e: e))
            t0 = Date()
            for i in 0..<5 { _ = try m.trainStep(iteration: i, source: Src(e: e)) }
            dt = Date().timeIntervalSince(t0)
            print("PROBE metabatch4 firstOrder=\(fo) tasks/s = \(20 / dt)")
        }
    }
}
