import CKernels

// MARK: - The Winograd backend (`Convolutions.usesWinograd`)
//
// One image per C call (`CKernels`): an image's values depend on that image and the weights alone, so the
// forward pass and the input gradient split the images over the threads in any way; the weight gradient sums
// images in at most `weightGradientGroups` fixed groups, added in group order. So results do not depend on the
// thread count, as on the other paths. The backend's direct first-layer kernels (`cdirect_*`, below) run through the
// same two drivers: `forEachImage` and `summedOverImages`.

/// Chunks of images for the forward pass and the input gradient: two per thread, for next-item scheduling to even
/// out the threads (an image's values do not depend on the split, so it may follow the thread count), each with
/// one workspace.
private func winogradChunks(_ g: ConvGeometry) -> Int { Swift.min(g.n, 2 * ComputeThreads.count) }

/// A buffer of `count` floats for the duration of `body`, not initialised: the per-image C kernels write what they
/// read, but for the lanes `prepare` zeroes (`cwino_prepare_workspace`: zeroing a whole Winograd workspace cost 3–4%
/// of a 5-image step).
@inline(__always)
private func withPreparedBuffer<R>(_ count: Int, prepare: (UnsafeMutablePointer<Float>) -> Void,
                                   _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    defer { p.deallocate() }
    prepare(p)
    return body(p)
}

/// Floats of a Winograd workspace for c input and o output channels on h × w planes, and its preparation.
private func winogradWorkspace(c: Int, h: Int, w: Int, o: Int)
    -> (floats: Int, prepare: (UnsafeMutablePointer<Float>) -> Void) {
    (Int(cwino_workspace_floats(Int32(c), Int32(h), Int32(w), Int32(o))),
     { cwino_prepare_workspace(Int32(c), Int32(h), Int32(w), Int32(o), $0) })
}

/// Runs `body(b, workspace)` for every image b, the images in `winogradChunks` consecutive chunks over the threads,
/// each chunk with one buffer of `floats` floats (`withPreparedBuffer`). The forward passes and input gradients of
/// the per-image kernels: an image's values do not depend on the split.
private func forEachImage(_ g: ConvGeometry, floats: Int, prepare: (UnsafeMutablePointer<Float>) -> Void,
                          _ body: (_ image: Int, _ workspace: UnsafeMutablePointer<Float>) -> Void) {
    let chunks = winogradChunks(g)
    ComputeThreads.forEach(chunks, work: g.colRows * g.colCols) { index in
        withPreparedBuffer(floats, prepare: prepare) { ws in
            for b in (index * g.n / chunks)..<((index + 1) * g.n / chunks) { body(b, ws) }
        }
    }
}

