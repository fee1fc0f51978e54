/// Sums, means, maxima and broadcasting copies, and their gradients.

/// Adds every value of x (shape `shape`) into out (shape `target`, broadcastable to `shape`).
private func sumKernel(_ px: UnsafePointer<Float>, _ shape: [Int], _ target: [Int],
                       _ po: UnsafeMutablePointer<Float>) {
    let st = broadcastStrides(target, to: shape)
    var dims: [Int] = [], sx: [Int] = [], so: [Int] = []
    let xs = contiguousStrides(shape)
    for i in 0..<shape.count where shape[i] != 1 {
        if let last = dims.last, sx.last! == xs[i] * shape[i],
           (so.last! == 0 && st[i] == 0) || (so.last! != 0 && so.last! == st[i] * shape[i] && st[i] != 0) {
            dims[dims.count - 1] = last * shape[i]
            sx[sx.count - 1] = xs[i]
            so[so.count - 1] = st[i]
        } else {
            dims.append(shape[i]); sx.append(xs[i]); so.append(st[i])
        }
    }
    if dims.isEmpty { po[0] += px[0]; return }
    let rank = dims.count
    let inner = dims[rank - 1], io = so[rank - 1]
    let outer = dims.reduce(1, *) / inner
    var index = [Int](repeating: 0, count: rank)
    var offX = 0, offO = 0
    for _ in 0..<outer {
        let x = px + offX, o = po + offO
        if io == 0 {
            o[0] += vectorSum(x, inner)
        } else if io == 1 {
            for j in 0..<inner { o[j] += x[j] }
        } else {
            for j in 0..<inner { o[j * io] += x[j] }
        }
        offX += inner
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offO += so[d]
            if index[d] < dims[d] { break }
            offO -= so[d] * dims[d]
            index[d] = 0
            d -= 1
        }
    }
}

/// Copies x (shape `shape`) broadcast to `target`.
private func expandKernel(_ px: UnsafePointer<Float>, _ shape: [Int], _ target: [Int],
                          _ po: UnsafeMutablePointer<Float>) {
    let sx = broadcastStrides(shape, to: target)
    let count = target.reduce(1, *)
    if count == 0 { return }
    var dims: [Int] = [], ss: [Int] = []
    for i in 0..<target.count where target[i] != 1 {
        if let last = dims.last,
           (ss.last! == 0 && sx[i] == 0) || (ss.last! != 0 && sx[i] != 0 && ss.last! == sx[i] * target[i]) {
            dims[dims.count - 1] = last * target[i]
            ss[ss.count - 1] = sx[i]
        } else {
            dims.append(target[i]); ss.append(sx[i])
        }
    }
    if dims.isEmpty { po[0] = px[0]; return }
    let rank = dims.count
    let inner = dims[rank - 1], ix = ss[rank - 1]
    let outer = count / inner
    var index = [Int](repeating: 0, count: rank)
    var offX = 0, offO = 0
    for _ in 0..<outer {
        let x = px + offX, o = po + offO
        if ix == 0 {
            o.update(repeating: x[0], count: inner)
        } else if ix == 1 {
            o.update(from: x, count: inner)
        } else {
            for j in 0..<inner { o[j] = x[j * ix] }
        }
        offO += inner
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offX += ss[d]
            if index[d] < dims[d] { break }
            offX -= ss[d] * dims[d]
            index[d] = 0
            d -= 1
        }
    }
}

extension Tensor {
    /// Sums over the dimensions along which `shape` was broadcast to this tensor's shape: the gradient
    /// of a broadcast. `shape` must broadcast to `self.shape`.
    public func sum(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(broadcastShape(target, shape) == shape, "cannot sum \(shape) to \(target)")
        let out = withPointer { px in
            makeZeroedScalars(target.reduce(1, *)) { po in sumKernel(px, shape, target, po) }
        }
        let source = shape
        return record("sumTo", target, out, inputs: [self]) { g, _ in [g.expand(to: source)] }
    }

    /// This tensor broadcast (copied) to `target`.
    public func expand(to target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(broadcastShape(shape, target) == target, "cannot expand \(shape) to \(target)")
        let out = withPointer { px in
            makeScalars(target.reduce(1, *)) { po in expandKernel(px, shape, target, po) }
        }
        let source = shape
        return record("expand", target, out, inputs: [self]) { g, _ in [g.sum(toShape: source)] }
    }

    private func normalizedAxes(_ axes: [Int]) -> [Int] {
        axes.map { $0 < 0 ? $0 + rank : $0 }
    }

    /// Sum over `axes` (all axes when nil); kept as size-1 dimensions with `keepDims`.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = Set(normalizedAxes(axes ?? Array(0..<rank)))
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let reduced = sum(toShape: kept)
        if keepDims { return reduced }
        return reduced.reshaped(shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes ?? Array(0..<rank))
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims).scaled(by: 1 / Float(Swift.max(n, 1)))
    }

    /// Maximum along `axis`. The gradient flows to the first maximal element.
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        var mask = [Float](repeating: 0, count: count)
        let out = withPointer { px in
            mask.withUnsafeMutableBufferPointer { pm in
                makeScalars(outer * inner) { po in
                    for o in 0..<outer {
                        for i in 0..<inner {
                            var best = px[o * n * inner + i], bestJ = 0
                            for j in 1..<Swift.max(n, 1) where px[(o * n + j) * inner + i] > best {
                                best = px[(o * n + j) * inner + i]; bestJ = j
                            }
                            po[o * inner + i] = best
                            pm[(o * n + bestJ) * inner + i] = 1
                        }
                    }
                }
            }
        }
        var kept = shape
        kept[a] = 1
        let maskTensor = Tensor(shape: shape, scalars: mask)
        let source = shape
        let result = record("max", kept, out, inputs: [self]) { g, _ in [g.expand(to: source) * maskTensor] }
        return keepDims ? result : result.reshaped(shape.enumerated().filter { $0.offset != a }.map(\.element))
    }
}
