/// How `image_size` resizes images (the dataset option `resize`).
public enum ResizeMode: String, Sendable, Codable, CaseIterable {
    /// Exact area averaging (OpenCV's `INTER_AREA`), kept in floating point: resized images are held as
    /// floats in [0, 1].
    case area
    /// Antialiased bilinear, as PyTorch's `interpolate(mode="bilinear", antialias=True, align_corners=False)`
    /// computes it on float input (torchvision's `Resize` of a float tensor); plain bilinear when enlarging.
    /// Resized images are held as floats in [0, 1].
    case bilinear
    /// Exact area averaging rounded half up to bytes: MetaBench before this option existed, and uint8
    /// pipelines (PIL) that resize before converting to floats.
    case areaUInt8 = "area-uint8"

    /// Whether resized images are held as floats (else as bytes).
    public var keepsFloats: Bool { self != .areaUInt8 }

    /// The allowed values, for messages: `area, bilinear, area-uint8`.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Image operations applied while loading: antialiased resizing and rotation by quarter turns.
enum ImageOps {
    /// One output index of a separable filter: the source indices it reads and their weights (summing to 1).
    typealias Taps = [(index: Int, weight: Float)]

    /// Resizes CHW byte images with `mode`: floats in [0, 1] for `.area` and `.bilinear`, bytes for
    /// `.areaUInt8`. Images already `height`×`width` stay bytes, unchanged.
    ///
    /// `.area` averages the bytes (as `.areaUInt8` does) and divides by 255; `.bilinear` filters the floats
    /// `b / 255` with PyTorch's weights, in PyTorch's order (the horizontal pass first), so that it gives
    /// PyTorch's values.
    static func resize(_ pixels: [UInt8], count: Int, from shape: ImageShape, toHeight height: Int, width: Int,
                       mode: ResizeMode) -> PixelStorage {
        if shape.height == height && shape.width == width { return .bytes(pixels) }
        let planes = count * shape.channels
        switch mode {
        case .areaUInt8:
            return .bytes(resize(pixels, count: count, from: shape, toHeight: height, width: width))
        case .area:
            let sums = filter(pixels, values: byteValues, planes: planes, from: shape,
                              rows: areaWeights(from: shape.height, to: height), cols: areaWeights(from: shape.width, to: width))
            return .floats(sums.map { min(1, max(0, $0 / 255)) })
        case .bilinear:
            let values = filter(pixels, values: unitValues, planes: planes, from: shape,
                                rows: triangleWeights(from: shape.height, to: height),
                                cols: triangleWeights(from: shape.width, to: width))
            return .floats(values.map { min(1, max(0, $0)) })
        }
    }

    /// What each byte is filtered as: itself (0...255), or as a float in [0, 1] (`b / 255`, as PyTorch sees it).
    static let byteValues: [Float] = (0..<256).map { Float($0) }
    static let unitValues: [Float] = (0..<256).map { Float($0) / 255 }

    /// Resizes CHW images by area averaging (a box filter whose support is the downscale factor), to bytes.
    ///
    /// Each output pixel is the mean of the source pixels it covers, each weighted by the fraction of it
    /// that is covered — OpenCV's `INTER_AREA` (PIL's `BOX` matches it for whole-number factors). This
    /// antialiases when shrinking (every source pixel contributes), keeps the mean intensity, and never
    /// leaves 0...255. Rounded half up.
    static func resize(_ pixels: [UInt8], count: Int, from shape: ImageShape, toHeight height: Int, width: Int) -> [UInt8] {
        if shape.height == height && shape.width == width { return pixels }
        let sums = filter(pixels, values: byteValues, planes: count * shape.channels, from: shape,
                          rows: areaWeights(from: shape.height, to: height), cols: areaWeights(from: shape.width, to: width))
        return sums.map { UInt8(min(255, max(0, ($0 + 0.5).rounded(.down)))) }
    }

