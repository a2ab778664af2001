"""Colour palettes for colourization as classification: loading (CSV or .npy) and deterministic k-means.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> rgb = rng.integers(0, 256, size=(4, 3, 8, 8), dtype=np.uint8)
>>> a, b = compute_palette(rgb, k=4, seed=0), compute_palette(rgb, k=4, seed=0)
>>> a.shape, bool((a == b).all())
((4, 3), True)
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import ArchcountError

from .data import CategoryData, atomic_write, atomic_write_bytes, default_cache_dir, safe_unpickle

#: Defaults of archcount's own palette.
DEFAULT_K = 24
DEFAULT_SEED = 0
KMEANS_SAMPLE = 200_000
KMEANS_ITERS = 50
#: The most colours a palette may have (file or k-means): the model's output has one channel per colour.
MAX_COLOURS = 256
#: The largest palette file read (a CSV of MAX_COLOURS rows is about 20 kB).
MAX_PALETTE_BYTES = 1 << 20
#: Bumped whenever the k-means procedure changes (it is part of the cache key).
KMEANS_VERSION = 1


@dataclass(frozen=True)
class Palette:
    """``k`` RGB colours in [0, 1], and where they came from.

    ``kind`` is ``"file"`` (given by the user) or ``"kmeans"`` (computed by archcount).

    >>> p = Palette(((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), "file", "example")
    >>> p.k, p.array.shape
    (2, (2, 3))
    """

    colours: tuple[tuple[float, float, float], ...]
    kind: str
    description: str
    path: str | None = None

    @property
    def array(self) -> np.ndarray:
        return np.array(self.colours, dtype=np.float64).reshape(-1, 3)

    @property
    def k(self) -> int:
        return len(self.colours)

    @property
    def sha256(self) -> str:
        """Hash of the colours (float64 little-endian), independent of the file they came from."""
        return hashlib.sha256(self.array.astype("<f8").tobytes()).hexdigest()

    @classmethod
    def from_array(cls, arr: np.ndarray, kind: str, description: str, path: str | None = None) -> "Palette":
        arr = validate_palette(arr, path or description)
        return cls(tuple(tuple(float(v) for v in row) for row in arr), kind, description, path)  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "path": self.path, "k": self.k,
                "sha256": self.sha256, "colours": [list(c) for c in self.colours]}

    def csv_text(self) -> str:
        """The palette as CSV with a ``r,g,b`` header (full float precision, round-trips exactly)."""
        return "r,g,b\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in self.colours)

    def save_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`csv_text` atomically."""
        atomic_write_bytes(path, self.csv_text().encode())


def validate_palette(arr: Any, where: str = "palette") -> np.ndarray:
    """Check a ``[K, 3]`` array of finite colours in [0, 1] with K >= 2 and return it as float64.

    >>> validate_palette([[0, 0, 0], [1, 1, 1]]).dtype
    dtype('float64')
    """
    try:
        a = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArchcountError(f"{where}: not a numeric array ({exc})", argument="palette") from None
    if a.ndim != 2 or a.shape[1] != 3:
        raise ArchcountError(f"{where}: a palette must have shape [K, 3] (one r,g,b row per colour), got "
                             f"{list(a.shape)}", argument="palette", shapes={"palette": a.shape})
    if len(a) < 2:
        raise ArchcountError(f"{where}: a palette needs at least 2 colours, got {len(a)}", argument="palette")
    if len(a) > MAX_COLOURS:
        raise ArchcountError(f"{where}: a palette may have at most {MAX_COLOURS} colours, got {len(a)}",
                             argument="palette")
    if not np.isfinite(a).all():
        raise ArchcountError(f"{where}: colours must be finite numbers", argument="palette")
    if a.min() < 0 or a.max() > 1:
        raise ArchcountError(f"{where}: colours must lie in [0, 1], got values in [{a.min():g}, {a.max():g}]",
                             argument="palette", hint="divide 0..255 values by 255" if a.max() > 1 else None)
    return a


def load_palette(path: str | os.PathLike[str]) -> Palette:
    """Load a palette from a CSV file (rows ``r,g,b`` in [0, 1], optional header) or a ``.npy`` file.

    A ``.npy`` may hold the ``[K, 3]`` array, or the exercise's object array ``(centres, distortion)``
    (read without running pickled code).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.csv"
    >>> _ = p.write_text("r,g,b\\n0,0,0\\n1,0.5,0.25\\n")
    >>> load_palette(p).colours[1]
    (1.0, 0.5, 0.25)
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise ArchcountError(f"{p} is a folder, not a palette file", argument="palette")
    if not p.is_file():
        raise ArchcountError(f"palette file {p} does not exist", argument="palette")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ArchcountError(f"cannot read the palette file {p}: {exc.strerror or exc}", argument="palette") from None
    if size > MAX_PALETTE_BYTES:
        raise ArchcountError(f"palette file {p} is {size:,} bytes; a palette of at most {MAX_COLOURS} colours "
                             f"fits in {MAX_PALETTE_BYTES:,}", argument="palette")
    if p.suffix.lower() == ".npy":
        arr = _read_npy(p)
    else:
        arr = _read_csv(p)
    arr = validate_palette(arr, str(p))
    return Palette.from_array(arr, "file", f"file {p.resolve()} ({len(arr)} colours)", str(p.resolve()))


def _read_csv(p: Path) -> np.ndarray:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise ArchcountError(f"palette file {p} is not a readable text CSV ({exc})", argument="palette") from None
    rows: list[list[float]] = []
    first = True
    for lineno, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields]
        if not fields or all(f == "" for f in fields) or fields[0].startswith("#"):
            continue
        header_allowed, first = first, False
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if header_allowed and len(fields) == 3:
                continue  # a header such as r,g,b
            raise ArchcountError(f"palette file {p}, line {lineno}: expected three numbers r,g,b, got "
                                 f"{','.join(fields)!r}", argument="palette") from None
        if len(values) != 3:
            raise ArchcountError(f"palette file {p}, line {lineno}: expected three numbers r,g,b, got "
                                 f"{len(values)}", argument="palette")
        rows.append(values)
    if not rows:
        raise ArchcountError(f"palette file {p} holds no colours", argument="palette")
    return np.array(rows, dtype=np.float64)


def _read_npy(p: Path) -> np.ndarray:
    try:
        with open(p, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            if not dtype.hasobject and math.prod(shape) > 3 * MAX_COLOURS:
                raise ArchcountError(f"palette file {p} holds an array of shape {list(shape)}; a palette has at "
                                     f"most {MAX_COLOURS} rows of r,g,b", argument="palette")
            if dtype.hasobject:
                obj: Any = safe_unpickle(fh, encoding="latin1")
            else:
                fh.seek(0)
                obj = np.load(fh, allow_pickle=False)
    except ArchcountError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a malformed file
        raise ArchcountError(f"palette file {p} is not a valid .npy array ({type(exc).__name__}: {exc})",
                             argument="palette") from None
    arr = np.asarray(obj)
    if arr.dtype == object:
        # the exercise's format: an object array (centres, distortion)
        first = arr.flat[0] if arr.size else None
        arr = np.asarray(first) if first is not None else arr
        if arr.dtype == object:
            raise ArchcountError(f"palette file {p}: expected a [K, 3] array or (centres, distortion)",
                                 argument="palette")
    return arr


# ----------------------------------------------------------------------------- k-means

def compute_palette(rgb: np.ndarray, k: int = DEFAULT_K, seed: int = DEFAULT_SEED, *, sample: int = KMEANS_SAMPLE,
                    iters: int = KMEANS_ITERS) -> np.ndarray:
    """k-means centres of the pixels of ``rgb`` (uint8 ``[N, 3, H, W]``, divided by 256), deterministic in ``seed``.

    Up to ``sample`` pixels, drawn with ``numpy.random.default_rng(seed)``, are clustered with
    ``scipy.cluster.vq.kmeans2`` (k-means++ initialisation, ``iters`` iterations).
    Returns float64 ``[k, 3]``, sorted by brightness then r, g, b.
    """
    from scipy.cluster.vq import kmeans2
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= MAX_COLOURS:
        raise ArchcountError(f"the palette size must be an integer from 2 to {MAX_COLOURS}, got {k!r}",
                             argument="palette_k")
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ArchcountError(f"expects RGB images [N, 3, H, W], got shape {list(rgb.shape)}", argument="rgb")
    pixels = rgb.transpose(0, 2, 3, 1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    if len(pixels) > sample:
        idx = np.sort(rng.choice(len(pixels), size=sample, replace=False))
        pixels = pixels[idx]
    points = pixels / 256.0
    distinct = len(np.unique(pixels.astype(np.int32) @ np.array([65536, 256, 1], dtype=np.int32)))
    if distinct < k:
        raise ArchcountError(f"the images hold only {distinct} distinct colours, fewer than the {k} requested",
                             argument="palette_k")
    kwargs: dict[str, Any] = {}
    params = inspect.signature(kmeans2).parameters
    if "rng" in params:
        kwargs["rng"] = rng
    else:  # scipy < 1.15
        kwargs["seed"] = rng
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "one of the clusters is empty": kmeans2 then keeps the old centre
        centres, _ = kmeans2(points, int(k), iter=iters, minit="++", **kwargs)
    centres = np.clip(centres.astype(np.float64), 0.0, 1.0)
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0], centres.sum(axis=1)))
    return centres[order]


def kmeans_palette(data: CategoryData, k: int = DEFAULT_K, seed: int = DEFAULT_SEED, *,
                   cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True) -> Palette:
    """archcount's own palette: :func:`compute_palette` on ``data.train``, cached per data fingerprint, k and seed."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = (f"kmeans-v{KMEANS_VERSION}-k{k}-s{seed}-n{KMEANS_SAMPLE}-i{KMEANS_ITERS}-"
            f"{data.fingerprint[:24]}.npy")
    path = cache / "palettes" / name
    desc = (f"k-means of the {data.category!r} training pixels computed by archcount (k={k}, seed={seed}, "
            f"{KMEANS_SAMPLE:,} sampled pixels, k-means++ and {KMEANS_ITERS} iterations)")
    if use_cache and path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (k, 3):
                return Palette.from_array(arr, "kmeans", desc + "; cached", None)
        except Exception as exc:  # noqa: BLE001 - rebuild a damaged cache
            warnings.warn(f"ignoring the damaged palette cache {path}: {exc}", stacklevel=2)
    arr = compute_palette(data.train, k, seed)
    if use_cache:
        try:
            atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))
        except OSError as exc:
            warnings.warn(f"could not cache the palette in {path}: {exc}", stacklevel=2)
    return Palette.from_array(arr, "kmeans", desc, None)


def resolve_palette(palette: str | os.PathLike[str] | Palette | None, data: CategoryData, *, k: int = DEFAULT_K,
                    seed: int = DEFAULT_SEED, cache_dir: str | os.PathLike[str] | None = None) -> Palette:
    """A :class:`Palette` from a file path, an existing palette, or (None) archcount's k-means palette."""
    if isinstance(palette, Palette):
        return palette
    if palette is None or str(palette) == "":
        return kmeans_palette(data, k, seed, cache_dir=cache_dir)
    return load_palette(palette)


def palette_distortion(rgb: np.ndarray, palette: np.ndarray) -> float:
    """Mean distance of each pixel (divided by 256) to its nearest palette colour.

    >>> import numpy as np
    >>> palette_distortion(np.zeros((1, 3, 2, 2), np.uint8), np.array([[0.0, 0, 0], [1, 1, 1]]))
    0.0
    """
    from .data import nearest_colour
    lab = nearest_colour(rgb, palette)[:, 0]
    px = np.asarray(rgb).transpose(0, 2, 3, 1) / 256.0
    return float(np.linalg.norm(px - np.asarray(palette)[lab], axis=-1).mean())

