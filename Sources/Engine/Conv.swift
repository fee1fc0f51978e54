/// 2-D convolution through im2col and OpenBLAS sgemm (or oneDNN or Winograd: `Convolutions`), max-pooling, and their gradients.
///
/// The convolution's two gradients are operations of their own, each differentiable in terms of the
/// three (all three are bilinear), so convolutions support gradients of any order.

/// The sizes of one convolution.
struct ConvGeometry: Equatable {
    let n, c, h, w, o, kh, kw, stride, pad: Int
    var ho: Int { (h + 2 * pad - kh) / stride + 1 }
    var wo: Int { (w + 2 * pad - kw) / stride + 1 }
    var colRows: Int { c * kh * kw }
    var colCols: Int { n * ho * wo }
    /// Stride 1 and output size = input size (Conv4's 3×3 with padding 1).
    var isSame: Bool { stride == 1 && ho == h && wo == w && pad < kh && pad < kw }

    init(input: [Int], weight: [Int], stride: Int, pad: Int) {
        precondition(input.count == 4 && weight.count == 4, "conv2d needs NCHW input and OIHW weights")
        precondition(input[1] == weight[1], "conv2d: input has \(input[1]) channels, weights expect \(weight[1])")
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (weight[0], weight[2], weight[3])
        (self.stride, self.pad) = (stride, pad)
        precondition(stride >= 1 && h + 2 * pad >= kh && w + 2 * pad >= kw, "conv2d: kernel larger than padded input")
    }
}

/// cols[(c·kh + i)·kw + j][(n·ho + y)·wo + x] = input[n, c, y·s − p + i, x·s − p + j] (0 outside), for
/// the images `first ..< first + count` (n counted from `first`).
private func im2col(_ px: UnsafePointer<Float>, _ g: ConvGeometry, first: Int, count: Int,
                    _ pc: UnsafeMutablePointer<Float>) {
    let ho = g.ho, wo = g.wo, cols = count * ho * wo
    if g.isSame {
        // "Same" convolution (stride 1, output size = input size): the block of one kernel offset (i, j) is
        // the input plane shifted by (i − p)·w + (j − p), so it is one contiguous copy, then the rows
        // outside the image and the columns that wrapped around are zeroed.
        let w = g.w, h = g.h, plane = h * w
        for c in 0..<g.c {
            for i in 0..<g.kh {
                let dy = i - g.pad
                let yLo = Swift.max(0, -dy), yHi = Swift.min(h, h - dy)
                for j in 0..<g.kw {
                    let dx = j - g.pad
                    let row = pc + ((c * g.kh + i) * g.kw + j) * cols
                    for n in 0..<count {
                        let dst = row + n * plane
                        let src = px + ((first + n) * g.c + c) * plane
                        if yLo >= yHi {
                            dst.update(repeating: 0, count: plane)
                            continue
                        }
                        let lo = yLo * w + Swift.max(0, -dx), hi = yHi * w - Swift.max(0, dx)
                        if lo > 0 { dst.update(repeating: 0, count: lo) }
                        (dst + lo).update(from: src + lo + dy * w + dx, count: hi - lo)
                        if hi < plane { (dst + hi).update(repeating: 0, count: plane - hi) }
                        if dx < 0 {
                            for y in yLo..<yHi { for x in 0..<(-dx) { dst[y * w + x] = 0 } }
                        } else if dx > 0 {
                            for y in yLo..<yHi { for x in (w - dx)..<w { dst[y * w + x] = 0 } }
                        }
                    }
                }
            }
        }
        return
    }
    for c in 0..<g.c {
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let row = pc + ((c * g.kh + i) * g.kw + j) * cols
                // Output columns x whose input column x·s − p + j lies inside 0..<w.
                let xLo = j >= g.pad ? 0 : (g.pad - j + g.stride - 1) / g.stride
                let xHi = Swift.min(wo, g.w + g.pad - j <= 0 ? 0 : (g.w + g.pad - j - 1) / g.stride + 1)
                for n in 0..<count {
                    let plane = px + ((first + n) * g.c + c) * g.h * g.w
                    for y in 0..<ho {
                        let dst = row + (n * ho + y) * wo
                        let iy = y * g.stride - g.pad + i
                        // Plain loops: rows are short, and library calls would cost more than the copy.
                        if iy < 0 || iy >= g.h || xLo >= xHi {
                            for x in 0..<wo { dst[x] = 0 }
                            continue
                        }
                        for x in 0..<xLo { dst[x] = 0 }
                        let src = plane + iy * g.w - g.pad + j
                        if g.stride == 1 {
                            for x in xLo..<xHi { dst[x] = src[x] }
                        } else {
                            for x in xLo..<xHi { dst[x] = src[x * g.stride] }
                        }
                        for x in xHi..<wo { dst[x] = 0 }
                    }
                }
            }
        }
    }
}

