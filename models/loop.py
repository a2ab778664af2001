"""The training epoch and the validation pass, on tensors already on the device; inputs, targets and samples.

>>> import torch, models
>>> net = models.build("conv_transpose", num_filters=2, num_colours=3)
>>> stats = {}
>>> loss = train_epoch(net, torch.optim.Adam(net.parameters()), torch.rand(5, 1, 8, 8),
...                    torch.randint(0, 3, (5, 8, 8)), 2, torch.Generator().manual_seed(0), stats=stats)
>>> stats["grad_norm_first"] > 0
True
"""
from __future__ import annotations

import io
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data import CategoryData, greyscale, nearest_colour
from .palette import Palette


def pixels_last(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C, H, W]`` and targets ``[N, H, W]`` as ``[N*H*W, C]`` and ``[N*H*W]`` when that is free.

    For a channels_last output the permuted view is already contiguous: the loss then needs no
    layout copies forward or backward (about 2x faster than the 4-d loss on a channels_last
    output). Otherwise the 4-d form is kept.
    """
    if out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous():
        return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]), y.reshape(-1)
    return out, y


def channels_last_input(t: torch.Tensor) -> torch.Tensor:
    """``t`` with unambiguous channels_last strides, without copying when it has one channel.

    A contiguous ``[N, 1, H, W]`` tensor counts as both layouts, so ``torch.cat`` with it (UNet's
    skip from the input) falls back to NCHW and the next convolution converts its input forward and
    backward (13% of a UNet step on 2 threads). With strides ``(H*W, 1, W, 1)`` the same memory
    reads as channels_last.

    >>> channels_last_input(torch.zeros(2, 1, 4, 4)).stride()
    (16, 1, 4, 1)
    """
    if t.dim() != 4:
        return t
    n, c, h, w = t.shape
    if c == 1 and t.is_contiguous():
        return t.as_strided(t.shape, (h * w, 1, w, 1))
    return t.contiguous(memory_format=torch.channels_last)


def acc_dtype(dev: torch.device) -> torch.dtype:
    """Accumulate sums in float64, except on MPS, which has no float64."""
    return torch.float32 if dev.type == "mps" else torch.float64


def first_conv(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The weight of the model's first convolution (in module order), or None.

    >>> import models
    >>> tuple(first_conv(models.build("unet", num_filters=4)).shape)
    (4, 1, 3, 3)
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd) and isinstance(getattr(m, "weight", None), torch.nn.Parameter):
            return m.weight
    return None


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                batch_size: int, generator: torch.Generator, *, amp_dtype: torch.dtype | None = None,
                on_batch: Callable[[], Any] | None = None, stats: dict[str, float] | None = None) -> float:
    """One pass over ``(x, y)`` (already on the model's device) in an order drawn from ``generator``.

    Returns the mean per-pixel training loss (batches weighted by their size); the last batch may
    be smaller than ``batch_size``. With ``stats``, also stores ``grad_norm_first``: the L2 norm of
    the first convolution's weight gradient, averaged over the steps. Nothing waits for the device
    until the epoch ends (one host sync per epoch).
    """
    model.train()
    n = len(x)
    dev = x.device
    perm = torch.randperm(n, generator=generator)
    if dev.type != "cpu":
        perm = perm.to(dev, non_blocking=True)
    total = torch.zeros((), dtype=acc_dtype(dev), device=dev)
    first = first_conv(model) if stats is not None else None
    grad_sum = torch.zeros((), dtype=acc_dtype(dev), device=dev)
    steps = 0
    autocast = torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    cl = x.dim() == 4 and x.shape[1] * x.shape[2] * x.shape[3] > 1 and x.stride(1) == 1  # channels_last strides
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb = x.index_select(0, idx)
        if cl:
            xb = channels_last_input(xb)
        yb = y.index_select(0, idx)
        with autocast:
            out = model(xb)
        logits, targets = pixels_last(out.float(), yb)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if first is not None and first.grad is not None:
            grad_sum += torch.linalg.vector_norm(first.grad.detach().float()).to(grad_sum.dtype)
        optimizer.step()
        total += loss.detach().to(total.dtype) * len(idx)
        steps += 1
        if on_batch is not None:
            on_batch()
    if stats is not None:
        stats["grad_norm_first"] = float(grad_sum.item()) / max(steps, 1) if first is not None else math.nan
    return float(total.item()) / n


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 100,
             amp_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """Mean per-pixel cross-entropy and per-pixel accuracy of ``model`` (in eval mode, no autograd).

    >>> import torch, models
    >>> net = models.build("unet", num_filters=2, num_colours=3)
    >>> loss, acc = evaluate(net, torch.rand(3, 1, 8, 8), torch.randint(0, 3, (3, 8, 8)))
    >>> 0 <= acc <= 1
    True
    """
    model.eval()
    dev = x.device
    loss_sum = torch.zeros((), dtype=acc_dtype(dev), device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    autocast = torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = y[start:start + batch_size]
            with autocast:
                out = model(xb)
            logits, targets = pixels_last(out.float(), yb)
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").to(loss_sum.dtype)
            correct += (logits.argmax(dim=1) == targets).sum()
    pixels = y.numel()
    return float(loss_sum.item()) / pixels, int(correct.item()) / pixels


def time_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, channels_last: bool
              ) -> Callable[[], float]:
    """A function timing one training step on a private copy of ``model`` (for choosing threads and layout).

    The copy has its own Adam optimizer, so the run's model, optimizer and random state are untouched.

    >>> import models
    >>> step = time_step(models.build("unet", num_filters=2, num_colours=3), torch.rand(2, 1, 8, 8),
    ...                  torch.randint(0, 3, (2, 8, 8)), 1e-3, channels_last=True)
    >>> step() > 0
    True
    """
    import copy
    import time
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(model).to(memory_format=fmt)
    x = channels_last_input(x) if channels_last else x.contiguous()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()

    def step() -> float:
        t = time.perf_counter()
        logits, targets = pixels_last(net(x).float(), y)
        loss = F.cross_entropy(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t
    return step


# ----------------------------------------------------------------------------- tensors

_TENSOR_MEMO: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}


def colourization_arrays(data: CategoryData, palette: Palette) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_val, y_val)``: greyscale float32 ``[N, 1, 32, 32]`` and int64 targets ``[N, 32, 32]``."""
    key = (data.fingerprint, palette.sha256)
    if key not in _TENSOR_MEMO:
        _TENSOR_MEMO.clear()  # keep one entry: a sweep reuses the same data and palette
        pal = palette.array
        _TENSOR_MEMO[key] = (greyscale(data.train), nearest_colour(data.train, pal)[:, 0],
                             greyscale(data.test), nearest_colour(data.test, pal)[:, 0])
    return _TENSOR_MEMO[key]  # type: ignore[return-value]


def samples_png(model: torch.nn.Module, x_val: torch.Tensor, y_val: np.ndarray, rgb_val: np.ndarray,
                palette: Palette, n: int, amp_dtype: torch.dtype | None) -> bytes | None:
    """A PNG grid: greyscale input, prediction, target (nearest palette colours) and original, one column per image."""
    from PIL import Image, ImageDraw
    n = min(n, len(x_val))
    if n <= 0:
        return None
    model.eval()
    with torch.inference_mode(), torch.autocast(device_type=x_val.device.type, dtype=amp_dtype or torch.bfloat16,
                                                enabled=amp_dtype is not None):
        pred = model(x_val[:n]).float().argmax(dim=1).cpu().numpy()
    pal = palette.array
    grey = x_val[:n, 0].float().cpu().numpy()
    rows = [("input", np.repeat(grey[..., None], 3, axis=-1)), ("prediction", pal[pred]),
            ("target", pal[y_val[:n]]), ("original", rgb_val[:n].transpose(0, 2, 3, 1) / 256.0)]
    scale, gap, label_w = 3, 2, 70
    h, w = grey.shape[1] * scale, grey.shape[2] * scale
    canvas = Image.new("RGB", (label_w + n * (w + gap), len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, imgs) in enumerate(rows):
        y0 = r * (h + gap)
        draw.text((3, y0 + h // 2 - 5), label, fill="black")
        for i in range(n):
            tile = Image.fromarray(np.clip(imgs[i] * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
            canvas.paste(tile.resize((w, h), Image.NEAREST), (label_w + i * (w + gap), y0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
