import Foundation

/// A point of a glyph, in the unit square (x to the right, y down).
struct GlyphPoint: Equatable, Sendable {
    var x: Double
    var y: Double
}

/// One pen stroke: a polyline through its points, or a quadratic Bézier curve per three points.
struct GlyphStroke: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        /// Straight segments through the points.
        case polyline
        /// Quadratic Bézier curves: points 0-1-2, then 2-3-4, and so on.
        case quadratic
    }
    var kind: Kind
    var points: [GlyphPoint]
}

/// An imaginary character: two to four strokes drawn in the unit square, the class of the embedded dataset.
struct Glyph: Equatable, Sendable {
    var strokes: [GlyphStroke]

    /// The glyph of class `classIndex`: a pure function of the seed and the index.
    ///
    /// Strokes are lines, corners (two segments) or curves (one or two quadratic Béziers) with control
    /// points in [0.1, 0.9]²; after the first, a stroke starts on a point of an earlier stroke half the
    /// time, so most glyphs are connected like handwriting. The glyph is then centred, and a small one
    /// enlarged to span at least 0.6 of the square.
    init(seed: UInt64, classIndex: Int) {
        var g = SeededGenerator(seed: seed, "glyph", .int(classIndex))
        func point() -> GlyphPoint { GlyphPoint(x: g.uniform(0.1, 0.9), y: g.uniform(0.1, 0.9)) }
        /// A point at least `minimum` away from `from`, so that no stroke is a dot.
        func point(awayFrom from: GlyphPoint, minimum: Double) -> GlyphPoint {
            var p = point()
            var tries = 0
            while distance(p, from) < minimum && tries < 32 { p = point(); tries += 1 }
            return p
        }
        let strokeCount = 2 + g.nextInt(below: 3)
        var strokes: [GlyphStroke] = []
        for s in 0..<strokeCount {
            var start = point()
            if s > 0 && g.nextInt(below: 2) == 0 {
                let earlier = strokes[g.nextInt(below: strokes.count)].points
                start = earlier[g.nextInt(below: earlier.count)]
            }
            switch g.nextInt(below: 4) {
            case 0:   // a line
                strokes.append(GlyphStroke(kind: .polyline, points: [start, point(awayFrom: start, minimum: 0.4)]))
            case 1:   // a corner
                let corner = point(awayFrom: start, minimum: 0.3)
                strokes.append(GlyphStroke(kind: .polyline,
                                           points: [start, corner, point(awayFrom: corner, minimum: 0.3)]))
            case 2:   // an arc
                let end = point(awayFrom: start, minimum: 0.35)
                strokes.append(GlyphStroke(kind: .quadratic, points: [start, point(), end]))
            default:  // an S-curve or loop: two arcs, smooth at the joint
                let middle = point(awayFrom: start, minimum: 0.3)
                let control = point()
                let mirrored = GlyphPoint(x: min(max(2 * middle.x - control.x, 0.05), 0.95),
                                          y: min(max(2 * middle.y - control.y, 0.05), 0.95))
                strokes.append(GlyphStroke(kind: .quadratic,
                                           points: [start, control, middle, mirrored,
                                                    point(awayFrom: middle, minimum: 0.25)]))
            }
        }
        // Centre the glyph's control points in the square, and enlarge small glyphs to span at least 0.6.
        let all = strokes.flatMap(\.points)
        let minX = all.map(\.x).min()!, maxX = all.map(\.x).max()!
        let minY = all.map(\.y).min()!, maxY = all.map(\.y).max()!
        let grow = max(1, 0.6 / max(maxX - minX, maxY - minY, 1e-6))
        let centreX = (minX + maxX) / 2, centreY = (minY + maxY) / 2
        self.strokes = strokes.map { stroke in
            GlyphStroke(kind: stroke.kind, points: stroke.points.map {
                GlyphPoint(x: 0.5 + grow * ($0.x - centreX), y: 0.5 + grow * ($0.y - centreY))
            })
        }
    }

