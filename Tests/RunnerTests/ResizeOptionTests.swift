import FewShotData
import Foundation
import Learners
@testable import Runner
import XCTest

/// The suite key `dataset.resize`: parsed, checked, and part of every cell's fingerprint.
final class ResizeOptionTests: XCTestCase {
    let registry = Fixtures.registry()
    let base = """
    name: resized
    dataset:
      path: some/folder
      image_size: 28
    settings:
      - {ways: 5, shots: 1}
    learners:
      - name: nearest
    training:
      iterations: 10
    """

    func parse(_ yaml: String) throws -> Suite { try Suite.parse(yaml: yaml, file: "r.yaml", registry: registry) }

    func withResize(_ value: String) -> String {
        base.replacingOccurrences(of: "  image_size: 28", with: "  image_size: 28\n  resize: \(value)")
    }

    func testResizeValues() throws {
        XCTAssertEqual(try parse(base).dataset.options.resize, .area, "the default")
        for mode in ResizeMode.allCases {
            XCTAssertEqual(try parse(withResize(mode.rawValue)).dataset.options,
                           LoadOptions(imageSize: 28, resize: mode))
        }
        XCTAssertEqual(try parse(withResize("\"bilinear\"")).dataset.options.resize, .bilinear)
    }

    func testBadResizeValuesAreErrors() {
        let cases: [(String, String)] = [
            (withResize("bogus"), "r.yaml:5: dataset.resize: expected one of area, bilinear, area-uint8, got 'bogus'"),
            (withResize("Area"), "r.yaml:5: dataset.resize: expected one of area, bilinear, area-uint8, got 'Area'"),
            (withResize("3"), "r.yaml:5: dataset.resize: expected one of area, bilinear, area-uint8, got '3'"),
            (withResize("[area]"), "r.yaml:5: dataset.resize: expected a string, got a list"),
            (withResize("").replacingOccurrences(of: "resize: ", with: "resize:"), "r.yaml:5: dataset.resize: expected a string, got an empty value"),
            (base.replacingOccurrences(of: "  image_size: 28", with: "  resize: bilinear"),
             "r.yaml:4: dataset.resize: needs dataset.image_size (it chooses how images are resized)"),
        ]
        for (yaml, message) in cases {
            XCTAssertThrowsError(try parse(yaml), yaml) { error in
                XCTAssertTrue(error is SuiteError)
                XCTAssertEqual("\(error)", message)
            }
        }
        XCTAssertThrowsError(try parse(base.replacingOccurrences(of: "  image_size: 28", with: "  resise: area"))) { error in
            XCTAssertTrue("\(error)".contains("allowed: path, image_size, resize, rotations"), "\(error)")
        }
    }

    /// A cell stored before `resize` existed (results/omniglot-small, image_size 28 with rotations): its
    /// configuration reads back as `area-uint8`, what it was made with, and keeps its fingerprint; the
    /// other modes change it, so their cells are never taken for it.
    static let storedConfig = """
    {"dataset": {"classCounts": {"test": 236, "train": 732}, "imageShape": {"channels": 1, "height": 28, "width": 28}, \
    "layout": "torchmeta-omniglot", "name": "omniglot", "normalization": {"none": {}}, \
    "options": {"imageSize": 28, "labelsPrefix": "", "rotations": true}, "path": "datasets/omniglot-small", \
    "testSplit": "test", "trainSplit": "train"}, "evaluation": {"episodes": 200, "seed": 0}, \
    "hyperparameters": {"downsampling": "maxpool", "lr": 0.001, "lr_decay": 0.5, "lr_decay_every": 2000, "width": 64}, \
    "label": "protonet", "learner": "protonet", "seed": 0, \
    "setting": {"queries": 15, "shots": 1, "trainQueries": 15, "trainShots": 1, "trainWays": 5, "ways": 5}, \
    "training": {"iterations": 100, "metaBatch": 4, "validateEvery": 0, "validationEpisodes": 100}}
    """
    static let storedFingerprint = "321ecc4c0edf5b16"

    func testResizeIsPartOfTheFingerprint() throws {
        var config = try JSONDecoder().decode(CellConfig.self, from: Data(Self.storedConfig.utf8))
        XCTAssertEqual(config.dataset.options.resize, .areaUInt8)
        XCTAssertEqual(config.fingerprint, Self.storedFingerprint)
        var fingerprints = [config.fingerprint]
        for mode in [ResizeMode.area, .bilinear] {
            config.dataset.options.resize = mode
            fingerprints.append(config.fingerprint)
            // Written and read back, the mode and the fingerprint stay.
            let again = try JSONDecoder().decode(CellConfig.self, from: JSONEncoder().encode(config))
            XCTAssertEqual(again.dataset.options.resize, mode)
            XCTAssertEqual(again.fingerprint, config.fingerprint)
        }
        XCTAssertEqual(Set(fingerprints).count, 3, "\(fingerprints)")
    }

    /// Options that do not resize encode as before the option existed (so cells of suites without
    /// image_size, such as the shipped smoke results, keep their fingerprints).
    func testOptionsWithoutImageSizeEncodeAsBefore() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        XCTAssertEqual(String(decoding: try encoder.encode(LoadOptions()), as: UTF8.self), #"{"labelsPrefix":"","rotations":false}"#)
        XCTAssertEqual(String(decoding: try encoder.encode(LoadOptions(imageSize: 84, resize: .bilinear)), as: UTF8.self),
                       #"{"imageSize":84,"labelsPrefix":"","resize":"bilinear","rotations":false}"#)
        XCTAssertEqual(try JSONDecoder().decode(LoadOptions.self, from: Data(#"{"labelsPrefix":"","rotations":false}"#.utf8)), LoadOptions())
    }
}