/// The adjoint of im2col: adds each column entry back into the input position it was copied from.
private func col2im(_ pc: UnsafeMutablePointer<Float>, _ g: ConvGeometry, first: Int, count: Int,
                    _ px: UnsafeMutablePointer<Float>) {
    let ho = g.ho, wo = g.wo, cols = count * ho * wo
    if g.isSame {
        // The adjoint of the contiguous copy above: zero the (scratch) entries that wrapped around, then
        // add each block into the shifted plane in one run.
        let w = g.w, h = g.h, plane = h * w
        for c in 0..<g.c {
            for i in 0..<g.kh {
                let dy = i - g.pad
                let yLo = Swift.max(0, -dy), yHi = Swift.min(h, h - dy)
                if yLo >= yHi { continue }
                for j in 0..<g.kw {
                    let dx = j - g.pad
                    let row = pc + ((c * g.kh + i) * g.kw + j) * cols
                    let lo = yLo * w + Swift.max(0, -dx), hi = yHi * w - Swift.max(0, dx)
                    for n in 0..<count {
                        let src = row + n * plane
                        if dx < 0 {
                            for y in yLo..<yHi { for x in 0..<(-dx) { src[y * w + x] = 0 } }
                        } else if dx > 0 {
                            for y in yLo..<yHi { for x in (w - dx)..<w { src[y * w + x] = 0 } }
                        }
                        let dst = px + ((first + n) * g.c + c) * plane + dy * w + dx
                        for k in lo..<hi { dst[k] += src[k] }
                    }
                }
            }
        }
        return
    }
    for c in 0..<g.c {
        for i in 0..<g.kh {
            for j in 0..<g.kw {
                let row = pc + ((c * g.kh + i) * g.kw + j) * cols
                let xLo = j >= g.pad ? 0 : (g.pad - j + g.stride - 1) / g.stride
                let xHi = Swift.min(wo, g.w + g.pad - j <= 0 ? 0 : (g.w + g.pad - j - 1) / g.stride + 1)
                if xLo >= xHi { continue }
                for n in 0..<count {
                    let plane = px + ((first + n) * g.c + c) * g.h * g.w
                    for y in 0..<ho {
                        let iy = y * g.stride - g.pad + i
                        if iy < 0 || iy >= g.h { continue }
                        let src = row + (n * ho + y) * wo
                        let dst = plane + iy * g.w - g.pad + j
                        if g.stride == 1 {
                            for x in xLo..<xHi { dst[x] += src[x] }
                        } else {
                            for x in xLo..<xHi { dst[x * g.stride] += src[x] }
                        }
                    }
                }
            }
        }
    }
}

/// Gradient rows [o, count·hw] from images `first ..< first + count` of g [n, o, hw].
private func channelsFirst(_ p: UnsafePointer<Float>, o: Int, hw: Int, first: Int, count: Int,
                           _ out: UnsafeMutablePointer<Float>) {
    for b in 0..<count {
        for ch in 0..<o {
            (out + ch * count * hw + b * hw).update(from: p + ((first + b) * o + ch) * hw, count: hw)
        }
    }
}