    /// The glyph as one writer draws it: `size`×`size` bytes, 255 on the stroke, 0 on the background.
    ///
    /// The writer moves each control point a little (normal, σ = 0.025), applies an affine map about the
    /// centre (rotation ±10°, scale 0.88–1.08 and ±5 % per axis, shear ±0.15, translation ±0.07), and
    /// draws with a pen of half-width 0.7–1.3 pixels (±10 % per stroke). Coverage is the analytic box-filtered
    /// distance to the nearest segment, `clamp(r + 0.5 − d, 0, 1)`, so edges are antialiased.
    func render(seed: UInt64, classIndex: Int, writer: Int, size: Int) -> [UInt8] {
        var g = SeededGenerator(seed: seed, "writer", .int(classIndex), .int(writer))
        let angle = g.uniform(-10, 10) * Double.pi / 180
        let scale = g.uniform(0.88, 1.08)
        let scaleX = scale * g.uniform(0.95, 1.05), scaleY = scale * g.uniform(0.95, 1.05)
        let shear = g.uniform(-0.15, 0.15)
        let shiftX = g.uniform(-0.07, 0.07), shiftY = g.uniform(-0.07, 0.07)
        let penRadius = g.uniform(0.7, 1.3)
        let cosA = cos(angle), sinA = sin(angle)
        // Unit square → pixels, keeping a margin of 1/14 of the image on each side before jitter.
        let margin = Double(size) / 14, extent = Double(size) - 2 * margin
        func place(_ p: GlyphPoint) -> GlyphPoint {
            let x = (p.x - 0.5) * scaleX + shear * (p.y - 0.5) * scaleY
            let y = (p.y - 0.5) * scaleY
            let rx = cosA * x - sinA * y + 0.5 + shiftX
            let ry = sinA * x + cosA * y + 0.5 + shiftY
            return GlyphPoint(x: margin + rx * extent, y: margin + ry * extent)
        }

        var coverage = [Double](repeating: 0, count: size * size)
        coverage.withUnsafeMutableBufferPointer { coverage in
            for stroke in strokes {
                let radius = penRadius * g.uniform(0.9, 1.1)
                let points = stroke.points.map { p in
                    place(GlyphPoint(x: p.x + 0.025 * Double(g.nextNormal()), y: p.y + 0.025 * Double(g.nextNormal())))
                }
                var path: [GlyphPoint] = []
                switch stroke.kind {
                case .polyline:
                    path = points
                case .quadratic:
                    path = [points[0]]
                    var i = 0
                    while i + 2 < points.count {
                        let (a, b, c) = (points[i], points[i + 1], points[i + 2])
                        for step in 1...10 {
                            let t = Double(step) / 10, u = 1 - t
                            path.append(GlyphPoint(x: u * u * a.x + 2 * u * t * b.x + t * t * c.x,
                                                   y: u * u * a.y + 2 * u * t * b.y + t * t * c.y))
                        }
                        i += 2
                    }
                }
                for k in 0..<(path.count - 1) {
                    drawSegment(path[k], path[k + 1], radius: radius, size: size, into: coverage)
                }
            }
        }
        return coverage.map { UInt8(($0 * 255).rounded()) }
    }
}

/// Raises `coverage` to the pen's coverage of segment a–b at every pixel centre near it.
private func drawSegment(_ a: GlyphPoint, _ b: GlyphPoint, radius: Double, size: Int,
                         into coverage: UnsafeMutableBufferPointer<Double>) {
    let reach = radius + 0.5
    let x0 = max(Int((min(a.x, b.x) - reach).rounded(.down)), 0)
    let x1 = min(Int((max(a.x, b.x) + reach).rounded(.up)), size - 1)
    let y0 = max(Int((min(a.y, b.y) - reach).rounded(.down)), 0)
    let y1 = min(Int((max(a.y, b.y) + reach).rounded(.up)), size - 1)
    guard x0 <= x1, y0 <= y1 else { return }
    let dx = b.x - a.x, dy = b.y - a.y
    let lengthSquared = dx * dx + dy * dy
    for y in y0...y1 {
        let py = Double(y) + 0.5
        for x in x0...x1 {
            let px = Double(x) + 0.5
            var t = lengthSquared > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / lengthSquared : 0
            t = min(max(t, 0), 1)
            let ex = px - (a.x + t * dx), ey = py - (a.y + t * dy)
            let value = min(max(reach - (ex * ex + ey * ey).squareRoot(), 0), 1)
            if value > coverage[y * size + x] { coverage[y * size + x] = value }
        }
    }
}

private func distance(_ p: GlyphPoint, _ q: GlyphPoint) -> Double {
    ((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y)).squareRoot()
}

extension SeededGenerator {
    /// A uniform double in [low, high) with 24 random bits.
    fileprivate mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(nextUnitFloat())
    }
}
