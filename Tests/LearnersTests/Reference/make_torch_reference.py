"""Writes torch-reference.h5: MAML, first-order MAML, Prototypical and Matching Network gradients and a Reptile
inner loop (SGD) computed by learn2learn 0.2.0 / PyTorch for one fixed episode and fixed Conv4 weights, which
`TorchReferenceTests.swift` compares with MetaBench's.

Run it with the venv described in Benchmarks/Peer/README.md (torch, learn2learn 0.2.0, h5py), from the
repository root:
    /tmp/peer/bin/python Tests/LearnersTests/Reference/make_torch_reference.py
The model is Conv4 of width 8 (4 x [conv3x3, BatchNorm with batch statistics, ReLU, maxpool 2]) and a linear
head, on 28x28 grey images: MetaBench's `Conv4(width: 8)` with parameters named block{i}.conv.weight etc.
"""
import copy, os
import h5py, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
import learn2learn as l2l

torch.manual_seed(0)
torch.set_num_threads(1)
WAYS, SHOTS, QUERIES, WIDTH = 5, 1, 3, 8

def conv4(out_features):
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o, track_running_stats=False),
                             nn.ReLU(), nn.MaxPool2d(2))
    layers = [block(1, WIDTH), block(WIDTH, WIDTH), block(WIDTH, WIDTH), block(WIDTH, WIDTH), nn.Flatten()]
    if out_features:
        layers.append(nn.Linear(WIDTH, out_features))
    return nn.Sequential(*layers)

def metabench_name(torch_name):
    """0.0.weight -> block1.conv.weight, 0.1.bias -> block1.bn.bias, 5.weight -> head.weight."""
    parts = torch_name.split(".")
    if parts[0] == "5":
        return "head." + parts[1]
    return "block%d.%s.%s" % (int(parts[0]) + 1, {"0": "conv", "1": "bn"}[parts[1]], parts[2])

model = conv4(WAYS)
with torch.no_grad():  # BatchNorm scales away from 1 so that their gradients are not special
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
xs = torch.rand(WAYS * SHOTS, 1, 28, 28)
ys = torch.arange(WAYS).repeat_interleave(SHOTS)
xq = torch.rand(WAYS * QUERIES, 1, 28, 28)
yq = torch.arange(WAYS).repeat_interleave(QUERIES)

def maml_gradients(first_order, steps, lr=0.4):
    maml = l2l.algorithms.MAML(model, lr=lr, first_order=first_order)
    maml.zero_grad()
    learner = maml.clone()
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(xs), ys))
    loss = F.cross_entropy(learner(xq), yq)
    loss.backward()
    return {metabench_name(n): p.grad.detach().clone() for n, p in model.named_parameters()}, loss.item()

def protonet_gradients():
    body = conv4(0)
    body.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("5.")})
    z = body(torch.cat([xs, xq]))
    zs, zq = z[: WAYS * SHOTS], z[WAYS * SHOTS:]
    protos = zs.view(WAYS, SHOTS, -1).mean(1)
    loss = F.cross_entropy(-torch.cdist(zq, protos) ** 2, yq)
    loss.backward()
    return {metabench_name(n): p.grad.detach().clone() for n, p in body.named_parameters()}, loss.item()

def matchingnet_gradients():
    """Matching Networks without full-context embeddings: log of the cosine-softmax attention mass per class."""
    body = conv4(0)
    body.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("5.")})
    z = body(torch.cat([xs, xq]))
    g, f = z[: WAYS * SHOTS], z[WAYS * SHOTS:]
    cos = F.normalize(f, dim=1, eps=1e-8) @ F.normalize(g, dim=1, eps=1e-8).t()
    probabilities = cos.softmax(dim=1) @ F.one_hot(ys, WAYS).float()
    loss = F.cross_entropy(torch.log(probabilities + 1e-12), yq)
    loss.backward()
    return {metabench_name(n): p.grad.detach().clone() for n, p in body.named_parameters()}, loss.item()

def reptile_sgd_delta(steps=3, lr=0.1):
    """Reptile's inner loop with plain SGD on the whole support set: phi - theta after `steps` steps."""
    learner = copy.deepcopy(model)
    optimizer = torch.optim.SGD(learner.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(learner(xs), ys).backward()
        optimizer.step()
    with torch.no_grad():
        return {metabench_name(n): (p - q).clone()
                for (n, p), (_, q) in zip(learner.named_parameters(), model.named_parameters())}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch-reference.h5")
with h5py.File(out, "w") as f:
    f.attrs["made_by"] = "make_torch_reference.py, torch %s, learn2learn %s" % (torch.__version__, l2l.__version__)
    f["support/x"] = xs.numpy(); f["support/y"] = ys.numpy()
    f["query/x"] = xq.numpy(); f["query/y"] = yq.numpy()
    for n, p in model.named_parameters():
        f["theta/" + metabench_name(n)] = p.detach().numpy()
    for group, (grads, loss) in {
        "maml": maml_gradients(False, 1), "maml_2steps": maml_gradients(False, 2),
        "fomaml": maml_gradients(True, 1), "protonet": protonet_gradients(),
        "matchingnet": matchingnet_gradients(),
    }.items():
        f[group + "/loss"] = np.float32(loss)
        for name, g in grads.items():
            f[group + "/grad/" + name] = g.numpy()
    for name, d in reptile_sgd_delta().items():
        f["reptile_sgd/delta/" + name] = d.numpy()
print("wrote", out)
