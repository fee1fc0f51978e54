#!/usr/bin/env python3
"""PyTorch / learn2learn throughput on the shapes MetaBench's benchmarks time, for a side-by-side reading.

Each shape of Benchmarks/Benchmarks/MetaBenchBenchmarks/MetaBenchBenchmarks.swift has a PyTorch twin here
(random pixels: throughput only, no learning). Every shape runs in a fresh child process with the requested
number of threads, so that its peak resident memory is its own. One line per shape and thread count:

    KEY  threads N  RATE UNIT  peak RSS +MiB/ITEM  process peak MiB  steps N in S s  [description]

Usage:
    python peer_throughput.py [--threads 2] [--seconds 10] [--only maml,protonet-60w5s] [--list]

Set-up (PyTorch, learn2learn 0.2.0 rebuilt with Cython) and the meaning of each line: README.md beside it.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

IMAGE = (1, 28, 28)  # Omniglot-shaped grey images, as the Swift benchmarks
WIDTH = 64           # Conv4-64
WARMUP_STEPS = 2     # the Swift benchmarks' warmupIterations
MAX_STEPS = 1000     # and their maxIterations


@dataclass(frozen=True)
class Shape:
    """One timed workload: `make(torch)` returns a step function; one step is `units` of `item`."""
    key: str
    description: str
    unit: str   # what the rate counts per second
    item: str   # what one unit is (the peak-RSS growth is one item's)
    units: int
    needs_l2l: bool
    make: Callable


# MARK: - Models and data

def conv4(torch, classes, track_running_stats):
    """4 x [conv3x3-64 (bias), BatchNorm (batch statistics), ReLU, maxpool 2], then an optional linear head.

    PyTorch's default initialisation, as MetaBench's Conv4 (U(+-1/sqrt(fan_in)), gamma 1, beta 0)."""
    nn = torch.nn
    layers = []
    channels = IMAGE[0]
    for _ in range(4):
        layers += [nn.Conv2d(channels, WIDTH, kernel_size=3, padding=1),
                   nn.BatchNorm2d(WIDTH, track_running_stats=track_running_stats),
                   nn.ReLU(), nn.MaxPool2d(2)]
        channels = WIDTH
    layers.append(nn.Flatten())
    if classes:
        side = IMAGE[1] // 16  # 28 -> 14 -> 7 -> 3 -> 1
        layers.append(nn.Linear(WIDTH * side * side, classes))
    return nn.Sequential(*layers)


def labelled_images(torch, ways, per_class):
    """Uniform [0, 1) pixels (MetaBench's RandomEpisodes draw the same way) and class-major labels."""
    images = torch.rand(ways * per_class, *IMAGE)
    labels = torch.arange(ways).repeat_interleave(per_class)
    return images, labels


# MARK: - Workloads

def make_sgemm(torch, n=1024):
    a, b = torch.rand(n, n), torch.rand(n, n)
    return lambda: torch.mm(a, b)  # a fresh result each time, as the Swift benchmark


def make_conv4_pass(torch, batch=80, ways=5):
    """Forward and backward of Conv4 with a 5-way head on 80 images; gradients only, no update."""
    model = conv4(torch, ways, track_running_stats=False)
    x = torch.rand(batch, *IMAGE)
    labels = torch.arange(batch) % ways
    params = list(model.parameters())

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        torch.autograd.grad(loss, params)
    return step


def make_maml(torch, first_order, inner_steps, meta_batch, ways=5, shots=1, queries=15,
              inner_lr=0.4, meta_lr=1e-3):
    """One meta-update of learn2learn's MAML over `meta_batch` tasks (the same episode, as the Swift
    benchmark serves one episode repeatedly); the meta-gradient is the mean over tasks, then Adam."""
    import learn2learn as l2l
    F = torch.nn.functional
    maml = l2l.algorithms.MAML(conv4(torch, ways, track_running_stats=False), lr=inner_lr,
                               first_order=first_order)
    optimizer = torch.optim.Adam(maml.parameters(), lr=meta_lr)
    xs, ys = labelled_images(torch, ways, shots)
    xq, yq = labelled_images(torch, ways, queries)

    def step():
        optimizer.zero_grad()
        for _ in range(meta_batch):
            learner = maml.clone()
            for _ in range(inner_steps):
                learner.adapt(F.cross_entropy(learner(xs), ys))
            # Queries are normalised with their own batch statistics (MetaBench's default, transductive).
            (F.cross_entropy(learner(xq), yq) / meta_batch).backward()
        optimizer.step()
    return step


def make_protonet(torch, ways, shots, queries, lr=1e-3):
    """One Prototypical Network training episode: support and queries embedded in one batch (batch
    statistics, folded into running averages as MetaBench does), logits -||q - c_k||^2, Adam."""
    F = torch.nn.functional
    model = conv4(torch, None, track_running_stats=True)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    xs, _ = labelled_images(torch, ways, shots)
    xq, yq = labelled_images(torch, ways, queries)
    images = torch.cat([xs, xq])
    n_support = xs.shape[0]

    def step():
        optimizer.zero_grad()
        z = model(images)
        prototypes = z[:n_support].reshape(ways, shots, -1).mean(dim=1)
        zq = z[n_support:]
        squared = (zq * zq).sum(1, keepdim=True) - 2 * zq @ prototypes.t() + (prototypes * prototypes).sum(1)
        F.cross_entropy(-squared, yq).backward()
        optimizer.step()
    return step


# MARK: - Evaluation episodes (adaptation), one per step

def make_adapt_metric(torch, kind, ways, shots, queries, attention_scale=100.0):
    """One evaluation episode of a metric learner in eval mode (running statistics): embed the support set
    and the queries, then ProtoNet's -||q - c_k||^2 or Matching Networks' log of the attention-weighted
    labels, softmax over 100 * cos (CloserLookFewShot's matchingnet.py, MetaBench's default)."""
    F = torch.nn.functional
    model = conv4(torch, None, track_running_stats=True)
    model.eval()
    xs, ys = labelled_images(torch, ways, shots)
    xq, _ = labelled_images(torch, ways, queries)

    def step():
        with torch.no_grad():
            zs, zq = model(xs), model(xq)
            if kind == "protonet":
                c = zs.reshape(ways, shots, -1).mean(dim=1)
                return -((zq * zq).sum(1, keepdim=True) - 2 * zq @ c.t() + (c * c).sum(1))
            attention = F.softmax(attention_scale * (F.normalize(zq, dim=1) @ F.normalize(zs, dim=1).t()), dim=1)
            return torch.log(attention @ F.one_hot(ys, ways).float() + 1e-12)
    return step


def make_adapt_baseline(torch, ways, shots, queries, cosine, epochs=100, batch=4):
    """One evaluation episode of CloserLookFewShot's baseline (linear head) or baseline++ (cosine head with
    weight normalisation, scale 2): frozen eval-mode features, a new head trained by SGD (lr 0.01, momentum
    0.9, dampening 0.9, weight decay 0.001) for 100 epochs of reshuffled batches of 4, as baselinefinetune.py."""
    F = torch.nn.functional
    nn = torch.nn
    model = conv4(torch, None, track_running_stats=True)
    model.eval()
    xs, ys = labelled_images(torch, ways, shots)
    xq, _ = labelled_images(torch, ways, queries)

    class CosineHead(nn.Module):
        def __init__(self, d, k):
            super().__init__()
            self.L = nn.utils.weight_norm(nn.Linear(d, k, bias=False), name="weight", dim=0)

        def forward(self, x):
            return 2 * self.L(F.normalize(x, dim=1))

    def step():
        with torch.no_grad():
            zs, zq = model(xs), model(xq)
        head = CosineHead(zs.shape[1], ways) if cosine else nn.Linear(zs.shape[1], ways)
        optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, dampening=0.9, weight_decay=0.001)
        n = zs.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n)
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                optimizer.zero_grad()
                F.cross_entropy(head(zs[idx]), ys[idx]).backward()
                optimizer.step()
        with torch.no_grad():
            return head(zq)
    return step