/// Images are processed in chunks whose im2col buffer stays small (cache-resident, no fresh pages).
private let columnBudget = 1 << 19

/// Output planes at least this large get one product per image, written straight into the NCHW output
/// (and gradients read straight from it); smaller planes are gathered into one product per chunk, which
/// then needs a transpose.
private let perImagePlane = 128

/// How a convolution's images are split into chunks: `count` consecutive ranges of at most `largest` images,
/// each chunk's columns within the column budget. A function of the shape only (never of the thread count).
///
/// A gathered product's values depend on how many images it gathers (OpenBLAS's edge kernels), and the
/// weight gradient sums its chunks in order, so those keep the budget's split: chunks of `largest` images,
/// the last one shorter. One product per image (planes of at least `perImagePlane`) gives the same values
/// however the images are split, so there the forward and input-gradient passes split evenly instead — at
/// least `weightGradientGroups` chunks when the convolution is large enough to run in parallel, a multiple
/// of it beyond — so that 2, 4 or 8 threads get equal shares (the budget's split of 80 first-layer images
/// was 74 + 6).
struct ConvChunks {
    let images: Int
    let count: Int
    let largest: Int
    private let even: Bool

    init(_ g: ConvGeometry, summing: Bool = false) {
        images = g.n
        let perImage = Swift.max(1, g.colRows * g.ho * g.wo)
        let budgeted = Swift.max(1, Swift.min(g.n, columnBudget / perImage))
        var count = (g.n + budgeted - 1) / budgeted
        even = !summing && g.ho * g.wo >= perImagePlane
        if even && perImage * g.n >= ComputeThreads.parallelThreshold {
            let groups = weightGradientGroups
            count = count <= groups ? Swift.min(g.n, groups) : Swift.min(g.n, (count + groups - 1) / groups * groups)
        }
        self.count = count
        largest = even ? (count == 0 ? 1 : (g.n + count - 1) / count) : budgeted
    }

    /// Chunk `index`'s first image and image count.
    @inline(__always)
    func range(_ index: Int) -> (first: Int, count: Int) {
        if even {
            let first = index * images / count
            return (first, (index + 1) * images / count - first)
        }
        let first = index * largest
        return (first, Swift.min(largest, images - first))
    }
}

/// Runs `body(chunkIndex, first, count)` for each chunk of images, on several threads when the
/// convolution is large (chunks write disjoint parts of the output).
@inline(__always)
private func forEachChunk(_ g: ConvGeometry, _ body: (_ index: Int, _ first: Int, _ count: Int) -> Void) {
    let chunks = ConvChunks(g)
    ComputeThreads.forEach(chunks.count, work: g.colRows * g.colCols) { index in
        let (first, count) = chunks.range(index)
        body(index, first, count)
    }
}

/// A scratch buffer of `count` floats for the duration of `body`.
@inline(__always)
private func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
    defer { p.deallocate() }
    return body(p)
}

/// The convolution's forward values [N, O, Ho, Wo] for input x, weights w and an optional bias; with `inspect`,
/// each image's values are handed to it as soon as they are final (see `ConvForwardOutput.tensorThen`).
private func convForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, bias: Tensor?,
                         inspect: ((_ image: Int, _ values: UnsafePointer<Float>) -> Void)? = nil) -> [Float] {
    makeScalars(g.n * g.o * g.ho * g.wo) { po in
        if let inspect {
            convForward(x, w, g, bias: bias, output: .tensorThen(po, inspect))
        } else {
            convForward(x, w, g, bias: bias, output: .tensor(po))
        }
    }
}