/// Σ over the images of a per-image kernel's shares of `partialSize` floats, and the bias gradient Σ g when asked:
/// images in at most `weightGradientGroups` consecutive groups, each summing its images in order into a partial
/// (`share(b, g_b, partial, accumulate, workspace)` writes image b's share into the partial, or adds it with
/// `accumulate`), partials added in group order; each group with one buffer of `floats` floats (then the scratch
/// its output gradients are made in). The same sums on any number of threads.
private func summedOverImages(_ grad: ConvOutputGradient, _ g: ConvGeometry, partialSize: Int, floats: Int,
                              prepare: (UnsafeMutablePointer<Float>) -> Void, biasGradient: UnsafeMutablePointer<Float>?,
                              _ share: (_ image: Int, _ grad: UnsafePointer<Float>, _ partial: UnsafeMutablePointer<Float>,
                                        _ accumulate: Bool, _ workspace: UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    let hw = g.ho * g.wo, outImage = g.o * hw
    let groups = Swift.min(g.n, weightGradientGroups)
    let stride = partialSize + g.o  // a partial: the shares' sum, then the bias gradient's
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: groups * stride)
    defer { partials.deallocate() }
    ComputeThreads.forEach(groups, work: g.colRows * g.colCols) { group in
        let partial = partials + group * stride, biasPartial = partial + partialSize
        biasPartial.update(repeating: 0, count: g.o)
        let first = group * g.n / groups, end = (group + 1) * g.n / groups
        withPreparedBuffer(floats + grad.scratchCount(images: 1, imageSize: outImage), prepare: prepare) { ws in
            for b in first..<end {
                grad.withImages(b, 1, imageSize: outImage, scratch: ws + floats) { pg in
                    share(b, pg, partial, b != first, ws)
                    if biasGradient != nil {
                        for ch in 0..<g.o { biasPartial[ch] += vectorSum(pg + ch * hw, hw) }
                    }
                }
            }
        }
    }
    if let biasGradient {
        sumInGroupOrder(partials + partialSize, groups: groups, stride: stride, count: g.o, into: biasGradient)
    }
    return makeScalars(partialSize) { pu in
        sumInGroupOrder(partials, groups: groups, stride: stride, count: partialSize, into: pu)
    }
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
    let workspace = winogradWorkspace(c: g.c, h: g.h, w: g.w, o: g.o)
    func run(_ pb: UnsafePointer<Float>?) {
        x.withPointer { px in
            u.withUnsafeBufferPointer { ub in
                forEachImage(g, floats: workspace.floats + output.planeFloats(outImage), prepare: workspace.prepare) { b, ws in
                    output.write(image: b, size: outImage, plane: ws + workspace.floats) { y in
                        cwino_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), px + b * inImage, ub.baseAddress!,
                                      pb, y, ws)
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
    let workspace = winogradWorkspace(c: g.o, h: g.h, w: g.w, o: g.c)
    let floats = workspace.floats + grad.scratchCount(images: 1, imageSize: outImage)
    return u.withUnsafeBufferPointer { ub in
        makeScalars(g.n * inImage) { px in
            forEachImage(g, floats: floats, prepare: workspace.prepare) { b, ws in
                grad.withImages(b, 1, imageSize: outImage, scratch: ws + workspace.floats) { pg in
                    cwino_forward(Int32(g.o), Int32(g.h), Int32(g.w), Int32(g.c), pg, ub.baseAddress!, nil,
                                  px + b * inImage, ws)
                }
            }
        }
    }
}

/// The weight gradient (and the bias gradient when asked) with Winograd: each image's transformed gradient
/// (`cwino_weight_gradient`) summed over the images (`summedOverImages`), then transformed back.
func winogradWeightGradient(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                            biasGradient: UnsafeMutablePointer<Float>?) -> [Float] {
    let size = g.o * g.colRows
    guard g.n > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: size)
    }
    _ = Convolutions.winogradConfigured
    let inImage = g.c * g.h * g.w
    let workspace = winogradWorkspace(c: g.c, h: g.h, w: g.w, o: g.o)
    let summed = x.withPointer { px in
        summedOverImages(grad, g, partialSize: 16 * g.o * g.c, floats: workspace.floats, prepare: workspace.prepare,
                         biasGradient: biasGradient) { b, pg, partial, accumulate, ws in
            cwino_weight_gradient(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), px + b * inImage, pg, partial,
                                  accumulate ? 1 : 0, ws)
        }
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
    func run(_ pb: UnsafePointer<Float>?) {
        x.withPointer { px in
            w.withPointer { pw in
                forEachImage(g, floats: scratch + output.planeFloats(outImage), prepare: { _ in }) { b, ws in
                    output.write(image: b, size: outImage, plane: ws + scratch) { y in
                        cdirect_forward(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw),
                                        Int32(g.pad), px + b * inImage, pw, pb, y, ws)
                    }
                }
            }
        }
    }
    if let bias { bias.withPointer { run($0) } } else { run(nil) }
}

/// The weight gradient (and the bias gradient when asked) of a convolution of few input channels, directly: each
/// image's gradient (`cdirect_weight_gradient`) summed over the images (`summedOverImages`).
func directWeightGradient(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                          biasGradient: UnsafeMutablePointer<Float>?) -> [Float] {
    guard g.n > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: g.o * g.colRows)
    }
    let inImage = g.c * g.h * g.w
    return x.withPointer { px in
        summedOverImages(grad, g, partialSize: g.o * g.colRows, floats: directScratchFloats(g), prepare: { _ in },
                         biasGradient: biasGradient) { b, pg, partial, accumulate, ws in
            cdirect_weight_gradient(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw),
                                    Int32(g.pad), px + b * inImage, pg, partial, accumulate ? 1 : 0, ws)
        }
    }
}

private func directScratchFloats(_ g: ConvGeometry) -> Int {
    Int(cdirect_scratch_floats(Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.kh), Int32(g.kw), Int32(g.pad)))
}
