"""CIFAR-10 colourization data: sources, resolution order, category loading, greyscale inputs and targets.

Two source formats are read:

* the official python-pickle archive ``cifar-10-python.tar.gz`` or its extracted
  ``cifar-10-batches-py/`` folder (lossless);
* an image-folder tree ``<root>/{train,test}/<class>/*.{png,jpg}``, or a zip of one
  (``../shared/data/cifar10-jpeg.zip`` is such a zip, a JPEG re-encoding).

:func:`resolve_source` picks the source (``data`` argument, ``$ARCHCOUNT_DATA``, the cache
directory, ``../shared/data/cifar10-jpeg.zip``, then a download of the official archive);
:func:`load_category` decodes one category only and caches the decoded arrays.

>>> import numpy as np
>>> rgb = np.array([[[[0]], [[128]], [[255]]]], dtype=np.uint8)   # one 1x1 image, R=0 G=128 B=255
>>> bool(greyscale(rgb)[0, 0, 0, 0] == np.float32((0 + 128 + 255) / 256 / 3))
True
>>> palette = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 1.0]])
>>> nearest_colour(rgb, palette).tolist()
[[[[1]]]]
"""
from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import json
import os
import pickle
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np

from analysis.errors import ArchcountError
from analysis.files import atomic_write, write_atomic

#: CIFAR-10 class names, in label order (horse is label 7).
CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck")
#: The official archive: where it is downloaded from, its name, md5 and size in bytes.
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e9074ce"
OFFICIAL_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
#: The image-folder zip of the shared data folder, looked for beside the checkout and the working directory.
SHARED_ZIP = Path("..") / "shared" / "data" / "cifar10-jpeg.zip"
IMAGE_SIZE = 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Bumped whenever the decoded-array cache format or decoding changes.
LOADER_VERSION = 1
#: The largest image file read from an image folder or zip (a 32x32 PNG is about 3 kB).
MAX_IMAGE_BYTES = 1 << 20

_HINT = ("Pass --data PATH (the official cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ "
               "folder, or an image-folder tree/zip laid out as <root>/{train,test}/<class>/*.png|jpg), "
               "or set ARCHCOUNT_DATA, or put the archive into the cache directory")


# ----------------------------------------------------------------------------- small helpers