def make_adapt_maml(torch, ways, shots, queries, steps=3, lr=0.4):
    """One evaluation episode of learn2learn's MAML: a clone adapted by `steps` first-order SGD steps on the
    support set (MetaBench's eval_inner_steps 3, eval_inner_lr 0.4; batch statistics), queries scored."""
    import learn2learn as l2l
    F = torch.nn.functional
    maml = l2l.algorithms.MAML(conv4(torch, ways, track_running_stats=False), lr=lr, first_order=True)
    xs, ys = labelled_images(torch, ways, shots)
    xq, _ = labelled_images(torch, ways, queries)

    def step():
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.cross_entropy(learner(xs), ys))
        with torch.no_grad():
            return learner(xq)
    return step


def make_adapt_reptile(torch, ways, shots, queries, steps=50, lr=1e-3, batch=5):
    """One evaluation episode of Reptile: a copy of the model trained by `steps` Adam steps (beta1 = 0, lr
    0.001) on batches of 5 support images (the paper's evaluation), batch statistics, queries scored."""
    import copy
    F = torch.nn.functional
    model = conv4(torch, ways, track_running_stats=False)
    xs, ys = labelled_images(torch, ways, shots)
    xq, _ = labelled_images(torch, ways, queries)
    n = xs.shape[0]

    def step():
        learner = copy.deepcopy(model)
        optimizer = torch.optim.Adam(learner.parameters(), lr=lr, betas=(0.0, 0.999))
        order, position = torch.randperm(n), 0
        for _ in range(steps):
            if position + batch > n:
                order, position = torch.randperm(n), 0
            idx = order[position:position + batch]
            position += batch
            optimizer.zero_grad()
            F.cross_entropy(learner(xs[idx]), ys[idx]).backward()
            optimizer.step()
        with torch.no_grad():
            return learner(xq)
    return step