    /// A separable filter over `planes` planes of `shape`'s size, byte `b` read as `values[b]`: every source
    /// row is filtered to `cols.count` columns, then every column to `rows.count` rows, in float32, each
    /// output summing its taps in order.
    static func filter(_ pixels: [UInt8], values: [Float], planes: Int, from shape: ImageShape, rows: [Taps], cols: [Taps]) -> [Float] {
        let height = rows.count, width = cols.count
        var output = [Float](repeating: 0, count: planes * height * width)
        var horizontal = [Float](repeating: 0, count: shape.height * width)
        pixels.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for plane in 0..<planes {
                    let inBase = plane * shape.height * shape.width
                    // Horizontal pass: every source row to `width` columns.
                    for y in 0..<shape.height {
                        let row = inBase + y * shape.width
                        for x in 0..<width {
                            var sum: Float = 0
                            for (i, w) in cols[x] { sum += values[Int(src[row + i])] * w }
                            horizontal[y * width + x] = sum
                        }
                    }
                    // Vertical pass.
                    let outBase = plane * height * width
                    for y in 0..<height {
                        for x in 0..<width {
                            var sum: Float = 0
                            for (i, w) in rows[y] { sum += horizontal[i * width + x] * w }
                            dst[outBase + y * width + x] = sum
                        }
                    }
                }
            }
        }
        return output
    }

    /// For each output index, the source indices it covers and their normalised overlap weights.
    static func areaWeights(from source: Int, to target: Int) -> [Taps] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { o in
            let start = Double(o) * scale
            let end = Double(o + 1) * scale
            var taps: Taps = []
            var i = Int(start.rounded(.down))
            while Double(i) < end && i < source {
                let overlap = min(end, Double(i + 1)) - max(start, Double(i))
                if overlap > 1e-9 { taps.append((i, Float(overlap / scale))) }
                i += 1
            }
            return taps
        }
    }

    /// For each output index, the source indices of an antialiased triangle (bilinear) filter and their
    /// weights, normalised to sum to 1: PyTorch's `antialias=True` bilinear weights (after PIL's
    /// `ImagingResample`), computed with PyTorch's float32 and double roundings so that they are its weights.
    ///
    /// With `s = source / target`, output `o` is centred at `c = s·(o + ½)` in source coordinates; source
    /// pixel `i` (centre `i + ½`) gets `max(0, 1 − |i + ½ − c| / max(s, 1))`. Shrinking widens the triangle
    /// to the downscale factor (antialiasing); enlarging leaves it one pixel wide, which is plain bilinear
    /// with `align_corners=False` (source coordinate `c − ½`, edges repeated).
    static func triangleWeights(from source: Int, to target: Int) -> [Taps] {
        let scale = Float(source) / Float(target)
        let support: Float = scale >= 1 ? scale : 1
        let inverse: Float = scale >= 1 ? Float(1 / Double(scale)) : 1
        let widest = Int(support.rounded(.up)) * 2 + 1
        return (0..<target).map { o in
            let center = Float(Double(scale) * (Double(o) + 0.5))
            let first = max(Int(Double(center - support) + 0.5), 0)
            let size = max(0, min(min(Int(Double(center + support) + 0.5), source) - first, widest))
            var taps: Taps = []
            var total: Float = 0
            for i in first..<(first + size) {
                let distance = abs(Float((Double(Float(i) - center) + 0.5) * Double(inverse)))
                let weight: Float = distance < 1 ? Float(1 - Double(distance)) : 0
                if weight > 0 { taps.append((i, weight)) }
                total += weight
            }
            return taps.map { ($0.index, $0.weight / total) }
        }
    }

    /// Rotates square CHW images counter-clockwise by `quarterTurns` × 90 degrees, bytes or floats alike.
    static func rotate(_ storage: PixelStorage, count: Int, shape: ImageShape, quarterTurns: Int) -> PixelStorage {
        switch storage {
        case .bytes(let bytes): return .bytes(rotate(bytes, count: count, shape: shape, quarterTurns: quarterTurns))
        case .floats(let values): return .floats(rotate(values, count: count, shape: shape, quarterTurns: quarterTurns))
        }
    }

    /// Rotates square CHW images counter-clockwise by `quarterTurns` × 90 degrees (torchvision's `rotate`).
    static func rotate<Value>(_ pixels: [Value], count: Int, shape: ImageShape, quarterTurns: Int) -> [Value] {
        let n = shape.height
        let turns = ((quarterTurns % 4) + 4) % 4
        if turns == 0 { return pixels }
        var output = pixels
        let planes = count * shape.channels
        pixels.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for plane in 0..<planes {
                    let base = plane * n * n
                    for r in 0..<n {
                        for c in 0..<n {
                            let source: Int
                            switch turns {
                            case 1: source = c * n + (n - 1 - r)            // out(r, c) = in(c, n-1-r)
                            case 2: source = (n - 1 - r) * n + (n - 1 - c)
                            default: source = (n - 1 - c) * n + r           // out(r, c) = in(n-1-c, r)
                            }
                            dst[base + r * n + c] = src[base + source]
                        }
                    }
                }
            }
        }
        return output
    }

    /// Converts NHWC bytes to NCHW.
    static func hwcToCHW(_ pixels: [UInt8], count: Int, height: Int, width: Int, channels: Int) -> [UInt8] {
        if channels == 1 { return pixels }
        var output = [UInt8](repeating: 0, count: pixels.count)
        let plane = height * width
        pixels.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for image in 0..<count {
                    let base = image * plane * channels
                    for p in 0..<plane {
                        for ch in 0..<channels {
                            dst[base + ch * plane + p] = src[base + p * channels + ch]
                        }
                    }
                }
            }
        }
        return output
    }
}
