"""Writes resize-reference.h5: random uint8 images resized by PyTorch's antialiased bilinear interpolation,
which `ResizeReferenceTests.swift` compares with MetaBench's `resize: bilinear`.

Run it with the venv described in Benchmarks/Peer/README.md (torch, h5py), from the repository root:
    /tmp/peer/bin/python Tests/FewShotDataTests/Reference/make_resize_reference.py
Each case is one uint8 image (C, H, W) stored as `<case>/input`; it is turned into floats in [0, 1] (x / 255,
as MetaBench does) and resized with
    torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
(= torchvision's `Resize` on a float tensor), stored as float32 `<case>/<h>x<w>`. Enlarging with antialias is
checked here to equal plain bilinear (antialias=False) before it is stored.

Group `omniglot` holds exact area averages, computed independently with numpy, of the first training class of
datasets/omniglot-small (Balinese/character01, 20 images of 105x105) at 28x28: every pixel repeated 4x4 to
420x420, then the means of 15x15 blocks, in float64. `area` is that mean / 255 (float32), `area_uint8` the
mean rounded half up (the images hold only 0 and 255, so a block mean 17k/15 is never within 1/30 of a tie).
"""
import os
import h5py, numpy as np, torch, torch.nn.functional as F

rng = np.random.default_rng(20240611)
CASES = {
    # name: (input shape, output sizes)
    "grey105": ((1, 105, 105), [(28, 28), (20, 20), (84, 84), (20, 28)]),
    "rgb32": ((3, 32, 32), [(20, 20), (28, 28), (84, 84)]),
}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resize-reference.h5")
with h5py.File(path, "w") as f:
    f.attrs["torch_version"] = str(torch.__version__)
    for name, (shape, sizes) in CASES.items():
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        x = torch.from_numpy(image.astype(np.float32) / np.float32(255)).unsqueeze(0)
        group = f.create_group(name)
        group.create_dataset("input", data=image)
        for h, w in sizes:
            y = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            if h >= shape[1] and w >= shape[2]:
                plain = F.interpolate(x, size=(h, w), mode="bilinear", antialias=False, align_corners=False)
                assert torch.allclose(y, plain, rtol=0, atol=1e-6), (name, h, w, (y - plain).abs().max())
            group.create_dataset("%dx%d" % (h, w), data=y.squeeze(0).numpy().astype(np.float32), compression="gzip")
    root = os.path.join(os.path.dirname(path), "..", "..", "..", "datasets", "omniglot-small", "data.hdf5")
    with h5py.File(root, "r") as omniglot:
        images = omniglot["images_background/Balinese/character01"][...].astype(np.float64)
    assert images.shape == (20, 105, 105) and set(np.unique(images)) <= {0.0, 255.0}
    means = images.repeat(4, axis=1).repeat(4, axis=2).reshape(20, 28, 15, 28, 15).mean(axis=(2, 4))
    group = f.create_group("omniglot")
    group.create_dataset("area", data=(means / 255).astype(np.float32), compression="gzip")
    group.create_dataset("area_uint8", data=np.floor(means + 0.5).astype(np.uint8), compression="gzip")
print("wrote", path, os.path.getsize(path), "bytes")