SHAPES = [
    Shape("sgemm", "torch.mm 1024x1024x1024 float32 (2.147 GFLOP per product)",
          "GFLOP/s", "product", 1, False, make_sgemm),
    Shape("conv4", "Conv4-64 + 5-way head, forward+backward of 80x1x28x28, gradients only",
          "passes/s", "pass", 1, False, make_conv4_pass),
    Shape("maml", "learn2learn MAML 5w1s q15, 1 inner step, second order, meta-batch 4",
          "tasks/s", "task", 4, True, lambda torch: make_maml(torch, False, inner_steps=1, meta_batch=4)),
    Shape("fomaml", "learn2learn MAML first_order=True 5w1s q15, 1 inner step, meta-batch 4",
          "tasks/s", "task", 4, True, lambda torch: make_maml(torch, True, inner_steps=1, meta_batch=4)),
    Shape("maml-5steps", "learn2learn MAML 5w1s q15, 5 inner steps, second order, meta-batch 2",
          "tasks/s", "task", 2, True, lambda torch: make_maml(torch, False, inner_steps=5, meta_batch=2)),
    Shape("protonet-60w5s", "ProtoNet 60w5s q5 training episode (600 images)",
          "episodes/s", "episode", 1, False, lambda torch: make_protonet(torch, 60, 5, 5)),
    Shape("protonet-5w1s", "ProtoNet 5w1s q15 training episode (80 images)",
          "episodes/s", "episode", 1, False, lambda torch: make_protonet(torch, 5, 1, 15)),
    Shape("adapt-protonet", "ProtoNet 5w1s q15 evaluation episode (eval mode)",
          "episodes/s", "episode", 1, False, lambda torch: make_adapt_metric(torch, "protonet", 5, 1, 15)),
    Shape("adapt-matchingnet", "Matching Networks 20w1s q5 evaluation episode (eval mode, no FCE)",
          "episodes/s", "episode", 1, False, lambda torch: make_adapt_metric(torch, "matchingnet", 20, 1, 5)),
    Shape("adapt-baseline", "Baseline 20w1s q5 evaluation episode (linear head, 100 epochs of SGD, batch 4)",
          "episodes/s", "episode", 1, False, lambda torch: make_adapt_baseline(torch, 20, 1, 5, cosine=False)),
    Shape("adapt-baseline++", "Baseline++ 20w1s q5 evaluation episode (cosine head, 100 epochs of SGD, batch 4)",
          "episodes/s", "episode", 1, False, lambda torch: make_adapt_baseline(torch, 20, 1, 5, cosine=True)),
    Shape("adapt-maml", "learn2learn MAML 5w1s q15 evaluation episode (3 first-order steps)",
          "episodes/s", "episode", 1, True, lambda torch: make_adapt_maml(torch, 5, 1, 15)),
    Shape("adapt-reptile", "Reptile 5w1s q15 evaluation episode (50 Adam steps, batch 5)",
          "episodes/s", "episode", 1, False, lambda torch: make_adapt_reptile(torch, 5, 1, 15)),
]
BY_KEY = {s.key: s for s in SHAPES}
GEMM_FLOP = 2 * 1024 ** 3


# MARK: - Measuring one shape (child process)

def peak_rss_kib():
    """The process's peak resident set so far, in KiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform == "darwin" else peak


def current_rss_kib():
    """The process's resident set now, in KiB (VmRSS; where /proc is missing, the peak so far)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return peak_rss_kib()


