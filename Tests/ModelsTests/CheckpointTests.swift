import Engine
import Foundation
import HDF5
@testable import Models
import XCTest

final class CheckpointTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metabench-checkpoint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        folder = url.path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A trained Conv4 and its Adam state, with awkward values (NaN payloads aside, every float must survive).
    func trainedState() -> (Conv4, ParameterOptimizer<Adam>, [String: Tensor]) {
        var rng = TestGenerator(seed: 3)
        let model = Conv4(inputChannels: 1, imageHeight: 28, imageWidth: 28, width: 8, classes: 5, using: &rng)
        let optimizer = ParameterOptimizer(Adam(), learningRate: 0.01)
        let x = randomTensor([5, 1, 28, 28], seed: 4)
        for _ in 0..<2 {
            let loss = Tensor.crossEntropy(logits: model(x), labels: [0, 1, 2, 3, 4])
            model.parameters = optimizer.update(model.parameters, gradients: gradients(of: loss, wrt: model.parameters.tensors))
        }
        var state = model.parameters.dictionary.mapKeysForTest { "model/" + $0 }
        for (k, v) in optimizer.stateTensors() { state["optimizer/" + k] = v }
        return (model, optimizer, state)
    }

    func testRoundTripIsBitExact() throws {
        let (model, optimizer, state) = trainedState()
        var extended = state
        extended["extra/scalar"] = Tensor(-0.0)
        extended["extra/one"] = Tensor(shape: [1], scalars: [.infinity])
        extended["extra/empty"] = Tensor(shape: [0, 3], scalars: [])
        extended["extra/odd"] = Tensor(shape: [2, 1, 3], scalars: [.leastNonzeroMagnitude, -.greatestFiniteMagnitude, 1e-40, .pi, -1, 0])
        extended["top.level"] = Tensor(shape: [2], scalars: [1, 2])
        let path = folder + "/model.h5"
        try Checkpoint.save(extended, to: path, metadata: ["learner": "maml", "iteration": "2"])
        let loaded = try Checkpoint.load(path)
        XCTAssertEqual(Set(loaded.keys), Set(extended.keys))
        for (name, tensor) in extended {
            XCTAssertEqual(loaded[name]?.shape, tensor.shape, name)
            XCTAssertEqual(loaded[name]?.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern), name)
        }
        XCTAssertEqual(try Checkpoint.metadata(path), ["learner": "maml", "iteration": "2"])
        // No temporary file is left beside the checkpoint.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["model.h5"])

        // Restoring gives the same model and the same next optimiser step.
        var rng = TestGenerator(seed: 77)
        let fresh = Conv4(inputChannels: 1, imageHeight: 28, imageWidth: 28, width: 8, classes: 5, using: &rng)
        fresh.parameters = try fresh.parameters.loading(loaded, prefix: "model/")
        XCTAssertEqual(fresh.parameters.tensors.map(\.scalars), model.parameters.tensors.map(\.scalars))
        XCTAssertTrue(fresh.parameters.tensors.allSatisfy(\.requiresGrad))
        let restored = ParameterOptimizer(Adam(), learningRate: 0.01)
        try restored.restore(loaded.filter { $0.key.hasPrefix("optimizer/") }
            .mapKeysForTest { String($0.dropFirst("optimizer/".count)) })
        let grads = model.parameters.tensors.map { randomTensor($0.shape, seed: UInt64($0.count)) }
        XCTAssertEqual(optimizer.update(model.parameters, gradients: grads).tensors.map(\.scalars),
                       restored.update(fresh.parameters, gradients: grads).tensors.map(\.scalars))
    }

    func testLayoutIsNestedGroupsWithDottedDatasetNames() throws {
        let path = folder + "/layout.h5"
        try Checkpoint.save(["model/block1.conv.weight": Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]),
                             "optimizer/block1.conv.weight/m": Tensor(shape: [2], scalars: [0, 1]),
                             "optimizer/step": Tensor(7)], to: path)
        let file = try File(path)
        XCTAssertEqual(try file.root().stringAttribute("metabench_checkpoint"), "v1")
        XCTAssertEqual(try file.members().map(\.name), ["model", "optimizer"])
        XCTAssertEqual(try file.group("model").members(), [Member(name: "block1.conv.weight", kind: .dataset)])
        let weight = try file.group("model").dataset("block1.conv.weight")
        XCTAssertEqual(try weight.shape(), [2, 3])
        XCTAssertEqual(try weight.elementType(), .float32)
        XCTAssertEqual(try file.dataset("optimizer/step").shape(), [])
        XCTAssertEqual(try file.group("optimizer").group("block1.conv.weight").members().map(\.name), ["m"])
    }

    func testSaveReplacesAnExistingCheckpoint() throws {
        let path = folder + "/c.h5"
        try Checkpoint.save(["a": Tensor(shape: [1], scalars: [1])], to: path)
        try Checkpoint.save(["b": Tensor(shape: [1], scalars: [2])], to: path)
        XCTAssertEqual(try Checkpoint.load(path).keys.sorted(), ["b"])
    }

    func testErrors() throws {
        let missing = folder + "/missing.h5"
        XCTAssertEqual(thrown(try Checkpoint.load(missing)), .fileNotFound(missing))

        let text = folder + "/notes.h5"
        try Data("not hdf5".utf8).write(to: URL(fileURLWithPath: text))
        guard case .notACheckpoint(text, _)? = thrown(try Checkpoint.load(text)) else { return XCTFail("text file") }

        // An HDF5 file without the marker (e.g. a dataset file) is not a checkpoint.
        let plain = folder + "/plain.h5"
        do {
            let file = try File(plain, mode: .create)
            try file.root().createDataset("images", shape: [2], values: [UInt8(1), 2])
            try file.close()
        }
        let error = thrown(try Checkpoint.load(plain))
        guard case .notACheckpoint(plain, let reason)? = error else { return XCTFail("plain HDF5: \(String(describing: error))") }
        XCTAssertTrue(reason.contains("metabench_checkpoint"), reason)
        XCTAssertTrue("\(error!)".contains("not a MetaBench checkpoint"))

        // A future version is refused by name.
        let future = folder + "/future.h5"
        do {
            let file = try File(future, mode: .create)
            try file.root().setAttribute("metabench_checkpoint", "v9")
            try file.close()
        }
        XCTAssertEqual(thrown(try Checkpoint.load(future)), .unsupportedVersion(path: future, version: "v9"))

        // A non-float dataset in a checkpoint.
        let ints = folder + "/ints.h5"
        do {
            let file = try File(ints, mode: .create)
            try file.root().setAttribute("metabench_checkpoint", "v1")
            try file.root().createDataset("model/w", shape: [1], values: [Int32(3)])
            try file.close()
        }
        XCTAssertEqual(thrown(try Checkpoint.load(ints)), .badTensor(path: ints, name: "model/w", reason: "holds int32, expected float32"))

        // Bad names, a missing folder and a reserved metadata key are refused before anything is written.
        XCTAssertEqual(thrown(try Checkpoint.save(["a//b": Tensor(1)], to: folder + "/x.h5")), .invalidName("a//b"))
        XCTAssertEqual(thrown(try Checkpoint.save(["": Tensor(1)], to: folder + "/x.h5")), .invalidName(""))
        guard case .writeFailed? = thrown(try Checkpoint.save(["a": Tensor(1)], to: folder + "/no/such/x.h5")) else {
            return XCTFail("missing folder")
        }
        guard case .writeFailed? = thrown(try Checkpoint.save(["a": Tensor(1)], to: folder + "/x.h5",
                                                              metadata: ["metabench_checkpoint": "v2"])) else {
            return XCTFail("reserved key")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/x.h5"))
    }

    func testRestoreRejectsMissingNamesAndShapeMismatches() throws {
        let (model, _, state) = trainedState()
        let path = folder + "/model.h5"
        try Checkpoint.save(state, to: path)
        var loaded = try Checkpoint.load(path)
        loaded["model/head.weight"] = Tensor.zeros([4, 8])
        let mismatch = thrownError(try model.parameters.loading(loaded, prefix: "model/")) as ParameterMismatch?
        XCTAssertEqual(mismatch?.message, "'model/head.weight' has shape [4, 8] in the checkpoint, the model expects [5, 8]")
        loaded["model/head.weight"] = nil
        let missing = thrownError(try model.parameters.loading(loaded, prefix: "model/")) as ParameterMismatch?
        XCTAssertEqual(missing?.message, "checkpoint has no 'model/head.weight'")
    }

    /// The error `body` throws, as `E` (nil, and a failure, when it returns or throws something else).
    func thrownError<T, E: Error>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> E? {
        do {
            _ = try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let error as E {
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    func thrown<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> CheckpointError? {
        thrownError(try body(), file: file, line: line) as CheckpointError?
    }
}

extension Dictionary where Key == String {
    func mapKeysForTest(_ f: (String) -> String) -> [String: Value] {
        Dictionary(uniqueKeysWithValues: map { (f($0.key), $0.value) })
    }
}
