import Engine
import Foundation
@testable import Runner
import XCTest

final class PeakMemoryTests: XCTestCase {
    private let mebibyte = 1 << 20

    /// Maps, touches and unmaps `bytes` at once: a peak far shorter than any sampling interval. The tests
    /// touch 8 MiB more than they require to see, since the kernel's resident-memory counters are
    /// per-CPU and may lag by a few hundred KiB.
    private func spike(_ bytes: Int) throws {
        guard let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              memory != MAP_FAILED else { throw XCTSkip("cannot map \(bytes) bytes") }
        memset(memory, 1, bytes)
        munmap(memory, bytes)
    }

    private func requireProc() throws -> Int {
        guard PeakMemory.highWaterBytes() != nil, let resident = ResidentMemory.currentBytes() else {
            throw XCTSkip("/proc/self/status has no VmHWM here")
        }
        return resident
    }

    private func requireReset() throws {
        guard PeakMemory.resetHighWater() else {
            throw XCTSkip("/proc/self/clear_refs is not writable here: the high-water mark cannot be reset")
        }
    }

    func testAShortPeakIsMeasured() throws {
        _ = try requireProc()
        let meter = PeakMemorySampler()
        // Resident memory once the meter started (it gives the allocator's free pages back first).
        let baseline = try XCTUnwrap(ResidentMemory.currentBytes())
        try spike(208 * mebibyte)
        let peak = try XCTUnwrap(meter.stop())
        XCTAssertGreaterThanOrEqual(peak, baseline + 200 * mebibyte, "peak \(peak), baseline \(baseline)")
        XCTAssertEqual(meter.stop(), peak, "stop() keeps its figure")
        let resident = try XCTUnwrap(ResidentMemory.currentBytes())
        XCTAssertLessThan(resident, baseline + 100 * mebibyte, "the spike was freed")
        if PeakMemory.resetHighWater() { XCTAssertTrue(meter.isExact) }
    }

    func testAfterAResetAnEarlierPeakIsNotCounted() throws {
        let baseline = try requireProc()
        try requireReset()
        try spike(200 * mebibyte)
        let meter = PeakMemorySampler()
        let peak = try XCTUnwrap(meter.stop())
        XCTAssertTrue(meter.isExact)
        XCTAssertLessThan(peak, baseline + 100 * mebibyte, "peak \(peak), baseline \(baseline)")
    }

    /// Memory an earlier stretch freed but the allocator kept (blocks below glibc's mmap threshold, two of every
    /// three freed, so that the live third keeps them inside the heap, where free() cannot give them back by
    /// trimming its top) is not this stretch's: the sampler returns it to the kernel before it resets the
    /// high-water mark. Before it did, a cell's peak depended on the cells run earlier in the process.
    func testMemoryFreedButKeptByTheAllocatorIsNotCounted() throws {
        _ = try requireProc()
        try requireReset()
        let blockSize = 64 << 10
        let allocated = (0..<4800).map { _ in malloc(blockSize) }
        let blocks = allocated.compactMap { $0 }
        guard blocks.count == allocated.count else {
            blocks.forEach { free($0) }
            throw XCTSkip("cannot allocate 300 MiB")
        }
        for block in blocks { memset(block, 1, blockSize) }
        let live = blocks.enumerated().filter { $0.offset % 3 == 2 }.map(\.element)
        defer { live.forEach { free($0) } }
        let beforeFree = try XCTUnwrap(ResidentMemory.currentBytes())
        blocks.enumerated().filter { $0.offset % 3 != 2 }.forEach { free($0.element) }
        let retained = try XCTUnwrap(ResidentMemory.currentBytes())
        guard retained > beforeFree - 50 * mebibyte else {
            throw XCTSkip("the allocator gave the freed blocks back by itself (resident \(beforeFree) → \(retained))")
        }
        let meter = PeakMemorySampler()
        let peak = try XCTUnwrap(meter.stop())
        XCTAssertTrue(meter.isExact)
        XCTAssertLessThan(peak, retained - 150 * mebibyte, "peak \(peak), resident before the start \(retained)")
    }

    func testWithoutAResetAGrowingHighWaterMarkIsStillExact() throws {
        _ = try requireProc()
        Allocator.returnFreedMemory()  // as the meter will: the reset below then starts where the meter does
        try requireReset()  // so that the spike below raises the process's high-water mark
        let meter = PeakMemorySampler(resetHighWater: { false })
        let baseline = try XCTUnwrap(ResidentMemory.currentBytes())
        try spike(208 * mebibyte)
        let peak = try XCTUnwrap(meter.stop())
        XCTAssertTrue(meter.isExact)
        XCTAssertGreaterThanOrEqual(peak, baseline + 200 * mebibyte, "peak \(peak), baseline \(baseline)")
    }

    func testWithoutAResetAnOlderPeakFallsBackToSamples() throws {
        let baseline = try requireProc()
        try spike(300 * mebibyte)  // the process's high-water mark now lies far above what follows
        let meter = PeakMemorySampler(resetHighWater: { false })
        meter.sample()
        let peak = try XCTUnwrap(meter.stop())
        XCTAssertFalse(meter.isExact, "the figure is a lower bound from samples")
        XCTAssertLessThan(peak, baseline + 100 * mebibyte, "peak \(peak), baseline \(baseline)")
        XCTAssertGreaterThan(peak, 0)
    }
}
