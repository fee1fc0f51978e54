#!/usr/bin/env python3
"""MetaBench against the PyTorch / learn2learn peer, shape by shape, in alternating turns.

The issue-13 targets are ratios against the peer measured in the same session; on a shared machine both
sides drift by a fifth within minutes, so a whole suite of one side followed by a whole suite of the other
compares runs made minutes apart. This script runs each shape of MetaBench's ordo-one suite
(`MetaBenchBenchmarks`) and its twin in `peer_throughput.py` back to back, the order swapped every round
(ours then the peer, the peer then ours, ...), and reports per shape: both sides' rates per round, the ratio
of the medians and the range of the per-round ratios. It also measures the peak the large-episode target
refers to: OpenBLAS sgemm 1024³ on one thread (MetaBench's `sgemm` benchmark) in every round, times two
cores, and ProtoNet 60w5s's share of it.

Usage (from the repository root, after `swift build -c release` in Benchmarks/ and the peer's venv set up as
in README.md beside this file):

    /tmp/peer/bin/python Benchmarks/Peer/side_by_side.py [--rounds 4] [--shapes maml,protonet-5w1s]
        [--benchmarks Benchmarks/.build/release/MetaBenchBenchmarks] [--keep DIR]

MetaBench's benchmarks run for ordo-one's 10 s per shape (their `maxDuration`), the peer for `--seconds`
(default 10). Training shapes run with 2 threads on both sides, evaluation episodes (`adapt-*`) and the sgemm
peak with 1 (the runner evaluates one episode per thread). Exit status 1 if any run failed (named), else 0.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# key: (MetaBench benchmark name, units per benchmark iteration, threads). The peer's keys are the same.
SHAPES = {
    "sgemm": ("sgemm 1024³ (×2.147 GFLOP)", 2 * 1024 ** 3 / 1e9, 1),
    "maml": ("MAML 5w1s q15 meta-step (×4 tasks)", 4, 2),
    "fomaml": ("first-order MAML 5w1s q15 meta-step (×4 tasks)", 4, 2),
    "maml-5steps": ("MAML 5 steps 5w1s q15 meta-step (×2 tasks)", 2, 2),
    "protonet-60w5s": ("ProtoNet 60w5s q5 training episode", 1, 2),
    "protonet-5w1s": ("ProtoNet 5w1s q15 training episode", 1, 2),
    "adapt-protonet": ("adapt protonet 5w1s q15 evaluation episode", 1, 1),
    "adapt-matchingnet": ("adapt matchingnet 20w1s q5 evaluation episode", 1, 1),
    "adapt-baseline": ("adapt baseline 20w1s q5 evaluation episode", 1, 1),
    "adapt-baseline++": ("adapt baseline++ 20w1s q5 evaluation episode", 1, 1),
    "adapt-maml": ("adapt maml 5w1s q15 evaluation episode", 1, 1),
    "adapt-reptile": ("adapt reptile 5w1s q15 evaluation episode", 1, 1),
}
DEFAULT_SHAPES = ["sgemm", "maml", "fomaml", "protonet-5w1s", "protonet-60w5s", "adapt-maml", "adapt-reptile"]
TARGET = 3.0  # every meta-training step and every evaluation episode: at least 3x the peer
PEAK_SHARE_TARGET = 0.40  # ProtoNet 60w5s q5: at least 40% of the two cores' measured FP32 peak


def conv4_training_flop(images):
    """Multiply-adds x 2 of a Conv4-64 forward and backward pass on 28x28 grey images, counted as direct
    convolutions (3x3, padding 1): every layer's forward and weight gradient, the input gradient of layers 2-4
    (the first layer's input is the images). The figure the README's peak shares use (34.8 GFLOP at 600)."""
    flop, channels, side = 0, 1, 28
    for layer in range(4):
        product = 2 * side * side * 64 * channels * 9
        flop += product * (2 if layer == 0 else 3)
        channels, side = 64, side // 2
    return flop * images


def ours_median_ms(output, name):
    """The median wall-clock time per iteration (ms) of benchmark `name` in ordo-one's output, or None."""
    lines = output.splitlines()
    current = None
    for i, line in enumerate(lines):
        m = re.match(r"^Debug results for (.*):\s*$", line)
        if m:
            current = m.group(1)
        if current == name and line.startswith("Time (wall clock):"):
            for row in lines[i + 1:i + 30]:
                parts = row.split()
                if len(parts) >= 2 and parts[1].startswith("0.5000"):
                    return float(parts[0]) / 1e6  # nanoseconds
    return None


def run(command, env=None, timeout=900):
    """(exit status, whole output) of a child; a child that outlasts `timeout` seconds is stopped and fails."""
    try:
        p = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -1, out + "\n(stopped after %d s)" % timeout


def run_ours(binary, key):
    name, units, threads = SHAPES[key]
    env = dict(os.environ, METABENCH_THREADS=str(threads))
    env["LD_LIBRARY_PATH"] = os.path.dirname(binary) + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    pattern = "^" + re.escape(name) + "$"
    status, output = run([binary, "--filter", pattern, "--time-units", "microseconds"], env=env)
    ms = ours_median_ms(output, name) if status == 0 else None
    if ms is None or ms <= 0:
        return None, output
    return units * 1000.0 / ms, output


def run_peer(python, seconds, key):
    threads = SHAPES[key][2]
    status, output = run([python, os.path.join(HERE, "peer_throughput.py"), "--threads", str(threads),
                          "--seconds", str(seconds), "--only", key], timeout=900 + 20 * seconds)
    for line in output.splitlines():
        m = re.match(r"^(\S+)\s+threads\s+\d+\s+([\d.]+)\s", line)
        if m and m.group(1) == key and status == 0:
            return float(m.group(2)), output
    return None, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="turns per shape (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="the peer's timed seconds per run (default 10)")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                        help="comma-separated keys (default %(default)s); all: " + ",".join(SHAPES))
    parser.add_argument("--benchmarks", default=os.path.join(HERE, "..", ".build", "release", "MetaBenchBenchmarks"),
                        help="MetaBench's built ordo-one executable")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="the Python with torch and learn2learn (default: this one)")
    parser.add_argument("--keep", help="a folder to write every run's whole output to")
    args = parser.parse_args()
    keys = [k for k in args.shapes.split(",") if k]
    unknown = [k for k in keys if k not in SHAPES]
    if unknown or not keys:
        parser.error("unknown shape(s) %s; the shapes are: %s" % (", ".join(unknown) or "(none)", ", ".join(SHAPES)))
    if args.rounds < 1 or args.rounds > 100:
        parser.error("--rounds must be 1 ... 100, got %d" % args.rounds)
    if not (args.seconds > 0 and args.seconds < 3600):
        parser.error("--seconds must be more than 0 and under 3600, got %g" % args.seconds)
    binary = os.path.abspath(args.benchmarks)
    if not os.access(binary, os.X_OK):
        parser.error("no MetaBench benchmark executable at %s (build it: cd Benchmarks && swift build -c release)"
                     % binary)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)

    ours = {k: [] for k in keys}
    peer = {k: [] for k in keys}
    failures = []
    for r in range(args.rounds):
        for key in keys:
            sides = ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]
            for side in sides:
                if side == "ours":
                    rate, output = run_ours(binary, key)
                else:
                    rate, output = run_peer(args.peer_python, args.seconds, key)
                if args.keep:
                    with open(os.path.join(args.keep, "%s-%s-%d.txt" % (side, key, r + 1)), "w") as f:
                        f.write(output)
                if rate is None:
                    failures.append("%s %s round %d" % (side, key, r + 1))
                    tail = "\n".join(output.splitlines()[-5:])
                    print("FAILED: %s %s round %d:\n%s" % (side, key, r + 1, tail), file=sys.stderr)
                else:
                    (ours if side == "ours" else peer)[key].append(rate)
                    print("round %d  %-5s %-18s %10.3f" % (r + 1, side, key, rate), file=sys.stderr, flush=True)

    print("# %d rounds, each shape's two sides back to back, the order swapped every round" % args.rounds)
    print("%-18s %-9s %-34s %-34s %8s  %s" % ("shape", "threads", "MetaBench per round", "peer per round",
                                            "ratio", "per-round ratios"))
    verdicts = {}
    for key in keys:
        a, b = ours[key], peer[key]
        if not a or not b:
            print("%-18s (no complete measurement)" % key)
            continue
        ratio = statistics.median(a) / statistics.median(b)
        pairs = [x / y for x, y in zip(a, b)] if len(a) == len(b) else []
        spread = ("%.2f-%.2f" % (min(pairs), max(pairs))) if pairs else "-"
        print("%-18s %-9d %-34s %-34s %7.2fx  %s" % (key, SHAPES[key][2], " / ".join("%.2f" % x for x in a),
                                                   " / ".join("%.2f" % x for x in b), ratio, spread))
        verdicts[key] = ratio
    if "sgemm" in keys and ours["sgemm"]:
        per_core = statistics.median(ours["sgemm"])
        peak = 2 * per_core
        print("# peak: OpenBLAS sgemm 1024³ on one thread, median %.1f GFLOP/s (rounds %s); two cores %.1f GFLOP/s"
              % (per_core, " / ".join("%.1f" % x for x in ours["sgemm"]), peak))
        for key, images in (("protonet-60w5s", 600), ("protonet-5w1s", 80)):
            if ours.get(key):
                flop = conv4_training_flop(images) / 1e9
                rate = statistics.median(ours[key]) * flop
                line = "# %s: %.2f GFLOP per episode (direct convolutions), %.1f GFLOP/s = %.0f%% of the peak" % (
                    key, flop, rate, 100 * rate / peak)
                if peer.get(key):
                    needed = TARGET * statistics.median(peer[key]) * flop
                    line += "; %gx the peer's median needs %.1f GFLOP/s = %.0f%%" % (TARGET, needed, 100 * needed / peak)
                print(line)
    for key, ratio in verdicts.items():
        if key == "sgemm":
            continue
        print("# %-18s %.2fx: %s" % (key, ratio, "met" if ratio >= TARGET else "not met"))
    if failures:
        print("# failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
