/// Elementwise arithmetic with NumPy broadcasting, and its gradients.

private enum BinaryOp { case add, sub, mul, div }

@inline(__always)
private func apply(_ op: BinaryOp, _ x: Float, _ y: Float) -> Float {
    switch op {
    case .add: return x + y
    case .sub: return x - y
    case .mul: return x * y
    case .div: return x / y
    }
}

/// out[i] = a[i] op b[i] over the broadcast shape.
private func binaryKernel(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> ([Int], [Float]) {
    guard let shape = broadcastShape(a.shape, b.shape) else {
        preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let count = shape.reduce(1, *)
    let out = a.withPointer { pa in
        b.withPointer { pb in
            makeScalars(count) { po in
                if a.count == count && b.count == count {
                    switch op {
                    case .add: for i in 0..<count { po[i] = pa[i] + pb[i] }
                    case .sub: for i in 0..<count { po[i] = pa[i] - pb[i] }
                    case .mul: for i in 0..<count { po[i] = pa[i] * pb[i] }
                    case .div: for i in 0..<count { po[i] = pa[i] / pb[i] }
                    }
                    return
                }
                if b.count == 1 {
                    let s = pb[0]
                    switch op {
                    case .add: for i in 0..<count { po[i] = pa[i] + s }
                    case .sub: for i in 0..<count { po[i] = pa[i] - s }
                    case .mul: for i in 0..<count { po[i] = pa[i] * s }
                    case .div: for i in 0..<count { po[i] = pa[i] / s }
                    }
                    return
                }
                if a.count == 1 {
                    let s = pa[0]
                    switch op {
                    case .add: for i in 0..<count { po[i] = s + pb[i] }
                    case .sub: for i in 0..<count { po[i] = s - pb[i] }
                    case .mul: for i in 0..<count { po[i] = s * pb[i] }
                    case .div: for i in 0..<count { po[i] = s / pb[i] }
                    }
                    return
                }
                broadcastLoop(op, shape, pa, broadcastStrides(a.shape, to: shape),
                              pb, broadcastStrides(b.shape, to: shape), po)
            }
        }
    }
    return (shape, out)
}

/// The general broadcast loop: dimensions are merged where possible, the innermost runs contiguously.
private func broadcastLoop(_ op: BinaryOp, _ shape: [Int], _ pa: UnsafePointer<Float>, _ sa: [Int],
                           _ pb: UnsafePointer<Float>, _ sb: [Int], _ po: UnsafeMutablePointer<Float>) {
    // Merge adjacent dimensions that are contiguous for both operands.
    var dims: [Int] = [], stA: [Int] = [], stB: [Int] = []
    for i in 0..<shape.count where shape[i] != 1 {
        if let last = dims.last, stA.last! == sa[i] * shape[i], stB.last! == sb[i] * shape[i] {
            dims[dims.count - 1] = last * shape[i]
            stA[stA.count - 1] = sa[i]
            stB[stB.count - 1] = sb[i]
        } else {
            dims.append(shape[i]); stA.append(sa[i]); stB.append(sb[i])
        }
    }
    if dims.isEmpty { po[0] = apply(op, pa[0], pb[0]); return }
    let rank = dims.count
    let inner = dims[rank - 1], ia = stA[rank - 1], ib = stB[rank - 1]
    let outer = dims.reduce(1, *) / inner
    var index = [Int](repeating: 0, count: rank)
    var offA = 0, offB = 0, offO = 0
    for _ in 0..<outer {
        let a = pa + offA, b = pb + offB, o = po + offO
        switch (ia, ib) {
        case (1, 1):
            switch op {
            case .add: for j in 0..<inner { o[j] = a[j] + b[j] }
            case .sub: for j in 0..<inner { o[j] = a[j] - b[j] }
            case .mul: for j in 0..<inner { o[j] = a[j] * b[j] }
            case .div: for j in 0..<inner { o[j] = a[j] / b[j] }
            }
        case (1, 0):
            let s = b[0]
            switch op {
            case .add: for j in 0..<inner { o[j] = a[j] + s }
            case .sub: for j in 0..<inner { o[j] = a[j] - s }
            case .mul: for j in 0..<inner { o[j] = a[j] * s }
            case .div: for j in 0..<inner { o[j] = a[j] / s }
            }
        case (0, 1):
            let s = a[0]
            switch op {
            case .add: for j in 0..<inner { o[j] = s + b[j] }
            case .sub: for j in 0..<inner { o[j] = s - b[j] }
            case .mul: for j in 0..<inner { o[j] = s * b[j] }
            case .div: for j in 0..<inner { o[j] = s / b[j] }
            }
        default:
            for j in 0..<inner { o[j] = apply(op, a[j * ia], b[j * ib]) }
        }
        offO += inner
        // Advance the outer index (dimensions 0..<rank-1).
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offA += stA[d]; offB += stB[d]
            if index[d] < dims[d] { break }
            offA -= stA[d] * dims[d]; offB -= stB[d] * dims[d]
            index[d] = 0
            d -= 1
        }
    }
}

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = binaryKernel(.add, a, b)
        return record("add", shape, out, inputs: [a, b]) { g, _ in
            [g.sum(toShape: a.shape), g.sum(toShape: b.shape)]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = binaryKernel(.sub, a, b)
        return record("sub", shape, out, inputs: [a, b]) { g, _ in
            [g.sum(toShape: a.shape), -g.sum(toShape: b.shape)]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = binaryKernel(.mul, a, b)
        return record("mul", shape, out, inputs: [a, b]) { g, _ in
            [a.requiresGrad ? (g * b).sum(toShape: a.shape) : nil,
             b.requiresGrad ? (g * a).sum(toShape: b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = binaryKernel(.div, a, b)
        return record("div", shape, out, inputs: [a, b]) { g, y in
            [a.requiresGrad ? (g / b).sum(toShape: a.shape) : nil,
             b.requiresGrad ? (-(g * y) / b).sum(toShape: b.shape) : nil]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor {
        x.scaled(by: -1)
    }

    /// x · s for a constant s.
    public func scaled(by s: Float) -> Tensor {
        let out = withPointer { p in makeScalars(count) { o in for i in 0..<count { o[i] = p[i] * s } } }
        return record("scale", shape, out, inputs: [self]) { g, _ in [g.scaled(by: s)] }
    }

    /// x + s for a constant s.
    public func shifted(by s: Float) -> Tensor {
        let out = withPointer { p in makeScalars(count) { o in for i in 0..<count { o[i] = p[i] + s } } }
        return record("shift", shape, out, inputs: [self]) { g, _ in [g] }
    }

    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(by: s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(by: s) }
    public static func + (a: Tensor, s: Float) -> Tensor { a.shifted(by: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.shifted(by: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.shifted(by: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { (-a).shifted(by: s) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.scaled(by: 1 / s) }
}
