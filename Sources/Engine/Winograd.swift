import CWinograd

// MARK: - The Winograd backend (`Convolutions.usesWinograd`)
//
// One image per C call (`CWinograd`): an image's values depend on that image and the weights alone, so the
// forward pass and the input gradient split the images over the threads in any way; the weight gradient sums
// images in at most `weightGradientGroups` fixed groups, added in group order. So results do not depend on the
// thread count, as on the other paths.

/// Chunks of images for the forward pass and the input gradient: two per thread, for next-item scheduling to even
/// out the threads (an image's values do not depend on the split, so it may follow the thread count), each with
/// one workspace.
private func winogradChunks(_ g: ConvGeometry) -> Int { Swift.min(g.n, 2 * ComputeThreads.count) }

/// A zeroed buffer of `count` floats for the duration of `body`.
@inline(__always)
private func withWorkspace<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    p.initialize(repeating: 0, count: Swift.max(count, 1))
    defer { p.deallocate() }
    return body(p)
}

/// The workspace of the C calls for a convolution of `c` input and `o` output channels on h × w planes
/// (`cwino_workspace_floats`), then `extra` floats that `body` writes before it reads them, for the duration of
/// `body`. Only the lanes the calls read before writing are zeroed (`cwino_prepare_workspace`): zeroing all of
/// it cost 3–4% of a 5-image step.
@inline(__always)
private func withWinogradWorkspace<R>(c: Int, h: Int, w: Int, o: Int, extra: Int = 0,
                                      _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
    let count = Int(cwino_workspace_floats(Int32(c), Int32(h), Int32(w), Int32(o))) + extra
    let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    defer { p.deallocate() }
    cwino_prepare_workspace(Int32(c), Int32(h), Int32(w), Int32(o), p)
    return body(p)
}

/// The weights' transforms U [16, o, c] (`transposed`: of the input gradient's convolution, [16, c, o]).
private func winogradWeights(_ w: Tensor, _ g: ConvGeometry, transposed: Bool) -> [Float] {
    w.withPointer { pw in
        makeScalars(16 * g.o * g.c) { pu in
            if transposed {
                cwino_transform_weights(Int32(g.o), Int32(g.c), pw, 1, pu)
            } else {
                cwino_transform_weights(Int32(g.c), Int32(g.o), pw, 0, pu)
            }
        }
    }
}

/// Forward values with Winograd, image by image, to `output` (see `convForward`).
func winogradForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, bias: Tensor?, output: ConvForwardOutput) {
    guard g.n > 0 else { return }
    _ = Convolutions.winogradConfigured
    let u = winogradWeights(w, g, transposed: false)
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    let chunks = winogradChunks(g)
    func run(_ pb: UnsafePointer<Float>?) {
        x.withPointer { px in
            u.withUnsafeBufferPointer { ub in
                ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
                    let first = index * g.n / chunks, end = (index + 1) * g.n / chunks
                    withWinogradWorkspace(c: g.c, h: g.h, w: g.w, o: g.o) { ws in
                        let planeCount: Int
                        if case .perImage = output { planeCount = outImage } else { planeCount = 0 }
                        withWorkspace(planeCount) { plane in
                            for b in first..<end {
                                switch output {
                                case .tensor(let po):
                                    cwino_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), px + b * inImage,
                                                  ub.baseAddress!, pb, po + b * outImage, ws)
                                case .perImage(let consume):
                                    cwino_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), px + b * inImage,
                                                  ub.baseAddress!, pb, plane, ws)
                                    consume(b, plane)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let bias { bias.withPointer { run($0) } } else { run(nil) }
}

/// The input gradient with Winograd: each image's a forward from its output gradient with the weights
/// transposed and rotated by 180°.
func winogradInputGradient(_ grad: ConvOutputGradient, _ w: Tensor, _ g: ConvGeometry) -> [Float] {
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    guard g.n > 0 else { return [] }
    _ = Convolutions.winogradConfigured
    let u = winogradWeights(w, g, transposed: true)
    let chunks = winogradChunks(g)
    let workspace = Int(cwino_workspace_floats(Int32(g.o), Int32(g.h), Int32(g.w), Int32(g.c)))
    return u.withUnsafeBufferPointer { ub in
        makeScalars(g.n * inImage) { px in
            ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
                let first = index * g.n / chunks, end = (index + 1) * g.n / chunks
                withWinogradWorkspace(c: g.o, h: g.h, w: g.w, o: g.c,
                                      extra: grad.scratchCount(images: 1, imageSize: outImage)) { ws in
                    let made = ws + workspace
                    for b in first..<end {
                        grad.withImages(b, 1, imageSize: outImage, scratch: made) { pg in
                            cwino_forward(Int32(g.o), Int32(g.h), Int32(g.w), Int32(g.c), pg, ub.baseAddress!, nil,
                                          px + b * inImage, ws)
                        }
                    }
                }
            }
        }
    }
}

/// The weight gradient (and the bias gradient when asked) with Winograd: images in at most
/// `weightGradientGroups` consecutive groups, each summing its images' transformed gradients in order into a
/// partial; partials added in group order, then transformed back. The same sums on any number of threads.
func winogradWeightGradient(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                            biasGradient: UnsafeMutablePointer<Float>?) -> [Float] {
    let size = g.o * g.colRows
    guard g.n > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: size)
    }
    _ = Convolutions.winogradConfigured
    let inImage = g.c * g.h * g.w, hw = g.ho * g.wo, outImage = g.o * hw
    let groups = Swift.min(g.n, weightGradientGroups)
    let transformed = 16 * g.o * g.c
    let stride = transformed + g.o  // a partial: transformed weights, then bias
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: groups * stride)
    defer { partials.deallocate() }
    let workspace = Int(cwino_workspace_floats(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o)))
    x.withPointer { px in
        ComputeThreads.forEach(groups, work: g.colRows * g.colCols) { group in
            let partial = partials + group * stride, biasPartial = partial + transformed
            biasPartial.update(repeating: 0, count: g.o)
            let first = group * g.n / groups, end = (group + 1) * g.n / groups
            withWinogradWorkspace(c: g.c, h: g.h, w: g.w, o: g.o,
                                  extra: grad.scratchCount(images: 1, imageSize: outImage)) { ws in
                let made = ws + workspace
                for b in first..<end {
                    grad.withImages(b, 1, imageSize: outImage, scratch: made) { pg in
                        cwino_weight_gradient(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), px + b * inImage, pg,
                                              partial, b == first ? 0 : 1, ws)
                        if biasGradient != nil {
                            for ch in 0..<g.o { biasPartial[ch] += vectorSum(pg + ch * hw, hw) }
                        }
                    }
                }
            }
        }
    }
    if let biasGradient {
        sumInGroupOrder(partials + transformed, groups: groups, stride: stride, count: g.o, into: biasGradient)
    }
    let summed = makeScalars(transformed) { pu in
        sumInGroupOrder(partials, groups: groups, stride: stride, count: transformed, into: pu)
    }
    return summed.withUnsafeBufferPointer { su in
        makeScalars(size) { pw in cwino_weight_gradient_finish(Int32(g.c), Int32(g.o), su.baseAddress!, pw) }
    }
}

