/// Image operations applied while loading: antialiased resizing and rotation by quarter turns.
enum ImageOps {
    /// Resizes CHW images by area averaging (a box filter whose support is the downscale factor).
    ///
    /// Each output pixel is the mean of the source pixels it covers, each weighted by the fraction of it
    /// that is covered — OpenCV's `INTER_AREA` (PIL's `BOX` matches it for whole-number factors). This
    /// antialiases when shrinking (every
    /// source pixel contributes), keeps the mean intensity, and never leaves 0...255. Rounded half up.
    static func resize(_ pixels: [UInt8], count: Int, from shape: ImageShape, toHeight height: Int, width: Int) -> [UInt8] {
        if shape.height == height && shape.width == width { return pixels }
        let rows = areaWeights(from: shape.height, to: height)
        let cols = areaWeights(from: shape.width, to: width)
        let planes = count * shape.channels
        var output = [UInt8](repeating: 0, count: planes * height * width)
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
                            for (i, w) in cols[x] { sum += Float(src[row + i]) * w }
                            horizontal[y * width + x] = sum
                        }
                    }
                    // Vertical pass.
                    let outBase = plane * height * width
                    for y in 0..<height {
                        for x in 0..<width {
                            var sum: Float = 0
                            for (i, w) in rows[y] { sum += horizontal[i * width + x] * w }
                            dst[outBase + y * width + x] = UInt8(min(255, max(0, (sum + 0.5).rounded(.down))))
                        }
                    }
                }
            }
        }
        return output
    }

    /// For each output index, the source indices it covers and their normalised overlap weights.
    static func areaWeights(from source: Int, to target: Int) -> [[(Int, Float)]] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { o in
            let start = Double(o) * scale
            let end = Double(o + 1) * scale
            var taps: [(Int, Float)] = []
            var i = Int(start.rounded(.down))
            while Double(i) < end && i < source {
                let overlap = min(end, Double(i + 1)) - max(start, Double(i))
                if overlap > 1e-9 { taps.append((i, Float(overlap / scale))) }
                i += 1
            }
            return taps
        }
    }

    /// Rotates square CHW images counter-clockwise by `quarterTurns` × 90 degrees (torchvision's `rotate`).
    static func rotate(_ pixels: [UInt8], count: Int, shape: ImageShape, quarterTurns: Int) -> [UInt8] {
        let n = shape.height
        let turns = ((quarterTurns % 4) + 4) % 4
        if turns == 0 { return pixels }
        var output = [UInt8](repeating: 0, count: pixels.count)
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
