/// Reshaping, transposition, concatenation, slicing and gathering, and their gradients.
extension Tensor {
    /// The same values with another shape of the same size (no copy). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            target[i] = known == 0 ? 0 : count / known
        }
        precondition(target.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        if target == shape { return self }
        let source = shape
        return record("reshape", target, scalars, inputs: [self]) { g, _ in [g.reshaped(source)] }
    }

    /// Dimensions reordered: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "invalid permutation \(order) for rank \(rank)")
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let inStrides = contiguousStrides(shape)
        let strides = order.map { inStrides[$0] }
        let out = withPointer { px in
            makeScalars(count) { po in
                if rank == 2 {
                    let r = outShape[0], c = outShape[1], s0 = strides[0], s1 = strides[1]
                    // Blocked transpose for cache friendliness.
                    let block = 32
                    for i0 in stride(from: 0, to: r, by: block) {
                        for j0 in stride(from: 0, to: c, by: block) {
                            for i in i0..<Swift.min(i0 + block, r) {
                                for j in j0..<Swift.min(j0 + block, c) { po[i * c + j] = px[i * s0 + j * s1] }
                            }
                        }
                    }
                    return
                }
                var index = [Int](repeating: 0, count: rank)
                var off = 0
                let inner = outShape[rank - 1], si = strides[rank - 1]
                var o = 0
                while o < count {
                    for j in 0..<inner { po[o + j] = px[off + j * si] }
                    o += inner
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1; off += strides[d]
                        if index[d] < outShape[d] { break }
                        off -= strides[d] * outShape[d]; index[d] = 0; d -= 1
                    }
                }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return record("permute", outShape, out, inputs: [self]) { g, _ in [g.permuted(inverse)] }
    }

    /// Swaps the last two dimensions.
    public func transposed() -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(rank - 1, rank - 2)
        return permuted(order)
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a], "slice \(range) out of \(shape[a])")
        if range == 0..<shape[a] { return self }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape
        outShape[a] = range.count
        let n = shape[a], len = range.count * inner
        let out = withPointer { px in
            makeScalars(outer * len) { po in
                for o in 0..<outer { (po + o * len).update(from: px + (o * n + range.lowerBound) * inner, count: len) }
            }
        }
        let full = shape
        return record("slice", outShape, out, inputs: [self]) { g, _ in [g.padded(axis: a, range, to: full)] }
    }

    /// Zeros of shape `full` with this tensor placed at `range` along `axis` (the gradient of a slice).
    func padded(axis a: Int, _ range: Range<Int>, to full: [Int]) -> Tensor {
        let outer = full[..<a].reduce(1, *), inner = full[(a + 1)...].reduce(1, *)
        let n = full[a], len = range.count * inner
        let out = withPointer { pg in
            makeZeroedScalars(full.reduce(1, *)) { po in
                for o in 0..<outer { (po + (o * n + range.lowerBound) * inner).update(from: pg + o * len, count: len) }
            }
        }
        return record("pad", full, out, inputs: [self]) { g, _ in [g.slice(axis: a, range)] }
    }

    /// Joins tensors along `axis` (all other dimensions equal).
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat needs at least one tensor")
        let first = tensors[0]
        let a = axis < 0 ? axis + first.rank : axis
        for t in tensors {
            precondition(t.rank == first.rank && t.shape.enumerated().allSatisfy { $0.offset == a || $0.element == first.shape[$0.offset] },
                         "concat: shapes \(t.shape) and \(first.shape) differ off axis \(a)")
        }
        if tensors.count == 1 { return first }
        let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
        let sizes = tensors.map { $0.shape[a] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape
        outShape[a] = total
        let out = makeScalars(outer * total * inner) { po in
            var start = 0
            for (t, n) in zip(tensors, sizes) {
                t.withPointer { pt in
                    for o in 0..<outer {
                        (po + (o * total + start) * inner).update(from: pt + o * n * inner, count: n * inner)
                    }
                }
                start += n
            }
        }
        return record("concat", outShape, out, inputs: tensors) { g, _ in
            var start = 0
            return sizes.map { n in
                defer { start += n }
                return g.slice(axis: a, start..<(start + n))
            }
        }
    }

    /// Stacks equally shaped tensors along a new `axis`.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stack needs at least one tensor")
        let r = tensors[0].rank
        let a = axis < 0 ? axis + r + 1 : axis
        return concat(tensors.map { t in
            var s = t.shape
            s.insert(1, at: a)
            return t.reshaped(s)
        }, axis: a)
    }

    /// Rows (entries along dimension 0) at `indices`, in that order.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let rowSize = shape[1...].reduce(1, *), rows = shape[0]
        precondition(indices.allSatisfy { $0 >= 0 && $0 < rows }, "gather index out of 0..<\(rows)")
        var outShape = shape
        outShape[0] = indices.count
        let out = withPointer { px in
            makeScalars(indices.count * rowSize) { po in
                for (i, r) in indices.enumerated() { (po + i * rowSize).update(from: px + r * rowSize, count: rowSize) }
            }
        }
        return record("gather", outShape, out, inputs: [self]) { g, _ in [g.scatterAddRows(indices, rows: rows)] }
    }

    /// Zeros with `rows` rows, adding row i of this tensor into row `indices[i]` (the gradient of a gather).
    public func scatterAddRows(_ indices: [Int], rows: Int) -> Tensor {
        let rowSize = shape[1...].reduce(1, *)
        var outShape = shape
        outShape[0] = rows
        let out = withPointer { pg in
            makeZeroedScalars(rows * rowSize) { po in
                for (i, r) in indices.enumerated() {
                    let o = po + r * rowSize, s = pg + i * rowSize
                    for j in 0..<rowSize { o[j] += s[j] }
                }
            }
        }
        return record("scatterAdd", outShape, out, inputs: [self]) { g, _ in [g.gatherRows(indices)] }
    }
}
