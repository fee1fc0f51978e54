import Foundation
import XCTest
@testable import FewShotData
import HDF5

/// `resize: bilinear` against PyTorch 2.15's `interpolate(mode="bilinear", antialias=True, align_corners=False)`
/// on the same images, read from `Reference/resize-reference.h5` (written by `Reference/make_resize_reference.py`):
/// a random 1×105×105 image to 28×28, 20×20, 84×84 and 20×28, and a random 3×32×32 image to 20×20, 28×28 and
/// 84×84 (enlarging, where PyTorch's antialiased and plain bilinear agree; the script checks that).
///
/// Tolerance 1e-6 absolute on values in [0, 1]: MetaBench computes PyTorch's weights with PyTorch's float32
/// and double roundings and sums the taps in its order (rows first), so the two differ only where the
/// compilers order or fuse float32 operations differently — one or two ulps of 1 (the largest difference,
/// printed by the test, is 1.2e-7). Weights computed exactly instead of as PyTorch rounds them already
/// differ by 1.6e-6 (its output centres are rounded to float32, an ulp of 4e-6 near 32); a wrong weight,
/// a tap too many or a centre half a pixel off moves values by 1e-3 or more.
final class ResizeReferenceTests: XCTestCase {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/resize-reference.h5").path

    func testBilinearMatchesPyTorch() throws {
        let file = try File(Self.file)
        let cases: [(name: String, sizes: [(Int, Int)])] = [
            ("grey105", [(28, 28), (20, 20), (84, 84), (20, 28)]),
            ("rgb32", [(20, 20), (28, 28), (84, 84)]),
        ]
        var largest: Float = 0
        for (name, sizes) in cases {
            let input = try file.dataset(name + "/input")
            let dims = try input.shape()
            XCTAssertEqual(dims.count, 3)
            let shape = ImageShape(channels: dims[0], height: dims[1], width: dims[2])
            let pixels: [UInt8] = try input.read()
            for (height, width) in sizes {
                let reference = try file.dataset("\(name)/\(height)x\(width)")
                XCTAssertEqual(try reference.shape(), [shape.channels, height, width])
                let expected: [Float] = try reference.read()
                guard case .floats(let ours) = ImageOps.resize(pixels, count: 1, from: shape, toHeight: height, width: width,
                                                               mode: .bilinear) else {
                    return XCTFail("\(name) → \(height)×\(width): expected floats")
                }
                XCTAssertEqual(ours.count, expected.count)
                let difference = zip(ours, expected).map { abs($0 - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(difference, 1e-6, "\(name) → \(height)×\(width)")
                largest = max(largest, difference)
            }
        }
        print("ResizeReferenceTests: largest difference from PyTorch \(largest)")
    }
}
