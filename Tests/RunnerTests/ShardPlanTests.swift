import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// The plan: a pure function of the suite; shards partition its cells exactly and balance their cost.
final class ShardPlanTests: XCTestCase {
    /// The repository's suites folder (tests run from the package root or deeper).
    static func suitesFolder() throws -> String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("suites").path
            if FileManager.default.fileExists(atPath: candidate + "/smoke.yaml") { return candidate }
        }
        throw TestFailure(description: "no suites/ folder above \(#filePath)")
    }

    func repositorySuites() throws -> [Suite] {
        let folder = try Self.suitesFolder()
        return try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }.sorted()
            .map { try Suite.load((folder as NSString).appendingPathComponent($0), registry: .builtIn) }
    }

    func testShardsPartitionTheCellsExactly() throws {
        for suite in try repositorySuites() {
            let plan = SuitePlan(suite: suite)
            XCTAssertEqual(plan.cells.count, suite.settings.count * suite.learners.count * suite.seeds.count, suite.name)
            XCTAssertEqual(Set(plan.cells.map(\.key)).count, plan.cells.count, "\(suite.name): two cells share a key")
            for count in [1, 2, 3, 5, 8, plan.cells.count, plan.cells.count + 3] {
                var seen: [Int] = []
                for index in 0..<count {
                    let cells = plan.cells(of: try Shard(index: index, count: count))
                    XCTAssertEqual(cells.map(\.index), cells.map(\.index).sorted(), "shards run cells in suite order")
                    seen += cells.map(\.index)
                }
                XCTAssertEqual(seen.sorted(), Array(plan.cells.indices), "\(suite.name), \(count) shards")
            }
        }
    }

    /// Greedy largest-first over training groups: no shard exceeds the mean load plus the largest group, and on
    /// the repository's suites the slowest shard is within 4/3 of the lower bound max(mean, largest group) — the
    /// stated factor.
    func testShardsAreBalancedByCost() throws {
        for suite in try repositorySuites() {
            let costs = SuitePlan(suite: suite).groupCosts
            let total = costs.reduce(0, +), largest = costs.max() ?? 0
            for count in 1...min(12, costs.count) {
                let loads = SuitePlan.partition(costs: costs, count: count).map { $0.reduce(0) { $0 + costs[$1] } }
                let slowest = loads.max() ?? 0
                let bound = max(total / Double(count), largest)
                XCTAssertLessThanOrEqual(slowest, total / Double(count) + largest + 1e-9, "\(suite.name) \(count)")
                XCTAssertLessThanOrEqual(slowest, bound * 4 / 3 + 1e-9,
                                         "\(suite.name), \(count) shards: \(slowest / bound)× the lower bound")
            }
        }
    }

    func testPartitionIsBalancedNotRoundRobin() {
        // Round robin would give shard 0 both expensive cells.
        let groups = SuitePlan.partition(costs: [10, 1, 10, 1], count: 2)
        XCTAssertEqual(groups, [[0, 1], [2, 3]])
        XCTAssertEqual(SuitePlan.partition(costs: [5, 5, 5], count: 5), [[0], [1], [2], [], []])
    }

    func testCostModelRanksTheExpensiveCells() throws {
        let suite = try Suite.parse(yaml: """
        name: costs
        settings:
          - {ways: 5, shots: 1, queries: 15}
          - {ways: 20, shots: 5, queries: 15}
        learners:
          - name: maml
          - name: fomaml
          - name: protonet
          - name: protonet
            label: protonet-small
            hyperparameters: {width: 32}
        training: {iterations: 100, meta_batch: 4}
        evaluation: {episodes: 100}
        """, file: "c.yaml", registry: .builtIn)
        let cost = Dictionary(uniqueKeysWithValues: SuitePlan(suite: suite).cells.map { ("\($0.key.label) \($0.key.setting)", $0.cost) })
        XCTAssertGreaterThan(cost["maml 5w1s"]!, cost["fomaml 5w1s"]!, "second order costs more")
        XCTAssertGreaterThan(cost["maml 20w5s"]!, cost["maml 5w1s"]!, "more ways and shots cost more")
        XCTAssertGreaterThan(cost["protonet 5w1s"]!, cost["protonet-small 5w1s"]!, "a wider network costs more")
        // The plan is a pure function of the suite: computed twice, the same.
        XCTAssertEqual(SuitePlan(suite: suite), SuitePlan(suite: suite))
    }

    func testShardFromFlagsAndEnvironment() throws {
        XCTAssertNil(try Shard.select(explicit: nil, count: nil, environment: [:]))
        XCTAssertEqual(try Shard.select(explicit: "2/5", count: nil, environment: [:])?.shard, try Shard(index: 2, count: 5))
        let slurm = try Shard.select(explicit: nil, count: nil,
                                     environment: ["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"])
        XCTAssertEqual(slurm?.shard, try Shard(index: 3, count: 4))
        XCTAssertTrue(slurm?.source.contains("Slurm") == true)
        // An array numbered from 1: index = id − min, count from MIN/MAX.
        XCTAssertEqual(try Shard.select(explicit: nil, count: nil,
                                        environment: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1",
                                                      "SLURM_ARRAY_TASK_MAX": "3"])?.shard, try Shard(index: 0, count: 3))
        let k8s = try Shard.select(explicit: nil, count: 6, environment: ["JOB_COMPLETION_INDEX": "5"])
        XCTAssertEqual(k8s?.shard, try Shard(index: 5, count: 6))
        XCTAssertTrue(k8s?.source.contains("Kubernetes") == true)

        func rejects(_ explicit: String?, _ count: Int?, _ environment: [String: String], _ words: String,
                     line: UInt = #line) {
            XCTAssertThrowsError(try Shard.select(explicit: explicit, count: count, environment: environment), line: line) {
                XCTAssertTrue("\($0)".contains(words), "\($0)", line: line)
            }
        }
        rejects("5/5", nil, [:], "0…4")
        rejects("1/0", nil, [:], "1…10000")
        rejects("a/b", nil, [:], "INDEX/COUNT")
        rejects("1", nil, [:], "INDEX/COUNT")
        rejects("-1/3", nil, [:], "0…2")
        rejects("1/99999999999999999999", nil, [:], "INDEX/COUNT")
        rejects("0/2", 3, [:], "disagree")
        rejects(nil, nil, ["JOB_COMPLETION_INDEX": "0"], "--shards")
        rejects(nil, 3, [:], "needs a shard index")
        rejects(nil, nil, ["SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"], "SLURM_ARRAY_TASK_ID")
        rejects(nil, nil, ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "2"], "contiguous")
        rejects(nil, 2, ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"], "4 tasks")
        rejects(nil, nil, ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4"], "0…3")
        rejects(nil, nil, ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0",
                           "SLURM_ARRAY_TASK_MAX": "\(Int.max)"], "--shards")
    }
}