/// Where `convForward` puts each image's values [O, Ho·Wo].
enum ConvForwardOutput {
    /// Straight into the NCHW output [N, O, Ho, Wo] at this address.
    case tensor(UnsafeMutablePointer<Float>)
    /// Into a scratch plane that stays in cache, then `consume(image, values)` (called on the thread that
    /// computed the image; images of different chunks may be consumed concurrently).
    case perImage(_ consume: (_ image: Int, _ values: UnsafeMutablePointer<Float>) -> Void)
    /// Straight into the NCHW output, then `inspect(image, values)` reads each image's values there as soon as
    /// they are final, while they are in cache (on the thread that computed the image, as `perImage`).
    case tensorThen(UnsafeMutablePointer<Float>, _ inspect: (_ image: Int, _ values: UnsafePointer<Float>) -> Void)
}

extension ConvForwardOutput {
    /// Floats of the plane an image's values go to before `consume` (none when they go straight to the output).
    func planeFloats(_ imageSize: Int) -> Int {
        if case .perImage = self { return imageSize }
        return 0
    }

    /// The output tensor's address, when the values go there.
    var tensor: UnsafeMutablePointer<Float>? {
        switch self {
        case .tensor(let po), .tensorThen(let po, _): return po
        case .perImage: return nil
        }
    }

    /// Image b's values (`size` floats) are final at `values` (the output tensor's image, or the scratch plane):
    /// hands them to the consumer or the inspector, if any.
    @inline(__always)
    func finished(image b: Int, size: Int, values: UnsafeMutablePointer<Float>) {
        switch self {
        case .tensor: break
        case .perImage(let consume): consume(b, values)
        case .tensorThen(_, let inspect): inspect(b, values)
        }
    }

    /// `compute(destination)` for image b: the output tensor's image, or `plane`, then handed to the consumer.
    @inline(__always)
    func write(image b: Int, size: Int, plane: UnsafeMutablePointer<Float>,
               _ compute: (UnsafeMutablePointer<Float>) -> Void) {
        let destination = tensor.map { $0 + b * size } ?? plane
        compute(destination)
        finished(image: b, size: size, values: destination)
    }
}