// MARK: - Direct convolutions of few input channels

/// The forward values of a convolution of few input channels computed directly (`cdirect_forward`: one image per
/// call, each value one chain of fused multiply-adds): the Winograd backend's first layers.
func directForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, bias: Tensor?, output: ConvForwardOutput) {
    guard g.n > 0 else { return }
    let inImage = g.c * g.h * g.w, outImage = g.o * g.ho * g.wo
    let scratch = directScratchFloats(g)
    let chunks = winogradChunks(g)
    func run(_ pb: UnsafePointer<Float>?) {
        x.withPointer { px in
            w.withPointer { pw in
                ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
                    let first = index * g.n / chunks, end = (index + 1) * g.n / chunks
                    let planeCount: Int
                    if case .perImage = output { planeCount = outImage } else { planeCount = 0 }
                    withWorkspace(scratch + planeCount) { ws in
                        let plane = ws + scratch
                        for b in first..<end {
                            switch output {
                            case .tensor(let po):
                                cdirect_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw),
                                                Int32(g.pad), px + b * inImage, pw, pb, po + b * outImage, ws)
                            case .perImage(let consume):
                                cdirect_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw),
                                                Int32(g.pad), px + b * inImage, pw, pb, plane, ws)
                                consume(b, plane)
                            }
                        }
                    }
                }
            }
        }
    }
    if let bias { bias.withPointer { run($0) } } else { run(nil) }
}

/// The weight gradient (and the bias gradient when asked) of a convolution of few input channels, directly
/// (`cdirect_weight_gradient`): images in `weightGradientGroups` consecutive groups, each summing its images'
/// gradients in order into a partial; partials added in group order. The same sums on any number of threads.
func directWeightGradient(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                          biasGradient: UnsafeMutablePointer<Float>?) -> [Float] {
    let size = g.o * g.colRows
    guard g.n > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: size)
    }
    let inImage = g.c * g.h * g.w, hw = g.ho * g.wo, outImage = g.o * hw
    let groups = Swift.min(g.n, weightGradientGroups)
    let stride = size + g.o  // a partial: weights, then bias
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: groups * stride)
    defer { partials.deallocate() }
    let scratch = directScratchFloats(g)
    x.withPointer { px in
        ComputeThreads.forEach(groups, work: g.colRows * g.colCols) { group in
            let partial = partials + group * stride, biasPartial = partial + size
            biasPartial.update(repeating: 0, count: g.o)
            let first = group * g.n / groups, end = (group + 1) * g.n / groups
            withWorkspace(scratch + grad.scratchCount(images: 1, imageSize: outImage)) { ws in
                let made = ws + scratch
                for b in first..<end {
                    grad.withImages(b, 1, imageSize: outImage, scratch: made) { pg in
                        cdirect_weight_gradient(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh),
                                                Int32(g.kw), Int32(g.pad), px + b * inImage, pg, partial,
                                                b == first ? 0 : 1, ws)
                        if biasGradient != nil {
                            for ch in 0..<g.o { biasPartial[ch] += vectorSum(pg + ch * hw, hw) }
                        }
                    }
                }
            }
        }
    }
    if let biasGradient {
        sumInGroupOrder(partials + size, groups: groups, stride: stride, count: g.o, into: biasGradient)
    }
    return makeScalars(size) { pw in sumInGroupOrder(partials, groups: groups, stride: stride, count: size, into: pw) }
}

private func directScratchFloats(_ g: ConvGeometry) -> Int {
    Int(cdirect_scratch_floats(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw), Int32(g.pad)))
}