def default_cache_dir() -> Path:
    """The cache directory: ``$ARCHCOUNT_CACHE``, else ``$XDG_CACHE_HOME/archcount``, else ``~/.cache/archcount``.

    >>> default_cache_dir().name in ("archcount",) or "ARCHCOUNT_CACHE" in os.environ
    True
    """
    env = os.environ.get("ARCHCOUNT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "archcount"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`analysis.files.atomic_write`).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> atomic_write_bytes(p, b"hi"); p.read_bytes()
    b'hi'
    """
    write_atomic(path, data)


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: never runs code from the file."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy", "float64"), ("numpy", "float32"), ("numpy", "int64"), ("numpy", "uint8"),
                ("_codecs", "encode")}  # protocol-2 pickles from Python 3 store bytes through _codecs.encode

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return getattr(importlib.import_module(module), name)


def safe_unpickle(fh: BinaryIO, *, encoding: str = "bytes") -> Any:
    """Unpickle ``fh`` allowing only containers, numbers, strings and numpy arrays.

    >>> import io, pickle
    >>> safe_unpickle(io.BytesIO(pickle.dumps({b"labels": [1, 2]})))
    {b'labels': [1, 2]}
    """
    return _RestrictedUnpickler(fh, encoding=encoding).load()


# ----------------------------------------------------------------------------- categories

def category_name(category: int | str, names: Sequence[str] = CIFAR10_CLASSES) -> str:
    """Normalise a category given as a label (7, "7") or a class name ("horse") to the class name.

    >>> category_name(7), category_name("7"), category_name("Horse")
    ('horse', 'horse', 'horse')
    """
    if isinstance(category, bool):
        raise ArchcountError(f"must be a class name or a label 0..{len(names) - 1}, got {category!r}",
                             argument="category")
    if isinstance(category, (int, np.integer)) or (isinstance(category, str) and category.strip().isdigit()):
        label = int(category)
        if not 0 <= label < len(names):
            raise ArchcountError(f"label {label} is out of range 0..{len(names) - 1}; classes: "
                                 f"{', '.join(f'{i}={n}' for i, n in enumerate(names))}", argument="category")
        return names[label]
    if not isinstance(category, str) or not category.strip():
        raise ArchcountError(f"must be a class name or a label, got {category!r}", argument="category")
    return category.strip().lower() if category.strip().lower() in names else category.strip()


# ----------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class DataSource:
    """Where the images come from.

    ``kind`` is ``pickle-tar`` (the official ``.tar.gz``), ``pickle-dir`` (its extracted
    ``cifar-10-batches-py/``), ``image-dir`` or ``image-zip`` (an image-folder tree, or a zip of one);
    ``origin`` says how it was found: ``--data``, ``ARCHCOUNT_DATA``, ``cache``, ``shared`` or ``download``.

    >>> DataSource("pickle-dir", "/data/cifar-10-batches-py", "--data").lossless
    True
    """

    kind: str
    path: str
    origin: str

    @property
    def lossless(self) -> bool | None:
        """True for the pickle formats; None for image trees until their files are seen."""
        return True if self.kind.startswith("pickle") else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "origin": self.origin}


def inspect_source(path: str | os.PathLike[str], origin: str = "--data") -> DataSource:
    """Classify ``path`` as one of the supported source formats, or raise naming what is wrong.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "train").mkdir(); (d / "test").mkdir()
    >>> inspect_source(d).kind
    'image-dir'
    """
    arg = "data" if origin == "--data" else origin
    p = Path(path).expanduser()
    if not p.exists():
        raise ArchcountError(f"{p} does not exist", argument=arg, hint=_HINT)
    p = p.resolve()
    if p.is_dir():
        if (p / TRAIN_BATCHES[0]).is_file() or (p / TEST_BATCH).is_file():
            return DataSource("pickle-dir", str(p), origin)
        if (p / OFFICIAL_DIR).is_dir():
            return DataSource("pickle-dir", str(p / OFFICIAL_DIR), origin)
        if (p / OFFICIAL_ARCHIVE).is_file():
            return DataSource("pickle-tar", str(p / OFFICIAL_ARCHIVE), origin)
        if _image_root(p) is not None:
            return DataSource("image-dir", str(p), origin)
        raise ArchcountError(
            f"folder {p} holds neither CIFAR-10 python batches ({OFFICIAL_DIR}/data_batch_1 ...) nor an "
            f"image-folder tree (train/<class>/*.png and test/<class>/*.png)", argument=arg)
    name = p.name.lower()
    if name.endswith(".zip"):
        if not zipfile.is_zipfile(p):
            raise ArchcountError(f"{p} is not a valid zip file (corrupt or truncated)", argument=arg)
        return DataSource("image-zip", str(p), origin)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return DataSource("pickle-tar", str(p), origin)
    raise ArchcountError(f"{p}: unsupported file type; expected a .tar.gz (the official python archive) or a "
                         f".zip of an image-folder tree", argument=arg)


def _image_root(p: Path) -> Path | None:
    """The folder holding ``train/`` and ``test/``: ``p`` itself or its only such sub-folder."""
    if (p / "train").is_dir() and (p / "test").is_dir():
        return p
    subs = [s for s in p.iterdir() if s.is_dir() and (s / "train").is_dir() and (s / "test").is_dir()]
    return subs[0] if len(subs) == 1 else None


def find_shared_zip() -> Path | None:
    """``../shared/data/cifar10-jpeg.zip`` relative to ``$ARCHCOUNT_SHARED/..``, the working directory or the checkout.

    >>> z = find_shared_zip()
    >>> z is None or z.name == "cifar10-jpeg.zip"
    True
    """
    candidates = []
    env = os.environ.get("ARCHCOUNT_SHARED")
    if env:
        candidates.append(Path(env).expanduser() / "data" / SHARED_ZIP.name)
    candidates.append(Path.cwd() / SHARED_ZIP)
    candidates.append(Path(__file__).resolve().parents[1] / SHARED_ZIP)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return None


def resolve_source(data: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                   download: bool = True, shared: bool = True, url: str = OFFICIAL_URL,
                   quiet: bool = True) -> DataSource:
    """Find the CIFAR-10 data: ``data``, then ``$ARCHCOUNT_DATA``, then the cache directory, then
    ``../shared/data/cifar10-jpeg.zip`` (when ``shared``), then a download of the official archive
    into the cache (when ``download``). Raises :class:`ArchcountError` listing these options when none works.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "train").mkdir(); (d / "test").mkdir()
    >>> resolve_source(d).origin
    '--data'
    """
    if data is not None:
        if not os.fspath(data).strip():
            raise ArchcountError("is an empty path; leave it out to use $ARCHCOUNT_DATA, the cache or the shared "
                                 "zip", argument="data")
        return inspect_source(data, "--data")
    env = os.environ.get("ARCHCOUNT_DATA")
    if env:
        return inspect_source(env, "ARCHCOUNT_DATA")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if (cache / OFFICIAL_DIR / TRAIN_BATCHES[0]).is_file():
        return DataSource("pickle-dir", str((cache / OFFICIAL_DIR).resolve()), "cache")
    if (cache / OFFICIAL_ARCHIVE).is_file():
        return DataSource("pickle-tar", str((cache / OFFICIAL_ARCHIVE).resolve()), "cache")
    if shared:
        z = find_shared_zip()
        if z is not None:
            return DataSource("image-zip", str(z), "shared")
    tried = [f"--data PATH (not given)", "$ARCHCOUNT_DATA (not set)",
             f"the cache {cache} (no {OFFICIAL_ARCHIVE} or {OFFICIAL_DIR}/)"]
    if shared:
        tried.append(f"{SHARED_ZIP} beside the working directory or the checkout (not found)")
    if not download:
        raise ArchcountError("no CIFAR-10 data found; tried " + "; ".join(tried) + "; downloading is disabled",
                             argument="data", hint=_HINT)
    try:
        path = download_official(cache, url=url, quiet=quiet)
    except ArchcountError as exc:
        raise ArchcountError("no CIFAR-10 data found; tried " + "; ".join(tried) + f"; and the download failed: "
                             f"{exc.reason}", argument="data",
                             hint=_HINT + " (on a machine with network access "
                             f"the official archive is downloaded from {OFFICIAL_URL})") from None
    return DataSource("pickle-tar", str(path.resolve()), "download")


def file_md5(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The md5 hex digest of a file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"; p.write_bytes(b"")
    0
    >>> file_md5(p)
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_official(dest_dir: str | os.PathLike[str], *, url: str = OFFICIAL_URL, md5: str | None = OFFICIAL_MD5,
                      quiet: bool = True, timeout: float = 30.0) -> Path:
    """Download the official archive into ``dest_dir`` and check its md5; nothing is left behind on failure.

    The file is streamed to a temporary name and renamed only after the checksum matched.
    """
    dest_dir = Path(dest_dir).expanduser()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchcountError(f"cannot create the cache directory {dest_dir}: {exc}", argument="cache_dir") from None
    dest = dest_dir / OFFICIAL_ARCHIVE

    def stream(out: BinaryIO) -> None:
        h = hashlib.md5()
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https/file URL
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ArchcountError(f"cannot download {url}: {getattr(exc, 'reason', exc)}", argument="data") from None
        with resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                      disable=True if quiet else None) as bar:
                while True:
                    try:
                        block = resp.read(1 << 20)
                    except OSError as exc:
                        raise ArchcountError(f"download of {url} broke off: {exc}", argument="data") from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        if md5 is not None and h.hexdigest() != md5:  # raising here discards the temporary file
            raise ArchcountError(f"checksum mismatch for {url}: md5 {h.hexdigest()}, expected {md5}; the file was "
                                 f"discarded", argument="data")

    atomic_write(dest, stream)
    return dest


# ----------------------------------------------------------------------------- loaded data

@dataclass(frozen=True, eq=False)
class CategoryData:
    """The uint8 RGB images ``[N, 3, 32, 32]`` of one category: ``train`` and ``test`` (the validation set).

    ``image_format`` is ``"jpeg"``, ``"png"``, ``"mixed"`` or ``None`` (pickle batches);
    ``fingerprint`` is the sha256 of the pixels, so that identical images give identical run keys.
    """

    source: DataSource
    category: str
    label: int | None
    train: np.ndarray
    test: np.ndarray
    image_format: str | None = None
    from_cache: bool = False
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            h = hashlib.sha256()
            for arr in (self.train, self.test):
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            object.__setattr__(self, "fingerprint", h.hexdigest())
        for arr in (self.train, self.test):
            arr.flags.writeable = False

    @property
    def lossless(self) -> bool:
        return self.image_format in (None, "png")

    @property
    def description(self) -> str:
        """One line naming the source; says "JPEG re-encoding" for JPEG image folders."""
        src = self.source
        what = f"{self.category!r} images ({len(self.train)} train, {len(self.test)} validation)"
        if src.kind == "pickle-tar":
            base = f"CIFAR-10 python archive {src.path} (official lossless format)"
        elif src.kind == "pickle-dir":
            base = f"CIFAR-10 python batches in {src.path} (official lossless format)"
        else:
            container = "zip" if src.kind == "image-zip" else "folder"
            if self.image_format == "jpeg":
                fmt = ("JPEG re-encoding of CIFAR-10, not the official lossless data: colours are smoothed, so "
                       "per-pixel accuracies are not strictly comparable with published numbers")
            elif self.image_format == "mixed":
                fmt = "mixed PNG and JPEG files: partly a JPEG re-encoding"
            else:
                fmt = "lossless PNG"
            base = f"image-folder {container} {src.path} ({fmt})"
        return f"{base}; {what}; found via {src.origin}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.source.to_dict(), "category": self.category, "label": self.label,
                "image_format": self.image_format, "lossless": self.lossless, "n_train": int(len(self.train)),
                "n_val": int(len(self.test)), "fingerprint": self.fingerprint, "description": self.description}


def load_category(source: DataSource | str | os.PathLike[str] | None = None, category: int | str = "horse", *,
                  cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True, download: bool = True,
                  quiet: bool = True) -> CategoryData:
    """Load one category's training and test images as uint8 ``[N, 3, 32, 32]`` arrays.

    ``source`` is a :class:`DataSource`, a path (as for ``--data``) or None (:func:`resolve_source`).
    Only the chosen category is decoded; the result is cached in ``cache_dir/decoded/`` keyed by the
    source path, size, mtime and category, so that a second load is instant.

    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for split in ("train", "test"):
    ...     (d / split / "horse").mkdir(parents=True)
    ...     Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(d / split / "horse" / "0.png")
    >>> cd = load_category(d, "horse", cache_dir=d / "cache")
    >>> cd.train.shape, int(cd.train.max()), cd.lossless
    ((1, 3, 32, 32), 7, True)
    """
    if not isinstance(source, DataSource):
        source = resolve_source(source, cache_dir=cache_dir, download=download, quiet=quiet)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    requested = category
    name = category_name(category)  # pickle sources check the name against batches.meta when read
    key = _cache_key(source, name) if use_cache else None
    cache_file = cache / "decoded" / f"{Path(source.path).name}-{_slug(name)}-{key[:20]}.npz" if key else None
    if cache_file is not None and cache_file.is_file():
        loaded = _read_cache(cache_file, source, name)
        if loaded is not None:
            return loaded
    if source.kind.startswith("pickle"):
        label, train, test = _load_pickle_category(source, requested)
        fmt = None
    else:
        train, test, fmt = _load_image_category(source, name, quiet=quiet)
        label = CIFAR10_CLASSES.index(name) if name in CIFAR10_CLASSES else None
    data = CategoryData(source, name, label, train, test, fmt)
    if cache_file is not None:
        _write_cache(cache_file, data)
    return data


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "x"


def _stat_list(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return out


def _cache_key(source: DataSource, name: str) -> str:
    p = Path(source.path)
    if source.kind == "pickle-dir":
        stats: Any = _stat_list([p / n for n in (*TRAIN_BATCHES, TEST_BATCH, META)])
    elif source.kind == "image-dir":
        root = _image_root(p) or p
        files: list[Path] = []
        for split in ("train", "test"):
            d = root / split / name
            if d.is_dir():
                files.extend(sorted(d.iterdir()))
        stats = [(str(f.relative_to(root)), s, m) for (_, s, m), f in zip(_stat_list(files), files)]
    else:
        st = p.stat()
        stats = [p.name, st.st_size, st.st_mtime_ns]
    blob = json.dumps([LOADER_VERSION, source.kind, source.path, stats, name])
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(path: Path, source: DataSource, name: str) -> CategoryData | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            train, test = z["train"], z["test"]
            label = int(z["label"])
            fmt = str(z["image_format"]) or None
            fingerprint = str(z["fingerprint"])
        if train.dtype != np.uint8 or train.ndim != 4 or train.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError("bad shape")
    except Exception as exc:  # a damaged cache is rebuilt, never trusted
        warnings.warn(f"ignoring the damaged cache file {path}: {exc}", stacklevel=3)
        return None
    return CategoryData(source, name, None if label < 0 else label, train, test, fmt, from_cache=True,
                        fingerprint=fingerprint)


def _write_cache(path: Path, data: CategoryData) -> None:
    def writer(fh: BinaryIO) -> None:
        np.savez(fh, train=data.train, test=data.test, label=np.int64(-1 if data.label is None else data.label),
                 image_format=np.str_(data.image_format or ""), fingerprint=np.str_(data.fingerprint))
    try:
        atomic_write(path, writer)
    except OSError as exc:
        warnings.warn(f"could not write the data cache {path}: {exc}", stacklevel=3)


# ----------------------------------------------------------------------------- pickle batches

def _pickle_members(source: DataSource) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Yield ``(batch name, loader)`` for the batches and meta file of a pickle source."""
    p = Path(source.path)
    wanted = (*TRAIN_BATCHES, TEST_BATCH, META)
    if source.kind == "pickle-dir":
        for n in wanted:
            f = p / n
            if not f.is_file():
                if n == META:
                    continue
                raise ArchcountError(f"{p} lacks the batch file {n}", argument="data")

            def load(f: Path = f) -> Any:
                with open(f, "rb") as fh:
                    return _unpickle_batch(fh, f)
            yield n, load
        return
    if p.name == OFFICIAL_ARCHIVE:
        digest = file_md5(p)
        if digest != OFFICIAL_MD5:
            raise ArchcountError(f"checksum mismatch for {p}: md5 {digest}, expected {OFFICIAL_MD5} (a corrupt or "
                                 f"truncated download?); delete it to download it again", argument="data")
    try:
        with tarfile.open(p, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for n in wanted:
                m = members.get(n)
                if m is None:
                    if n == META:
                        continue
                    raise ArchcountError(f"archive {p} lacks the batch file {n} (expected {OFFICIAL_DIR}/{n})",
                                         argument="data")
                fh = tar.extractfile(m)
                assert fh is not None
                content = fh.read()

                def load(content: bytes = content, n: str = n) -> Any:
                    return _unpickle_batch(io.BytesIO(content), f"{p}:{n}")
                yield n, load
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise ArchcountError(f"cannot read {p}: corrupt or truncated archive ({type(exc).__name__}: {exc})",
                             argument="data") from None


def _unpickle_batch(fh: BinaryIO, where: Any) -> Any:
    try:
        return safe_unpickle(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError) as exc:
        raise ArchcountError(f"{where} is not a valid CIFAR-10 batch (corrupt or truncated pickle: {exc})",
                             argument="data") from None


def _batch_arrays(batch: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, dict):
        raise ArchcountError(f"{where} is not a CIFAR-10 batch (a dict with b'data' and b'labels')", argument="data")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ArchcountError(f"{where} lacks b'data' or b'labels'", argument="data")
    data = np.asarray(data)
    labels = np.asarray(labels)
    row = 3 * IMAGE_SIZE * IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise ArchcountError(f"{where}: images must be uint8 rows of {row} bytes (32x32 RGB), got {data.dtype} "
                             f"data of shape {list(data.shape)}", argument="data", shapes={"data": data.shape})
    if labels.ndim != 1 or len(labels) != len(data):
        raise ArchcountError(f"{where}: {len(labels)} labels for {len(data)} images", argument="data")
    return data, labels


def _load_pickle_category(source: DataSource, category: int | str) -> tuple[int, np.ndarray, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names: Sequence[str] = CIFAR10_CLASSES
    for n, load in _pickle_members(source):
        obj = load()
        if n == META:
            raw = obj.get(b"label_names", obj.get("label_names")) if isinstance(obj, dict) else None
            if raw:
                names = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
            continue
        batches[n] = _batch_arrays(obj, f"{source.path}:{n}")
    name = category_name(category, names)
    if name not in names:
        raise ArchcountError(f"unknown class {name!r}; the classes are {', '.join(names)}", argument="category")
    label = list(names).index(name)
    for n, (data, labels) in batches.items():
        parts["test" if n == TEST_BATCH else "train"].append(data[labels == label])
    train = np.concatenate(parts["train"]).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
    test = np.concatenate(parts["test"]).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
    for split, arr in (("training", train), ("test", test)):
        if len(arr) == 0:
            raise ArchcountError(f"no {split} images of class {name!r} (label {label}) in {source.path}",
                                 argument="category")
    return label, np.ascontiguousarray(train), np.ascontiguousarray(test)


# ----------------------------------------------------------------------------- image folders

_ENTRY = re.compile(r"^(?P<root>(?:.*/)?)(?P<split>train|test)/(?P<cls>[^/]+)/(?P<file>[^/]+)$")


def _load_image_category(source: DataSource, name: str, *, quiet: bool = True
                         ) -> tuple[np.ndarray, np.ndarray, str]:
    if source.kind == "image-zip":
        try:
            with zipfile.ZipFile(source.path) as zf:
                entries = [n for n in zf.namelist() if not n.endswith("/")]
                files, classes = _select_files(entries, name, source.path)

                def read(n: str) -> bytes:
                    _check_image_bytes(zf.getinfo(n).file_size, source.path, n)
                    return zf.read(n)
                out = {split: _decode_all(read, files[split], source.path, split, quiet)
                       for split in ("train", "test")}
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ArchcountError(f"cannot read {source.path}: corrupt or truncated zip ({type(exc).__name__}: {exc})",
                                 argument="data") from None
    else:
        root = _image_root(Path(source.path))
        if root is None:
            raise ArchcountError(f"{source.path} has no train/ and test/ folders", argument="data")
        entries = [str(f.relative_to(root).as_posix()) for split in ("train", "test") if (root / split).is_dir()
                   for d in (root / split).iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()]
        files, classes = _select_files(entries, name, str(root))

        def read_file(n: str) -> bytes:
            _check_image_bytes((root / n).stat().st_size, str(root), n)
            return (root / n).read_bytes()
        out = {split: _decode_all(read_file, files[split], str(root), split, quiet)
               for split in ("train", "test")}
    suffixes = {Path(n).suffix.lower() for split in ("train", "test") for n in files[split]}
    fmt = "mixed" if len(suffixes) > 1 and ".png" in suffixes else ("png" if suffixes == {".png"} else "jpeg")
    return out["train"], out["test"], fmt


def _select_files(entries: Sequence[str], name: str, where: str) -> tuple[dict[str, list[str]], list[str]]:
    roots: set[str] = set()
    classes: dict[str, set[str]] = {"train": set(), "test": set()}
    files: dict[str, list[str]] = {"train": [], "test": []}
    for e in entries:
        m = _ENTRY.match(e)
        if not m or "__MACOSX" in e or Path(e).name.startswith("."):
            continue
        if Path(e).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        roots.add(m["root"])
        classes[m["split"]].add(m["cls"])
        if m["cls"] == name:
            files[m["split"]].append(e)
    if not roots:
        raise ArchcountError(f"{where} holds no images laid out as <root>/{{train,test}}/<class>/*.png|jpg",
                             argument="data")
    if len(roots) > 1:
        raise ArchcountError(f"{where} holds several image trees ({', '.join(sorted(r or '.' for r in roots))}); "
                             f"point --data at one of them", argument="data")
    known = sorted(classes["train"] | classes["test"])
    for split in ("train", "test"):
        if not files[split]:
            hint = (f"classes in {split}/: {', '.join(sorted(classes[split])) or '(none)'}")
            raise ArchcountError(f"no {split} images of class {name!r} in {where}; {hint}", argument="category")
        files[split].sort(key=_natural_key)
    return files, known


def _check_image_bytes(size: int, where: str, name: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise ArchcountError(f"{where}: {name} is {size:,} bytes; a 32x32 image file is at most "
                             f"{MAX_IMAGE_BYTES:,}", argument="data")


def _decode_all(read: Callable[[str], bytes], names: Sequence[str], where: str, split: str, quiet: bool
                ) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm
    out = np.empty((len(names), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i, n in enumerate(tqdm(names, desc=f"decoding {split}", unit="img", disable=True if quiet else None,
                                leave=False)):
        try:
            with Image.open(io.BytesIO(read(n))) as im:
                if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                    raise ArchcountError(f"{where}: {n} is {im.size[0]}x{im.size[1]}, expected "
                                         f"{IMAGE_SIZE}x{IMAGE_SIZE}", argument="data",
                                         shapes={n: (im.size[1], im.size[0])})
                if im.mode != "RGB":
                    raise ArchcountError(f"{where}: {n} has image mode {im.mode}, expected RGB", argument="data",
                                         hint="convert the images to 8-bit RGB")
                out[i] = np.asarray(im)
        except Image.DecompressionBombError as exc:
            raise ArchcountError(f"{where}: {n} is far larger than 32x32 ({exc})", argument="data") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ArchcountError):
                raise
            raise ArchcountError(f"{where}: cannot decode {n} (corrupt or truncated image: {exc})",
                                 argument="data") from None
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- inputs and targets

def greyscale(rgb: np.ndarray) -> np.ndarray:
    """The exercise's input: the mean of R, G and B after dividing by 256, as float32 ``[N, 1, H, W]``.

    >>> import numpy as np
    >>> greyscale(np.full((2, 3, 4, 4), 96, np.uint8)).shape
    (2, 1, 4, 4)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ArchcountError(f"expects RGB images [N, 3, H, W], got shape {list(rgb.shape)}", argument="rgb",
                             shapes={"rgb": rgb.shape})
    return np.mean(rgb / 256.0, axis=1, keepdims=True).astype(np.float32)


def nearest_colour(rgb: np.ndarray, palette: np.ndarray, *, chunk: int = 1 << 16) -> np.ndarray:
    """Per pixel, the index of the nearest palette colour (Euclidean distance, pixels divided by 256).

    Returns int64 ``[N, 1, H, W]``; ties go to the lower index. Each distinct pixel colour is
    compared with the palette once, so millions of pixels take about a second.

    >>> import numpy as np
    >>> rgb = np.zeros((1, 3, 1, 2), np.uint8); rgb[0, :, 0, 1] = 250
    >>> nearest_colour(rgb, np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))[0, 0].tolist()
    [[0, 1]]
    """
    rgb = np.asarray(rgb)
    pal = np.asarray(palette, dtype=np.float64)
    if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.dtype != np.uint8:
        raise ArchcountError(f"expects uint8 RGB images [N, 3, H, W], got {rgb.dtype} shape {list(rgb.shape)}",
                             argument="rgb", shapes={"rgb": rgb.shape})
    if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) < 1:
        raise ArchcountError(f"a palette must have shape [K, 3], got {list(pal.shape)}", argument="palette",
                             shapes={"palette": pal.shape})
    chunk = max(1, min(chunk, (1 << 22) // len(pal)))  # at most 32 MiB of distances at a time
    packed = (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2]
    present = np.zeros(1 << 24, dtype=bool)
    present[packed.ravel()] = True
    colours = np.flatnonzero(present)
    channels = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255]) / 256.0  # [3, U]
    labels = np.empty(len(colours), dtype=np.int64)
    for i in range(0, len(colours), chunk):
        part = slice(i, i + chunk)
        # sqrt((r - pr)^2 + (g - pg)^2 + (b - pb)^2), summed in the same order as np.linalg.norm over RGB
        dist = (channels[0, part, None] - pal[:, 0]) ** 2
        dist += (channels[1, part, None] - pal[:, 1]) ** 2
        dist += (channels[2, part, None] - pal[:, 2]) ** 2
        np.sqrt(dist, out=dist)
        labels[part] = np.argmin(dist, axis=1)
    lut = np.zeros(1 << 24, dtype=np.int16 if len(pal) < (1 << 15) else np.int64)
    lut[colours] = labels
    return lut[packed][:, None].astype(np.int64)
