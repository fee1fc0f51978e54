#!/usr/bin/env python3
"""PyTorch twins of MetaBench's learners, trained on omniglot-small and scored on MetaBench's test episodes.

Each learner (maml, fomaml, reptile, protonet, matchingnet, baseline, baseline++) is written here in plain
PyTorch, following the semantics and defaults MetaBench documents for it (`bench list learners`): the same
Conv4, initialisation, batch-norm modes, optimisers, schedules and budgets. Training data is read from
datasets/omniglot-small (torchmeta's layout), resized to 28x28 with antialiased bilinear interpolation and
rotated x4 into new classes, as `suites/parity.yaml` has MetaBench do; training episodes are this script's own.
Evaluation uses the test episodes MetaBench evaluates on, exported with

    bench episodes export --suite parity --setting 5w1s parity-5w1s.h5

so both sides are scored on identical episodes. The results (per learner x setting: mean accuracy, 95% CI
half-width 1.96*std/sqrt(n) over the episodes pooled over seeds, per-seed accuracies, training time) are printed
and written as JSON; `table.py` beside this file sets them against MetaBench's results.json.

Usage (the environment and the whole procedure: README.md beside this file):
    python pytorch_parity.py --suite suites/parity.yaml --episodes parity-5w1s.h5 --episodes parity-20w1s.h5 \
        --output parity-pytorch.json [--learners maml,protonet] [--iterations 100] [--seeds 0,1] [--threads 2]
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

LEARNERS = ["maml", "fomaml", "reptile", "protonet", "matchingnet", "baseline", "baseline++"]

# The defaults of MetaBench's hyperparameters (`bench list learners`), one dictionary per learner. Keep them
# in step with MetaBench: table.py compares them with the hyperparameters MetaBench's results.json records.
BACKBONE = {"width": 64, "downsampling": "maxpool"}
MAML = {"inner_lr": 0.4, "inner_steps": 1, "eval_inner_lr": 0.4, "eval_inner_steps": 3, "meta_lr": 0.001,
        "batch_norm": "transductive", **BACKBONE}
ADAM = {"lr": 0.001, "lr_decay": 0.5}
BASELINE = {"batch_size": 64, **ADAM, "lr_decay_every": 0, "finetune_lr": 0.01, "finetune_steps": 0,
            "finetune_batch": 4, "finetune_batches": "passes", "finetune_momentum": 0.9,
            "finetune_dampening": 0.9, "finetune_weight_decay": 0.001, "finetune_nesterov": False,
            "batch_norm": "running", **BACKBONE}
DEFAULTS = {
    "maml": MAML,
    "fomaml": MAML,
    "reptile": {"inner_optimizer": "adam", "inner_lr": 0.001, "inner_steps": 5, "inner_batch": 10,
                "eval_inner_batch": 5, "inner_batches": "passes", "eval_inner_lr": 0.001, "eval_inner_steps": 50,
                "train_on_queries": True, "outer_lr": 1.0, "batch_norm": "transductive", **BACKBONE},
    "protonet": {**ADAM, "lr_decay_every": 2000, "batch_norm": "running", **BACKBONE},
    "matchingnet": {**ADAM, "lr_decay_every": 0, "attention_scale": 100.0, "fce": False, "fce_steps": 5,
                    "batch_norm": "running", **BACKBONE},
    "baseline": BASELINE,
    "baseline++": {**BASELINE, "scale": 0.0, "class_norm": True},
}
CHOICES = {
    "downsampling": ["maxpool", "strided"],
    "inner_optimizer": ["adam", "sgd"],
    "inner_batches": ["passes", "independent"],
    "finetune_batches": ["passes", "independent"],
}
BN_CHOICES = {"maml": ["transductive", "support"], "fomaml": ["transductive", "support"],
              "reptile": ["transductive", "support"]}


class UsageError(Exception):
    """A mistake in the flags, the suite or an input file: printed as one line, exit status 1."""


# MARK: - Data

def load_split(folder, split, image_size, rotations, labels_prefix=""):
    """The classes of one split of torchmeta's Omniglot folder as a float tensor (classes, images, 1, S, S).

    Pixels are bytes / 255 (stroke 1, paper 0), resized with antialiased bilinear interpolation on floats in
    [0, 1] and clamped to [0, 1], as MetaBench's `resize: bilinear`; with `rotations`, the 90/180/270-degree
    (counter-clockwise) rotations of every class follow the originals as new classes."""
    labels_path = os.path.join(folder, f"{labels_prefix}{split}_labels.json")
    data_path = os.path.join(folder, "data.hdf5")
    for path in (labels_path, data_path):
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file (expected torchmeta's Omniglot layout)")
    with open(labels_path) as f:
        triples = json.load(f)
    with h5py.File(data_path, "r") as f:
        classes = []
        for triple in triples:
            key = "/".join(triple)
            if key not in f:
                raise UsageError(f"{data_path}: no dataset {key} (named by {labels_path})")
            classes.append(np.asarray(f[key][()], dtype=np.uint8))
    counts = {c.shape for c in classes}
    if len(counts) != 1:
        raise UsageError(f"{data_path}: the classes of split {split} have different shapes {sorted(counts)}")
    pixels = torch.from_numpy(np.stack(classes)).float() / 255  # (classes, images, H, W)
    n_classes, n_images, height, width = pixels.shape
    images = pixels.reshape(n_classes * n_images, 1, height, width)
    if image_size and (height, width) != (image_size, image_size):
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
    images = images.reshape(n_classes, n_images, 1, images.shape[-2], images.shape[-1])
    if rotations:
        images = torch.cat([images] + [torch.rot90(images, k, dims=(3, 4)) for k in (1, 2, 3)], dim=0)
    return images.contiguous()


def read_episodes(path):
    """The episodes of a metabench-episodes-v1 file (`bench episodes export`), in index order."""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file (write it with `bench episodes export`)")
    episodes = []
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("metabench_layout") != "metabench-episodes-v1":
                raise UsageError(f"{path}: not a metabench-episodes-v1 file")
            names = sorted(f["episodes"].keys(), key=int)
            if int(f.attrs.get("count", len(names))) != len(names):
                raise UsageError(f"{path}: the file says {int(f.attrs['count'])} episodes but holds {len(names)}")
            for name in names:
                group = f["episodes"][name]
                episode = {
                    "ways": int(group.attrs["ways"]), "shots": int(group.attrs["shots"]),
                    "queries": int(group.attrs["queries"]),
                    "support": torch.from_numpy(np.asarray(group["support_images"][()], dtype=np.float32)),
                    "support_labels": torch.from_numpy(group["support_labels"][()].astype(np.int64)),
                    "query": torch.from_numpy(np.asarray(group["query_images"][()], dtype=np.float32)),
                    "query_labels": torch.from_numpy(group["query_labels"][()].astype(np.int64)),
                }
                ways = episode["ways"]
                for kind, per_class in (("support", episode["shots"]), ("query", episode["queries"])):
                    images, labels = episode[kind], episode[f"{kind}_labels"]
                    if images.ndim != 4 or len(images) != ways * per_class or labels.shape != (len(images),) \
                            or (len(labels) and (labels.min() < 0 or labels.max() >= ways)):
                        raise UsageError(f"{path}: episode {name}: {kind} images {tuple(images.shape)} and labels "
                                         f"{tuple(labels.shape)} do not fit {ways} ways")
                episodes.append(episode)
    except (OSError, KeyError, ValueError) as error:
        raise UsageError(f"{path}: not a readable metabench-episodes-v1 file ({error})")
    if not episodes:
        raise UsageError(f"{path}: no episodes")
    shapes = {(e["ways"], e["shots"], e["queries"]) for e in episodes}
    if len(shapes) != 1:
        raise UsageError(f"{path}: episodes of several shapes {sorted(shapes)}; export one setting per file")
    ways, shots, queries = shapes.pop()
    return {"name": f"{ways}w{shots}s", "ways": ways, "shots": shots, "queries": queries, "path": path,
            "episodes": episodes}


class EpisodeSource:
    """Training episodes drawn from `data` (classes, images, C, H, W) with a NumPy generator: `ways` distinct
    classes labelled 0..ways-1 in the order drawn, `shots + queries` distinct images of each, class-major."""

    def __init__(self, data, ways, shots, queries, rng):
        if data.shape[0] < ways or data.shape[1] < shots + queries:
            raise UsageError(f"the training split has {data.shape[0]} classes of {data.shape[1]} images: "
                             f"too few for {ways}-way {shots}-shot episodes with {queries} queries")
        self.data, self.ways, self.shots, self.queries, self.rng = data, ways, shots, queries, rng

    def episode(self):
        classes = self.rng.choice(self.data.shape[0], self.ways, replace=False)
        images = np.stack([self.rng.choice(self.data.shape[1], self.shots + self.queries, replace=False)
                           for _ in classes])
        picked = self.data[torch.from_numpy(classes)[:, None], torch.from_numpy(images)]
        image_shape = self.data.shape[2:]
        support = picked[:, :self.shots].reshape(-1, *image_shape)
        query = picked[:, self.shots:].reshape(-1, *image_shape)
        ways = torch.arange(self.ways)
        return support, ways.repeat_interleave(self.shots), query, ways.repeat_interleave(self.queries)


# MARK: - Conv4

class Conv4:
    """4 x [conv 3x3 pad 1 (bias), BatchNorm2d (eps 1e-5), ReLU, max-pool 2] (or stride-2 convolutions and
    no pooling), flattened, with an optional linear head; PyTorch's default initialisation. Functional: the
    forward pass takes the parameters, so adapted (fast) weights need no copy of the model."""

    def __init__(self, classes=None, width=64, downsampling="maxpool", channels=1, size=28):
        self.stride = 2 if downsampling == "strided" else 1
        params = []
        spatial = size
        for block in range(4):
            conv = torch.nn.Conv2d(channels if block == 0 else width, width, 3, padding=1, stride=self.stride)
            params += [conv.weight, conv.bias, torch.ones(width), torch.zeros(width)]
            spatial = (spatial - 1) // 2 + 1 if self.stride == 2 else spatial // 2
        self.features = width * spatial * spatial
        if self.features == 0:
            raise UsageError(f"downsampling {downsampling} leaves no features for {size}x{size} images")
        if classes:
            head = torch.nn.Linear(self.features, classes)
            params += [head.weight, head.bias]
        self.params = [p.detach().clone().requires_grad_() for p in params]
        # Running statistics of each block (momentum 0.1, unbiased variance: torch's BatchNorm2d).
        self.running = [(torch.zeros(width), torch.ones(width)) for _ in range(4)]

    def forward(self, x, params=None, bn="batch", stats_rows=None):
        """bn: "batch" (the batch's own statistics, nothing tracked: train mode with track_running_stats
        False), "train" (the batch's own, folded into the running averages), "running" (eval mode).
        `stats_rows` n normalises every row with the statistics of the first n rows (MAML's `support`)."""
        params = self.params if params is None else params
        h = x
        for block in range(4):
            weight, bias, gamma, beta = params[4 * block:4 * block + 4]
            h = F.conv2d(h, weight, bias, stride=self.stride, padding=1)
            mean, var = self.running[block]
            if bn == "running":
                h = F.batch_norm(h, mean, var, gamma, beta, training=False, eps=1e-5)
            elif bn == "train":
                h = F.batch_norm(h, mean, var, gamma, beta, training=True, momentum=0.1, eps=1e-5)
            elif stats_rows is not None:
                rows = h[:stats_rows]
                mu = rows.mean(dim=(0, 2, 3), keepdim=True)
                sigma2 = rows.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
                h = (h - mu) / torch.sqrt(sigma2 + 1e-5) * gamma[None, :, None, None] + beta[None, :, None, None]
            else:
                h = F.batch_norm(h, None, None, gamma, beta, training=True, eps=1e-5)
            h = F.relu(h)
            if self.stride == 1:
                h = F.max_pool2d(h, 2)
        h = h.flatten(1)
        if len(params) > 16:
            h = F.linear(h, params[16], params[17])
        return h


def accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).float().mean().item()


def inner_batches(count, batch, steps, mode, rng):
    """Index batches of `steps` steps over `count` examples. `batch` 0 (or >= count): the whole set each step;
    "passes": consecutive runs of `batch` indices from reshuffled passes (a batch may span two passes);
    "independent": `batch` distinct indices drawn afresh per step."""
    if batch <= 0 or batch >= count:
        return [np.arange(count)] * steps
    if mode == "independent":
        return [rng.choice(count, batch, replace=False) for _ in range(steps)]
    out, current = [], []
    while len(out) < steps:
        for index in rng.permutation(count):
            current.append(index)
            if len(current) == batch:
                out.append(np.array(current))
                current = []
                if len(out) == steps:
                    break
    return out


def finetune_batches(count, batch, steps, mode, rng):
    """Index batches of the baselines' fine-tuning: "passes" cuts reshuffled passes into batches of `batch`,
    the last of a pass possibly smaller (CloserLookFewShot's loop); "independent" draws `batch` distinct
    examples per step."""
    if mode == "independent":
        return [rng.choice(count, min(batch, count), replace=False) for _ in range(steps)]
    out = []
    while len(out) < steps:
        order = rng.permutation(count)
        for start in range(0, count, batch):
            if len(out) < steps:
                out.append(order[start:start + batch])
    return out


# MARK: - Learners

class Learner:
    """One learner for one training setting and seed: `train_step(t)` for t in 0..<iterations, then `logits`
    per evaluation episode."""
    transductive = False

    def __init__(self, name, hp, setting, iterations, meta_batch, data, seed):
        self.name, self.hp, self.setting = name, hp, setting
        self.iterations, self.meta_batch, self.seed = iterations, meta_batch, seed
        self.rng = np.random.default_rng([seed, LEARNERS.index(name), setting["ways"], setting["shots"]])
        self.data = data

    def episode_source(self):
        return EpisodeSource(self.data, self.setting["ways"], self.setting["shots"], self.setting["queries"],
                             self.rng)


class MAMLLearner(Learner):
    """MAML (second order) or first-order MAML: plain SGD inner steps on the support set, Adam on the mean
    query loss over the meta-batch. Finn, Abbeel & Levine, ICML 2017."""

    def __init__(self, *args, first_order):
        super().__init__(*args)
        self.first_order = first_order
        self.model = Conv4(classes=self.setting["ways"], width=self.hp["width"], downsampling=self.hp["downsampling"])
        self.optimizer = torch.optim.Adam(self.model.params, lr=self.hp["meta_lr"], eps=1e-8)
        self.source = self.episode_source()
        self.transductive = self.hp["batch_norm"] == "transductive"

    def adapt(self, params, x, y, steps, lr, create_graph):
        fast = params
        for _ in range(steps):
            loss = F.cross_entropy(self.model.forward(x, fast), y)
            grads = torch.autograd.grad(loss, fast, create_graph=create_graph)
            fast = [p - lr * g for p, g in zip(fast, grads)]
        return fast

    def query_logits(self, fast, support, query):
        if self.transductive:
            return self.model.forward(query, fast)
        both = torch.cat([support, query])
        return self.model.forward(both, fast, stats_rows=len(support))[len(support):]

    def train_step(self, t):
        self.optimizer.zero_grad()
        for _ in range(self.meta_batch):
            sx, sy, qx, qy = self.source.episode()
            fast = self.adapt(self.model.params, sx, sy, self.hp["inner_steps"], self.hp["inner_lr"],
                              create_graph=not self.first_order)
            loss = F.cross_entropy(self.query_logits(fast, sx, qx), qy) / self.meta_batch
            loss.backward()
        self.optimizer.step()

    def logits(self, sx, sy, qx, ways, index):
        params = [p.detach().requires_grad_() for p in self.model.params]
        fast = self.adapt(params, sx, sy, self.hp["eval_inner_steps"], self.hp["eval_inner_lr"], create_graph=False)
        with torch.no_grad():
            return self.query_logits([p.detach() for p in fast], sx, qx)


class ReptileLearner(Learner):
    """Reptile: k inner steps (Adam with beta1 = 0 and a fresh state per task, or SGD) on mini-batches of the
    task's images (support and, with `train_on_queries`, queries) from theta give phi;
    theta <- theta + eps_t * mean(phi - theta), eps_t = eps_0 (1 - t/T). Evaluation: `eval_inner_steps` steps
    on mini-batches of `eval_inner_batch` support images. Nichol, Achiam & Schulman, 2018."""

    def __init__(self, *args):
        super().__init__(*args)
        self.model = Conv4(classes=self.setting["ways"], width=self.hp["width"], downsampling=self.hp["downsampling"])
        self.source = self.episode_source()
        self.transductive = self.hp["batch_norm"] == "transductive"

    def adapt(self, x, y, steps, lr, batch, rng):
        fast = [p.detach().clone().requires_grad_() for p in self.model.params]
        if self.hp["inner_optimizer"] == "adam":
            optimizer = torch.optim.Adam(fast, lr=lr, betas=(0.0, 0.999), eps=1e-8)
        else:
            optimizer = torch.optim.SGD(fast, lr=lr)
        for indices in inner_batches(len(y), batch, steps, self.hp["inner_batches"], rng):
            indices = torch.as_tensor(indices)
            optimizer.zero_grad()
            F.cross_entropy(self.model.forward(x[indices], fast), y[indices]).backward()
            optimizer.step()
        return [p.detach() for p in fast]

    def train_step(self, t):
        epsilon = self.hp["outer_lr"] * max(0.0, 1 - t / max(1, self.iterations))
        deltas = [torch.zeros_like(p) for p in self.model.params]
        for _ in range(self.meta_batch):
            sx, sy, qx, qy = self.source.episode()
            if self.hp["train_on_queries"]:
                sx, sy = torch.cat([sx, qx]), torch.cat([sy, qy])
            phi = self.adapt(sx, sy, self.hp["inner_steps"], self.hp["inner_lr"], self.hp["inner_batch"], self.rng)
            for d, p, f in zip(deltas, self.model.params, phi):
                d += f - p.detach()
        with torch.no_grad():
            for p, d in zip(self.model.params, deltas):
                p += epsilon * d / self.meta_batch

    def logits(self, sx, sy, qx, ways, index):
        rng = np.random.default_rng([self.seed, 1, index])
        fast = self.adapt(sx, sy, self.hp["eval_inner_steps"], self.hp["eval_inner_lr"], self.hp["eval_inner_batch"], rng)
        with torch.no_grad():
            if self.transductive:
                return self.model.forward(qx, fast)
            both = torch.cat([sx, qx])
            return self.model.forward(both, fast, stats_rows=len(sx))[len(sx):]


class MetricLearner(Learner):
    """Prototypical or Matching Networks: a Conv4 embedding trained with Adam (step decay of the learning
    rate every `lr_decay_every` iterations when set) on the mean query loss over the meta-batch."""

    def __init__(self, *args):
        super().__init__(*args)
        if self.name == "matchingnet" and self.hp["fce"]:
            raise UsageError("matchingnet: fce (full-context embeddings) is not implemented in the PyTorch twin")
        self.model = Conv4(width=self.hp["width"], downsampling=self.hp["downsampling"])
        self.optimizer = torch.optim.Adam(self.model.params, lr=self.hp["lr"], eps=1e-8)
        self.source = self.episode_source()
        self.transductive = self.hp["batch_norm"] == "transductive"

    def embed(self, support, query, training):
        if self.transductive:
            return self.model.forward(support), self.model.forward(query)
        if training:
            both = self.model.forward(torch.cat([support, query]), bn="train")
            return both[:len(support)], both[len(support):]
        return self.model.forward(support, bn="running"), self.model.forward(query, bn="running")

    def episode_logits(self, s, sy, q, ways):
        if self.name == "protonet":
            prototypes = torch.stack([s[sy == k].mean(dim=0) for k in range(ways)])
            return -((q[:, None, :] - prototypes[None, :, :]) ** 2).sum(dim=2)
        eps = 1e-8
        cosines = (q / q.norm(dim=1, keepdim=True).clamp_min(eps)) @ (s / s.norm(dim=1, keepdim=True).clamp_min(eps)).T
        attention = torch.softmax(self.hp["attention_scale"] * cosines, dim=1)
        return torch.log(attention @ F.one_hot(sy, ways).float() + 1e-12)

    def train_step(self, t):
        every = self.hp["lr_decay_every"]
        lr = self.hp["lr"] * (self.hp["lr_decay"] ** (t // every) if every > 0 else 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        for _ in range(self.meta_batch):
            sx, sy, qx, qy = self.source.episode()
            s, q = self.embed(sx, qx, training=True)
            loss = F.cross_entropy(self.episode_logits(s, sy, q, self.setting["ways"]), qy) / self.meta_batch
            loss.backward()
        self.optimizer.step()

    def logits(self, sx, sy, qx, ways, index):
        with torch.no_grad():
            s, q = self.embed(sx, qx, training=False)
            return self.episode_logits(s, sy, q, ways)


class CosineHead:
    """Baseline++'s classifier: logits_k = s * g_k * cos(x, w_k), g_k a weight-normalisation gain starting at
    |w_k| (dropped without `class_norm`); s = `scale`, or 2 for at most 200 classes and 10 above."""

    def __init__(self, features, classes, scale, class_norm):
        linear = torch.nn.Linear(features, classes)
        self.weight = linear.weight.detach().clone().requires_grad_()
        self.gain = self.weight.detach().norm(dim=1).clone().requires_grad_() if class_norm else None
        self.scale = scale if scale > 0 else (2.0 if classes <= 200 else 10.0)

    @property
    def params(self):
        return [self.weight] + ([self.gain] if self.gain is not None else [])

    def __call__(self, x):
        eps = 1e-10
        cos = (x / x.norm(dim=1, keepdim=True).clamp_min(eps)) @ \
            (self.weight / self.weight.norm(dim=1, keepdim=True).clamp_min(eps)).T
        if self.gain is not None:
            cos = cos * self.gain[None, :]
        return self.scale * cos


class LinearHead:
    def __init__(self, features, classes):
        linear = torch.nn.Linear(features, classes)
        self.params = [linear.weight.detach().clone().requires_grad_(), linear.bias.detach().clone().requires_grad_()]

    def __call__(self, x):
        return F.linear(x, self.params[0], self.params[1])


class BaselineLearner(Learner):
    """Baseline / Baseline++ (Chen et al., ICLR 2019): pre-train Conv4 + head on all training classes (Adam,
    batches drawn uniformly with replacement over the split's images), then per episode a new head trained
    by torch.optim.SGD on the frozen support features for `finetune_steps` steps of `finetune_batch` examples (0: 100 passes over the support set)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.cosine = self.name == "baseline++"
        self.model = Conv4(width=self.hp["width"], downsampling=self.hp["downsampling"])
        self.head = self.make_head(self.data.shape[0])
        self.optimizer = torch.optim.Adam(self.model.params + self.head.params, lr=self.hp["lr"], eps=1e-8)
        self.transductive = self.hp["batch_norm"] == "transductive"

    def make_head(self, classes):
        if self.cosine:
            return CosineHead(self.model.features, classes, self.hp["scale"], self.hp["class_norm"])
        return LinearHead(self.model.features, classes)

    def train_step(self, t):
        every = self.hp["lr_decay_every"]
        lr = self.hp["lr"] * (self.hp["lr_decay"] ** (t // every) if every > 0 else 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_classes, n_images = self.data.shape[:2]
        flat = torch.from_numpy(self.rng.integers(0, n_classes * n_images, self.hp["batch_size"]))
        labels = flat // n_images
        x = self.data[labels, flat % n_images]
        self.optimizer.zero_grad()
        F.cross_entropy(self.head(self.model.forward(x, bn="train")), labels).backward()
        self.optimizer.step()

    def logits(self, sx, sy, qx, ways, index):
        bn = "batch" if self.transductive else "running"
        with torch.no_grad():
            s, q = self.model.forward(sx, bn=bn), self.model.forward(qx, bn=bn)
        torch.manual_seed(int(np.random.default_rng([self.seed, 3, index]).integers(2 ** 62)))
        head = self.make_head(ways)
        hp = self.hp
        optimizer = torch.optim.SGD(head.params, lr=hp["finetune_lr"], momentum=hp["finetune_momentum"],
                                    dampening=hp["finetune_dampening"], weight_decay=hp["finetune_weight_decay"],
                                    nesterov=hp["finetune_nesterov"])
        rng = np.random.default_rng([self.seed, 2, index])
        # finetune_steps 0: 100 passes over the support set (CloserLookFewShot's 100 epochs).
        steps = hp["finetune_steps"] or 100 * -(-len(sy) // hp["finetune_batch"])
        for indices in finetune_batches(len(sy), hp["finetune_batch"], steps,
                                        hp["finetune_batches"], rng):
            indices = torch.as_tensor(indices)
            optimizer.zero_grad()
            F.cross_entropy(head(s[indices]), sy[indices]).backward()
            optimizer.step()
        with torch.no_grad():
            return head(q)


def make_learner(name, hp, setting, iterations, meta_batch, data, seed):
    args = (name, hp, setting, iterations, meta_batch, data, seed)
    if name in ("maml", "fomaml"):
        return MAMLLearner(*args, first_order=name == "fomaml")
    if name == "reptile":
        return ReptileLearner(*args)
    if name in ("protonet", "matchingnet"):
        return MetricLearner(*args)
    return BaselineLearner(*args)


# MARK: - The protocol

def read_suite(path):
    """What this script takes from a MetaBench suite file: dataset options, learners (name, label,
    hyperparameters, own training budget), the suite's budget and the seeds."""
    try:
        import yaml
    except ImportError:
        raise UsageError("--suite needs PyYAML (pip install pyyaml), or give --learners, --iterations and "
                         "--meta-batch instead")
    try:
        with open(path) as f:
            suite = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: cannot read the suite: {error}")
    if not isinstance(suite, dict) or "learners" not in suite or "training" not in suite:
        raise UsageError(f"{path}: not a MetaBench suite (no learners or training)")
    dataset = suite.get("dataset") or {}
    if dataset.get("resize", "area") != "bilinear":
        print(f"note: {path} does not resize with `resize: bilinear`; this script always does", file=sys.stderr)
    training = suite["training"]
    learners = []
    for entry in suite["learners"]:
        own = entry.get("training") or {}
        for key in ("train_ways", "train_shots", "train_queries"):
            if key in own:
                raise UsageError(f"{path}: learner {entry['name']} sets training.{key}; this script trains on "
                                 "the evaluation shape only")
        learners.append({
            "name": entry["name"], "label": entry.get("label", entry["name"]),
            "hyperparameters": entry.get("hyperparameters") or {},
            "iterations": own.get("iterations", training["iterations"]),
            "meta_batch": own.get("meta_batch", training.get("meta_batch", 1)),
        })
    settings = [(s["ways"], s["shots"], s.get("queries", 15)) for s in suite.get("settings") or []]
    return {"dataset": dataset, "learners": learners, "seeds": suite.get("seeds", [0]),
            "evaluation": suite.get("evaluation") or {}, "settings": settings}


def per_learner(spec, flag):
    """`N` (every learner) or `name=N,name=N` (with an optional bare default N): {name or None: N}."""
    out = {}
    for part in spec.split(","):
        part = part.strip()
        name, _, value = part.rpartition("=")
        if name and name not in LEARNERS:
            raise UsageError(f"{flag}: unknown learner '{name}' (learners: {', '.join(LEARNERS)})")
        try:
            number = int(value)
        except ValueError:
            raise UsageError(f"{flag}: '{part}' is not N or learner=N")
        if number < (0 if flag == "--iterations" else 1):
            raise UsageError(f"{flag}: {part} is out of range")
        out[name or None] = number
    return out


def parse_value(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def hyperparameters(name, given, overrides):
    """The learner's defaults with the suite's values and the --hp overrides, each checked."""
    hp = dict(DEFAULTS[name])
    # A bare --hp KEY=VALUE applies to the learners that have KEY.
    general = {key: value for key, value in overrides.get(None, {}).items() if key in hp}
    for source, values in (("the suite", given), ("--hp", general | overrides.get(name, {}))):
        for key, value in values.items():
            if key not in hp:
                raise UsageError(f"{name}: unknown hyperparameter '{key}' in {source} "
                                 f"(known: {', '.join(sorted(hp))})")
            hp[key] = value
    for key, allowed in CHOICES.items():
        if key in hp and hp[key] not in allowed:
            raise UsageError(f"{name}: {key} must be one of {', '.join(allowed)}, got {hp[key]!r}")
    if name.startswith("baseline") and hp["finetune_nesterov"] and (hp["finetune_momentum"] <= 0
                                                                    or hp["finetune_dampening"] != 0):
        raise UsageError(f"{name}: finetune_nesterov needs finetune_momentum > 0 and finetune_dampening 0 "
                         "(as torch.optim.SGD)")
    if hp.get("fce"):
        raise UsageError(f"{name}: fce (full-context embeddings) is not implemented in the PyTorch twin")
    bn = BN_CHOICES.get(name, ["running", "transductive"])
    if hp["batch_norm"] not in bn:
        raise UsageError(f"{name}: batch_norm must be one of {', '.join(bn)}, got {hp['batch_norm']!r}")
    return hp


def evaluate(learner, setting, limit):
    accuracies = []
    start = time.perf_counter()
    for index, e in enumerate(setting["episodes"][:limit]):
        logits = learner.logits(e["support"], e["support_labels"], e["query"], e["ways"], index)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(f"episode {index}: the logits are not finite")
        accuracies.append(accuracy(logits, e["query_labels"]))
    return accuracies, time.perf_counter() - start


def summary(accuracies):
    """Mean and 95% CI half-width 1.96*std/sqrt(n) (sample standard deviation), in percent."""
    n = len(accuracies)
    mean = sum(accuracies) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (n - 1)) if n > 1 else 0.0
    return 100 * mean, 100 * 1.96 * std / math.sqrt(n) if n > 1 else 0.0


def write_json(path, value):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", help="MetaBench suite file to take learners, hyperparameters, budgets and seeds from")
    parser.add_argument("--episodes", action="append", required=True, metavar="FILE",
                        help="metabench-episodes-v1 file of one setting (repeat for several settings)")
    parser.add_argument("--dataset", default=None, help="torchmeta Omniglot folder (default: the suite's, else datasets/omniglot-small)")
    parser.add_argument("--learners", help=f"comma-separated learners or suite labels (default: the suite's, else all: {','.join(LEARNERS)})")
    parser.add_argument("--iterations", help="N, or learner=N,... (overrides the suite's)")
    parser.add_argument("--meta-batch", help="N, or learner=N,... (overrides the suite's)")
    parser.add_argument("--seeds", help="comma-separated training seeds (default: the suite's, else 0)")
    parser.add_argument("--count", type=int, help="evaluate only the first N episodes of each file")
    parser.add_argument("--hp", action="append", default=[], metavar="[LEARNER.]KEY=VALUE",
                        help="override a hyperparameter (repeatable); without LEARNER. it applies to every learner that has KEY")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--output", default="parity-pytorch.json", help="JSON results file (rewritten after every cell)")
    args = parser.parse_args(argv)

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    suite = read_suite(args.suite) if args.suite else {
        "dataset": {}, "learners": [{"name": n, "label": n, "hyperparameters": {}, "iterations": None, "meta_batch": 1}
                                    for n in LEARNERS], "seeds": [0], "evaluation": {}}
    entries = suite["learners"]
    if args.learners:
        wanted = [w.strip() for w in args.learners.split(",") if w.strip()]
        known = {e["label"] for e in entries} | {e["name"] for e in entries}
        for w in wanted:
            if w not in known:
                raise UsageError(f"--learners: '{w}' is not a learner of {args.suite or 'this script'} ({', '.join(sorted(known))})")
        entries = [e for e in entries if e["label"] in wanted or e["name"] in wanted]
    for e in entries:
        if e["name"] not in LEARNERS:
            raise UsageError(f"learner '{e['name']}' has no PyTorch twin (twins: {', '.join(LEARNERS)})")
    iterations = per_learner(args.iterations, "--iterations") if args.iterations else {}
    meta_batch = per_learner(args.meta_batch, "--meta-batch") if args.meta_batch else {}
    overrides = {}
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--hp {item}: expected [LEARNER.]KEY=VALUE")
        learner, dot, key = key.rpartition(".") if key.split(".")[0] in LEARNERS else ("", "", key)
        overrides.setdefault(learner or None, {})[key] = parse_value(value)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [int(s) for s in suite["seeds"]]
    except ValueError:
        raise UsageError(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    for key in overrides.get(None, {}):
        if not any(key in DEFAULTS[e["name"]] for e in entries):
            raise UsageError(f"--hp {key}: no selected learner has that hyperparameter")
    cells = []
    for e in entries:
        n_iterations = iterations.get(e["name"], iterations.get(None, e["iterations"]))
        if n_iterations is None:
            raise UsageError(f"{e['label']}: no iteration budget (give --iterations or --suite)")
        cells.append({**e, "hp": hyperparameters(e["name"], e["hyperparameters"], overrides),
                      "iterations": n_iterations,
                      "meta_batch": meta_batch.get(e["name"], meta_batch.get(None, e["meta_batch"]))})

    settings = [read_episodes(path) for path in args.episodes]
    for s in settings:
        shape = (s["ways"], s["shots"], s["queries"])
        if suite.get("settings") and shape not in suite["settings"]:
            print(f"note: {s['path']} holds {s['ways']}-way {s['shots']}-shot episodes with {s['queries']} queries "
                  f"per class, not a setting of {args.suite}", file=sys.stderr)
    dataset = suite["dataset"]
    folder = args.dataset or dataset.get("path", "datasets/omniglot-small")
    start = time.perf_counter()
    train = load_split(folder, (dataset.get("splits") or {}).get("train", "train"),
                       dataset.get("image_size", 28), dataset.get("rotations", True), dataset.get("labels_prefix", ""))
    image_shape = tuple(train.shape[2:])
    for s in settings:
        if tuple(s["episodes"][0]["support"].shape[1:]) != image_shape:
            raise UsageError(f"{s['path']}: images of {tuple(s['episodes'][0]['support'].shape[1:])}, but the "
                             f"training images are {image_shape}")
    print(f"# torch {torch.__version__}, {args.threads} threads, Python {platform.python_version()}; "
          f"{train.shape[0]} training classes of {train.shape[1]} images {image_shape} loaded in "
          f"{time.perf_counter() - start:.1f} s", flush=True)

    output = {"format": "metabench-parity-pytorch-v1", "torch": torch.__version__, "threads": args.threads,
              "suite": args.suite, "dataset": folder, "results": []}
    for cell in cells:
        # The baselines' pre-training does not depend on the setting: one model per seed serves every setting.
        shared = cell["name"] in ("baseline", "baseline++")
        pretrained = {}
        for s in settings:
            per_seed = []
            for seed in seeds:
                torch.manual_seed(seed)
                setting = {"ways": s["ways"], "shots": s["shots"], "queries": s["queries"]}
                if shared and seed in pretrained:
                    learner, seconds = pretrained[seed]
                else:
                    learner = make_learner(cell["name"], cell["hp"], setting, cell["iterations"], cell["meta_batch"],
                                           train, seed)
                    t0 = time.perf_counter()
                    for t in range(cell["iterations"]):
                        learner.train_step(t)
                    seconds = time.perf_counter() - t0
                    if shared:
                        pretrained[seed] = (learner, seconds)
                try:
                    accuracies, eval_seconds = evaluate(learner, s, args.count)
                except FloatingPointError as error:
                    # As MetaBench: non-finite logits make the cell diverged; the run goes on.
                    print(f"{cell['label']:12} {s['name']:6} seed {seed}: diverged ({error})", flush=True)
                    continue
                mean, ci = summary(accuracies)
                per_seed.append({"seed": seed, "accuracy": mean, "ci95": ci, "training_seconds": seconds,
                                 "evaluation_seconds": eval_seconds, "episode_accuracies": accuracies})
                print(f"{cell['label']:12} {s['name']:6} seed {seed}: {mean:6.2f} ± {ci:5.2f}%  "
                      f"train {seconds:8.1f} s ({1000 * seconds / max(1, cell['iterations']):7.1f} ms/iteration)  "
                      f"eval {eval_seconds:6.1f} s", flush=True)
            if not per_seed:
                continue
            pooled = [a for r in per_seed for a in r["episode_accuracies"]]
            mean, ci = summary(pooled)
            output["results"].append({
                "learner": cell["name"], "label": cell["label"], "setting": s["name"], "ways": s["ways"],
                "shots": s["shots"], "queries": s["queries"], "episodes_file": s["path"],
                "episodes": len(per_seed[0]["episode_accuracies"]), "seeds": [r["seed"] for r in per_seed],
                "diverged_seeds": [seed for seed in seeds if seed not in {r["seed"] for r in per_seed}],
                "accuracy": mean, "ci95": ci,
                "iterations": cell["iterations"], "meta_batch": cell["meta_batch"], "hyperparameters": cell["hp"],
                "training_seconds": sum(r["training_seconds"] for r in per_seed), "per_seed": per_seed})
            write_json(args.output, output)
            if len(per_seed) > 1:
                print(f"{cell['label']:12} {s['name']:6} pooled over {len(per_seed)} seeds: {mean:6.2f} ± {ci:5.2f}%",
                      flush=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