/// The convolution's forward values, image by image, to `output`: the same products, the same bias additions
/// and so the same values whichever the output.
func convForward(_ x: Tensor, _ w: Tensor, _ g: ConvGeometry, bias: Tensor?, output: ConvForwardOutput) {
    if Convolutions.usesOneDNN(g) { return oneDNNForward(x, w, g, bias: bias, output: output) }
    if Convolutions.usesWinograd(g) { return winogradForward(x, w, g, bias: bias, output: output) }
    if Convolutions.usesDirect(g) { return directForward(x, w, g, bias: bias, output: output) }
    let hw = g.ho * g.wo
    let chunkCols = ConvChunks(g).largest * hw
    let biasValues = bias?.scalars
    x.withPointer { px in
        w.withPointer { pw in
            forEachChunk(g) { _, first, count in
                withScratch(g.colRows * chunkCols) { cols in
                    // One image's values when they go to `consume` (unused otherwise).
                    withScratch({ if case .perImage = output { return g.o * hw } else { return 0 } }()) { plane in
                        func destination(_ image: Int) -> UnsafeMutablePointer<Float> {
                            output.tensor.map { $0 + image * g.o * hw } ?? plane
                        }
                        func finish(_ image: Int) {
                            output.finished(image: image, size: g.o * hw, values: destination(image))
                        }
                        let n = count * hw
                        im2col(px, g, first: first, count: count, cols)
                        if hw >= perImagePlane {
                            for b in 0..<count {
                                let dst = destination(first + b)
                                BLAS.sgemm(transA: false, transB: false, m: g.o, n: hw, k: g.colRows,
                                           a: pw, lda: g.colRows, b: cols + b * hw, ldb: n, c: dst, ldc: hw)
                                if let biasValues {
                                    for ch in 0..<g.o {
                                        let bv = biasValues[ch], d = dst + ch * hw
                                        for k in 0..<hw { d[k] += bv }
                                    }
                                }
                                finish(first + b)
                            }
                            return
                        }
                        withScratch(g.o * chunkCols) { product in
                            BLAS.sgemm(transA: false, transB: false, m: g.o, n: n, k: g.colRows,
                                       a: pw, lda: g.colRows, b: cols, ldb: n, c: product, ldc: n)
                            // [o, count·hw] → [count, o, hw], adding the bias on the way.
                            for b in 0..<count {
                                let image = destination(first + b)
                                for ch in 0..<g.o {
                                    let src = product + ch * n + b * hw
                                    let dst = image + ch * hw
                                    if let biasValues {
                                        let bv = biasValues[ch]
                                        for k in 0..<hw { dst[k] = src[k] + bv }
                                    } else {
                                        dst.update(from: src, count: hw)
                                    }
                                }
                                finish(first + b)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The gradient of a convolution's output [N, O, Ho, Wo] as the backward products read it: a tensor's values,
/// or values made on demand for a range of images into a scratch buffer, so that the whole gradient is never
/// held at once (the training block `convBatchNormMaxPoolReLU`). The products are the same either way.
enum ConvOutputGradient {
    case values(UnsafePointer<Float>)
    case images(_ make: (_ first: Int, _ count: Int, _ into: UnsafeMutablePointer<Float>) -> Void)

    /// Images `first ..< first + count` ([count, O, Ho, Wo], `imageSize` = O·Ho·Wo values each) for `body`.
    @inline(__always)
    func withImages<R>(_ first: Int, _ count: Int, imageSize: Int, _ body: (UnsafePointer<Float>) -> R) -> R {
        withScratch(scratchCount(images: count, imageSize: imageSize)) { scratch in
            withImages(first, count, imageSize: imageSize, scratch: scratch, body)
        }
    }

    /// The same, made values going into `scratch` (`scratchCount(images: count, …)` floats, a buffer a loop over
    /// images allocates once).
    @inline(__always)
    func withImages<R>(_ first: Int, _ count: Int, imageSize: Int, scratch: UnsafeMutablePointer<Float>,
                       _ body: (UnsafePointer<Float>) -> R) -> R {
        switch self {
        case .values(let p):
            return body(p + first * imageSize)
        case .images(let make):
            make(first, count, scratch)
            return body(scratch)
        }
    }

    /// Floats of scratch `withImages` needs for `count` images: none when the values are there already.
    func scratchCount(images count: Int, imageSize: Int) -> Int {
        if case .images = self { return count * imageSize }
        return 0
    }
}

/// The input gradient col2im(Wᵀ · g) of a convolution.
private func convInputGradientValues(_ grad: Tensor, _ w: Tensor, _ g: ConvGeometry) -> [Float] {
    grad.withPointer { convInputGradientValues(.values($0), w, g) }
}

/// The input gradient col2im(Wᵀ · g) of a convolution, g from `grad`.
func convInputGradientValues(_ grad: ConvOutputGradient, _ w: Tensor, _ g: ConvGeometry) -> [Float] {
    if Convolutions.usesOneDNN(g) { return oneDNNInputGradient(grad, w, g) }
    if Convolutions.usesWinograd(g) { return winogradInputGradient(grad, w, g) }
    let hw = g.ho * g.wo
    let chunkCols = ConvChunks(g).largest * hw
    // Wᵀ [colRows, o], made once and shared by the products of every chunk or image.
    let wt = w.withPointer { pw in
        makeScalars(g.colRows * g.o) { pt in
            for ch in 0..<g.o { for r in 0..<g.colRows { pt[r * g.o + ch] = pw[ch * g.colRows + r] } }
        }
    }
    let outImage = g.o * hw
    return wt.withUnsafeBufferPointer { wtBuffer in
        let pw = wtBuffer.baseAddress!
        return makeZeroedScalars(g.n * g.c * g.h * g.w) { px in
            forEachChunk(g) { _, first, count in
                withScratch(g.colRows * chunkCols) { dcols in
                    let n = count * hw
                    if hw >= perImagePlane {
                        withScratch(grad.scratchCount(images: 1, imageSize: outImage)) { made in
                            for b in 0..<count {
                                grad.withImages(first + b, 1, imageSize: outImage, scratch: made) { pg in
                                    BLAS.sgemm(transA: false, transB: false, m: g.colRows, n: hw, k: g.o,
                                               a: pw, lda: g.o, b: pg, ldb: hw, c: dcols + b * hw, ldc: n)
                                }
                            }
                        }
                    } else {
                        withScratch(g.o * chunkCols) { gcol in
                            grad.withImages(first, count, imageSize: outImage) { pg in
                                channelsFirst(pg, o: g.o, hw: hw, first: 0, count: count, gcol)
                            }
                            BLAS.sgemm(transA: false, transB: false, m: g.colRows, n: n, k: g.o,
                                       a: pw, lda: g.o, b: gcol, ldb: n, c: dcols, ldc: n)
                        }
                    }
                    col2im(dcols, g, first: first, count: count, px)
                }
            }
        }
    }
}

/// The weight gradient Σ g · im2col(x)ᵀ of a convolution and, when asked, the bias gradient Σ g.
/// Chunks are split into at most `weightGradientGroups` consecutive groups, each summing its own partial
/// gradient; partials are added in group order, so the result is the same on any number of threads.
private func convWeightGradientValues(_ x: Tensor, _ grad: Tensor, _ g: ConvGeometry,
                                      biasGradient: UnsafeMutablePointer<Float>? = nil) -> [Float] {
    grad.withPointer { convWeightGradientValues(x, .values($0), g, biasGradient: biasGradient) }
}

/// The weight gradient (and the bias gradient when asked) of a convolution, g from `grad`.
func convWeightGradientValues(_ x: Tensor, _ grad: ConvOutputGradient, _ g: ConvGeometry,
                              biasGradient: UnsafeMutablePointer<Float>? = nil) -> [Float] {
    if Convolutions.usesOneDNN(g) { return oneDNNWeightGradient(x, grad, g, biasGradient: biasGradient) }
    if Convolutions.usesWinograd(g) { return winogradWeightGradient(x, grad, g, biasGradient: biasGradient) }
    if Convolutions.usesDirect(g) { return directWeightGradient(x, grad, g, biasGradient: biasGradient) }
    let hw = g.ho * g.wo
    let plan = ConvChunks(g, summing: true), chunkCols = plan.largest * hw
    let chunks = plan.count
    let groups = Swift.min(chunks, weightGradientGroups)
    let size = g.o * g.colRows
    guard groups > 0 else {
        biasGradient?.update(repeating: 0, count: g.o)
        return [Float](repeating: 0, count: size)
    }
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: groups * size)
    defer { partials.deallocate() }
    let biasPartials = UnsafeMutablePointer<Float>.allocate(capacity: groups * g.o)
    defer { biasPartials.deallocate() }
    let outImage = g.o * hw
    x.withPointer { px in
        ComputeThreads.forEach(groups, work: g.colRows * g.colCols) { group in
            let partial = partials + group * size, biasPartial = biasPartials + group * g.o
            biasPartial.update(repeating: 0, count: g.o)
            withScratch(g.colRows * chunkCols) { cols in
              // One image's gradient at a time, when it is made on demand (one product per image, below).
              withScratch(hw >= perImagePlane ? grad.scratchCount(images: 1, imageSize: outImage) : 0) { made in
                for index in (group * chunks / groups)..<((group + 1) * chunks / groups) {
                    let (first, count) = plan.range(index)
                    let n = count * hw
                    let accumulate: Float = index == group * chunks / groups ? 0 : 1
                    im2col(px, g, first: first, count: count, cols)
                    if hw >= perImagePlane {
                        for b in 0..<count {
                            grad.withImages(first + b, 1, imageSize: outImage, scratch: made) { gb in
                                BLAS.sgemm(transA: false, transB: true, m: g.o, n: g.colRows, k: hw,
                                           a: gb, lda: hw, b: cols + b * hw, ldb: n,
                                           beta: b == 0 ? accumulate : 1, c: partial, ldc: g.colRows)
                                if biasGradient != nil {
                                    for ch in 0..<g.o { biasPartial[ch] += vectorSum(gb + ch * hw, hw) }
                                }
                            }
                        }
                        continue
                    }
                    withScratch(g.o * chunkCols) { gcol in
                        grad.withImages(first, count, imageSize: outImage) { pg in
                            channelsFirst(pg, o: g.o, hw: hw, first: 0, count: count, gcol)
                        }
                        BLAS.sgemm(transA: false, transB: true, m: g.o, n: g.colRows, k: n,
                                   a: gcol, lda: n, b: cols, ldb: n, beta: accumulate, c: partial, ldc: g.colRows)
                        if biasGradient != nil {
                            for ch in 0..<g.o { biasPartial[ch] += vectorSum(gcol + ch * n, n) }
                        }
                    }
                }
              }
            }
        }
    }
    if let biasGradient {
        sumInGroupOrder(biasPartials, groups: groups, stride: g.o, count: g.o, into: biasGradient)
    }
    return makeScalars(size) { pw in
        sumInGroupOrder(partials, groups: groups, stride: size, count: size, into: pw)
    }
}

/// Groups of chunks with a partial weight gradient each (a fixed number, so sums do not depend on the
/// thread count; more than the threads of this engine will ever use). Both convolution backends use it.
let weightGradientGroups = 8

/// destination[k] = partials[k] + partials[stride + k] + … over `groups` partials `stride` apart, added in group
/// order (so the sum does not depend on which thread made which partial).
func sumInGroupOrder(_ partials: UnsafePointer<Float>, groups: Int, stride: Int, count: Int,
                     into destination: UnsafeMutablePointer<Float>) {
    destination.update(from: partials, count: count)
    for group in 1..<Swift.max(groups, 1) {
        let p = partials + group * stride
        for k in 0..<count { destination[k] += p[k] }
    }
}

extension Tensor {
    /// 2-D convolution (cross-correlation, as PyTorch's `conv2d`): input [N, C, H, W], weight
    /// [O, C, kH, kW], optional bias [O]; output [N, O, Ho, Wo].
    public static func conv2d(_ x: Tensor, weight w: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        conv2d(x, weight: w, bias: bias, stride: stride, padding: padding, inspect: nil)
    }

    /// `conv2d`, with each image's output values [O, Ho·Wo] handed to `inspect` as soon as they are final (on the
    /// thread that made them, while they are in cache; images of different chunks concurrently).
    static func conv2d(_ x: Tensor, weight w: Tensor, bias: Tensor?, stride: Int, padding: Int,
                       inspect: ((_ image: Int, _ values: UnsafePointer<Float>) -> Void)?) -> Tensor {
        let g = ConvGeometry(input: x.shape, weight: w.shape, stride: stride, pad: padding)
        if let bias { precondition(bias.shape == [g.o], "conv2d: bias shape \(bias.shape), expected [\(g.o)]") }
        let out = convForward(x, w, g, bias: bias, inspect: inspect)
        let inputs = bias.map { [x, w, $0] } ?? [x, w]
        return record("conv2d", [g.n, g.o, g.ho, g.wo], out, inputs: inputs) { grad, _ in
            if !GradMode.isEnabled, let bias, bias.requiresGrad, w.requiresGrad {
                // First order: weight and bias gradients in one pass over the gradient.
                var biasGradient = [Float](repeating: 0, count: g.o)
                let dw = biasGradient.withUnsafeMutableBufferPointer {
                    convWeightGradientValues(x, grad, g, biasGradient: $0.baseAddress!)
                }
                return [x.requiresGrad ? convInputGradient(grad, weight: w, geometry: g) : nil,
                        Tensor(shape: w.shape, scalars: dw), Tensor(shape: [g.o], scalars: biasGradient)]
            }
            var result: [Tensor?] = [
                x.requiresGrad ? convInputGradient(grad, weight: w, geometry: g) : nil,
                w.requiresGrad ? convWeightGradient(x, grad, geometry: g) : nil,
            ]
            if let bias { result.append(bias.requiresGrad ? grad.sum(axes: [0, 2, 3]) : nil) }
            return result
        }
    }

    /// The gradient of a convolution with respect to its input: col2im(Wᵀ · g).
    static func convInputGradient(_ grad: Tensor, weight w: Tensor, geometry g: ConvGeometry) -> Tensor {
        record("convInputGrad", [g.n, g.c, g.h, g.w], convInputGradientValues(grad, w, g), inputs: [grad, w]) { h, _ in
            [grad.requiresGrad ? conv2d(h, weight: w, stride: g.stride, padding: g.pad) : nil,
             w.requiresGrad ? convWeightGradient(h, grad, geometry: g) : nil]
        }
    }

    /// The gradient of a convolution with respect to its weights: g · im2col(x)ᵀ.
    static func convWeightGradient(_ x: Tensor, _ grad: Tensor, geometry g: ConvGeometry) -> Tensor {
        record("convWeightGrad", [g.o, g.c, g.kh, g.kw], convWeightGradientValues(x, grad, g), inputs: [x, grad]) { h, _ in
            [x.requiresGrad ? convInputGradient(grad, weight: h, geometry: g) : nil,
             grad.requiresGrad ? conv2d(x, weight: h, stride: g.stride, padding: g.pad) : nil]
        }
    }

    /// Max-pooling over non-overlapping `size`×`size` windows (stride = size, remainder dropped, as
    /// PyTorch's `max_pool2d(x, size)`). The gradient flows to the first maximum of each window.
    public func maxPool2d(_ size: Int = 2) -> Tensor {
        precondition(rank == 4, "maxPool2d needs NCHW input, got \(shape)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let ho = h / size, wo = w / size
        var indices = [Int32](repeating: 0, count: n * c * ho * wo)
        let out = withPointer { px in
            indices.withUnsafeMutableBufferPointer { pi in
                makeScalars(n * c * ho * wo) { po in
                    for plane in 0..<(n * c) {
                        let base = plane * h * w
                        for y in 0..<ho {
                            for x in 0..<wo {
                                var bestIndex = base + (y * size) * w + x * size
                                var best = px[bestIndex]
                                for i in 0..<size {
                                    for j in 0..<size {
                                        let idx = base + (y * size + i) * w + x * size + j
                                        if px[idx] > best { best = px[idx]; bestIndex = idx }
                                    }
                                }
                                let o = (plane * ho + y) * wo + x
                                po[o] = best
                                pi[o] = Int32(bestIndex)
                            }
                        }
                    }
                }
            }
        }
        let inputShape = shape
        return record("maxPool2d", [n, c, ho, wo], out, inputs: [self]) { g, _ in
            [g.scatterFlat(indices, shape: inputShape)]
        }
    }

    /// Zeros of `shape`, adding value i at flat position `indices[i]`.
    func scatterFlat(_ indices: [Int32], shape outShape: [Int]) -> Tensor {
        let out = withPointer { pg in
            indices.withUnsafeBufferPointer { pi in
                makeZeroedScalars(outShape.reduce(1, *)) { po in
                    for i in 0..<count { po[Int(pi[i])] += pg[i] }
                }
            }
        }
        let myShape = shape
        return record("scatterFlat", outShape, out, inputs: [self]) { h, _ in [h.gatherFlat(indices, shape: myShape)] }
    }

    /// Values at flat positions `indices`, shaped `shape`.
    func gatherFlat(_ indices: [Int32], shape outShape: [Int]) -> Tensor {
        let out = withPointer { px in
            indices.withUnsafeBufferPointer { pi in
                makeScalars(indices.count) { po in for i in 0..<indices.count { po[i] = px[Int(pi[i])] } }
            }
        }
        let myShape = shape
        return record("gatherFlat", outShape, out, inputs: [self]) { h, _ in [h.scatterFlat(indices, shape: myShape)] }
    }
}