def measure(key, threads, seconds):
    """Times one shape in this process and returns its result as a dict.

    Memory: the growth of the peak resident set over the resident set just before the first step (model
    and data already made). Every shape here runs its tasks one after another, so that is one task's
    (episode's, product's) working set, the quantity MetaBench's README compares per task in flight."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = BY_KEY[key]
    step = shape.make(torch)
    rss_before = current_rss_kib()
    for _ in range(WARMUP_STEPS):
        step()
    steps, start = 0, time.perf_counter()
    while steps < MAX_STEPS and (steps == 0 or time.perf_counter() - start < seconds):
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    peak = peak_rss_kib()
    rate = steps * shape.units / elapsed
    if key == "sgemm":
        rate *= GEMM_FLOP / 1e9
    return {"key": key, "threads": threads, "steps": steps, "seconds": elapsed, "rate": rate,
            "peak_rss_mib": peak / 1024, "growth_mib_per_item": max(peak - rss_before, 0) / 1024,
            "torch": torch.__version__, "mkl": torch.backends.mkl.is_available()}


# MARK: - Driver

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_child(key, threads, seconds):
    """Runs one shape in a fresh interpreter; returns (result dict, None) or (None, error text)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    command = [sys.executable, os.path.abspath(__file__), "--child", key,
               "--threads", str(threads), "--seconds", repr(seconds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
        return None, (lines[-1] if lines else "exit status %d" % done.returncode)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, "unreadable child output: %r" % done.stdout[-200:]


def format_line(shape, r):
    extra = " (%.1f per thread)" % (r["rate"] / r["threads"]) if shape.key == "sgemm" else ""
    return ("%-15s threads %-3d %10.2f %-10s  peak RSS +%7.1f MiB/%-8s process peak %7.1f MiB  "
            "steps %d in %.1f s%s  [%s]") % (
        shape.key, r["threads"], r["rate"], shape.unit, r["growth_mib_per_item"], shape.item,
        r["peak_rss_mib"], r["steps"], r["seconds"], extra, shape.description)


def positive_int_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected positive integers separated by commas, got %r" % text)
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("thread counts must be at least 1, got %r" % text)
    return values


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds, got %r" % text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("seconds must be a positive finite number, got %r" % text)
    return value


def shape_keys(text):
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown or not keys:
        raise argparse.ArgumentTypeError("unknown shape %s; the shapes are: %s"
                                         % (", ".join(repr(k) for k in unknown) or "(none given)",
                                            ", ".join(BY_KEY)))
    return keys


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="PyTorch/learn2learn throughput on the shapes of MetaBench's benchmarks (random pixels).")
    parser.add_argument("--threads", type=positive_int_list, default=[2],
                        help="intra-op thread count, or several separated by commas (default 2)")
    parser.add_argument("--seconds", type=positive_seconds, default=10.0,
                        help="timed seconds per shape after %d warm-up steps, at most %d steps (default 10)"
                             % (WARMUP_STEPS, MAX_STEPS))
    parser.add_argument("--only", type=shape_keys, action="append",
                        help="shapes to run, separated by commas (repeatable); default all: " + ", ".join(BY_KEY))
    parser.add_argument("--list", action="store_true", help="list the shapes and exit")
    parser.add_argument("--child", choices=list(BY_KEY), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if len(args.threads) != 1:
            parser.error("--child takes one thread count")
        print(json.dumps(measure(args.child, args.threads[0], args.seconds)))
        return 0
    if args.list:
        for s in SHAPES:
            print("%-15s %-10s %s" % (s.key, s.unit, s.description))
        return 0

    wanted = {k for group in (args.only or [list(BY_KEY)]) for k in group}
    shapes = [s for s in SHAPES if s.key in wanted]
    failures = 0
    header_printed = False
    for threads in args.threads:
        for shape in shapes:
            if shape.needs_l2l and learn2learn_version() == "not installed":
                result, error = None, "learn2learn is not installed in this environment (see README.md)"
            else:
                result, error = run_child(shape.key, threads, args.seconds)
            if result and not header_printed:
                print("# torch %s (MKL %s), learn2learn %s, Python %s, %s, %.0f s per shape"
                      % (result["torch"], "yes" if result["mkl"] else "no", learn2learn_version(),
                         platform.python_version(), cpu_name(), args.seconds))
                header_printed = True
            if result:
                print(format_line(shape, result), flush=True)
            else:
                failures += 1
                print("%-15s threads %-3d FAILED: %s" % (shape.key, threads, error), flush=True)
    return 1 if failures else 0


def learn2learn_version():
    """learn2learn's version from its package metadata, without importing it (and torch) here."""
    try:
        from importlib.metadata import version, PackageNotFoundError
        try:
            return version("learn2learn")
        except PackageNotFoundError:
            return "not installed"
    except ImportError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
