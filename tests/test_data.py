"""CIFAR-10 data: both source formats, resolution order, caching, greyscale/targets, palettes and bad input.

Fixtures are built here in temporary folders: a tiny archive in the official python-pickle format
(``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta``, also as a .tar.gz) and image-folder
trees (PNG and JPEG) with their zips, all holding the same images.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.errors import ArchcountError
from models import data as D
from models.data import CIFAR10_CLASSES, greyscale, load_category, nearest_colour, resolve_source
from models.palette import Palette, compute_palette, kmeans_palette, load_palette

HORSE = 7


# ----------------------------------------------------------------------------- fixture builders (also used by
# test_training.py)

def make_arrays(seed: int = 0, horse_train: int = 10, horse_test: int = 4, other: int = 1) -> dict[str, np.ndarray]:
    """Random uint8 images in the official row format: ``data`` [N, 3072] and ``labels`` [N], shuffled classes."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n_horse in (("train", horse_train), ("test", horse_test)):
        labels = np.array([HORSE] * n_horse + [c for c in range(10) if c != HORSE for _ in range(other)])
        labels = labels[rng.permutation(len(labels))]
        # smooth-ish images: a random colour per 8x8 block plus noise, so k-means has structure to find
        base = rng.integers(0, 256, size=(len(labels), 3, 4, 4))
        img = np.repeat(np.repeat(base, 8, axis=2), 8, axis=3) + rng.integers(-20, 21, size=(len(labels), 3, 32, 32))
        out[f"{split}_data"] = np.clip(img, 0, 255).astype(np.uint8).reshape(len(labels), 3072)
        out[f"{split}_labels"] = labels
    return out


def category(arrays: dict[str, np.ndarray], split: str, label: int = HORSE) -> np.ndarray:
    """The expected [N, 3, 32, 32] images of ``label``, in archive order (computed without the loader)."""
    sel = arrays[f"{split}_data"][arrays[f"{split}_labels"] == label]
    return sel.reshape(-1, 3, 32, 32)


def write_pickle_dir(root: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``root/cifar-10-batches-py`` in the official format; the training images split over five batches."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    parts = np.array_split(np.arange(len(arrays["train_labels"])), 5)
    for i, idx in enumerate(parts, start=1):
        batch = {b"batch_label": f"training batch {i} of 5".encode(), b"data": arrays["train_data"][idx],
                 b"labels": [int(v) for v in arrays["train_labels"][idx]],
                 b"filenames": [f"img_{j}.png".encode() for j in idx]}
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {b"batch_label": b"testing batch 1 of 1", b"data": arrays["test_data"],
            b"labels": [int(v) for v in arrays["test_labels"]]}
    (d / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    meta = {b"label_names": [n.encode() for n in CIFAR10_CLASSES], b"num_vis": 3072, b"num_cases_per_batch": 10000}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return d


def write_tar(pickle_dir: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(pickle_dir, arcname="cifar-10-batches-py")
    return path


def write_tree(root: Path, arrays: dict[str, np.ndarray], suffix: str = ".png", top: str = "cifar10") -> Path:
    """``root/top/{train,test}/<class>/NNNN<suffix>``, numbered per class in archive order."""
    base = root / top
    for split in ("train", "test"):
        counters: dict[int, int] = {}
        for row, label in zip(arrays[f"{split}_data"], arrays[f"{split}_labels"]):
            label = int(label)
            d = base / split / CIFAR10_CLASSES[label]
            d.mkdir(parents=True, exist_ok=True)
            i = counters.get(label, 0)
            counters[label] = i + 1
            img = Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0))
            img.save(d / f"{i:04d}{suffix}", **({"quality": 75} if suffix == ".jpg" else {}))
    return base


def write_zip(tree: Path, path: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for f in sorted(tree.rglob("*")):
            zf.write(f, f.relative_to(tree.parent).as_posix())
    return path


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("cifar")
    arrays = make_arrays()
    pdir = write_pickle_dir(root / "pickle", arrays)
    tar = write_tar(pdir, root / "tiny-cifar-10-python.tar.gz")
    png = write_tree(root / "png", arrays)
    png_zip = write_zip(png, root / "tiny-png.zip")
    jpg = write_tree(root / "jpg", arrays, ".jpg")
    jpg_zip = write_zip(jpg, root / "tiny-jpeg.zip")
    return {"arrays": arrays, "pickle_dir": pdir, "tar": tar, "png": png, "png_zip": png_zip, "jpg_zip": jpg_zip,
            "root": root}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the user's cache or $ARCHCOUNT_DATA."""
    monkeypatch.setenv("ARCHCOUNT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ARCHCOUNT_DATA", raising=False)


# ----------------------------------------------------------------------------- the formats agree

def test_all_formats_give_the_same_arrays(fx, tmp_path):
    arrays = fx["arrays"]
    want_train, want_test = category(arrays, "train"), category(arrays, "test")
    assert len(want_train) == 10 and len(want_test) == 4
    loaded = {}
    for name in ("pickle_dir", "tar", "png", "png_zip"):
        cd = load_category(fx[name], "horse", cache_dir=tmp_path / name)
        np.testing.assert_array_equal(cd.train, want_train, err_msg=name)
        np.testing.assert_array_equal(cd.test, want_test, err_msg=name)
        assert cd.train.dtype == np.uint8 and cd.label == HORSE and cd.lossless
        loaded[name] = cd
    kinds = {n: cd.source.kind for n, cd in loaded.items()}
    assert kinds == {"pickle_dir": "pickle-dir", "tar": "pickle-tar", "png": "image-dir", "png_zip": "image-zip"}
    assert len({cd.fingerprint for cd in loaded.values()}) == 1
    assert "lossless" in loaded["tar"].description and "JPEG" not in loaded["png_zip"].description
    # the folder holding cifar-10-batches-py/ is found too
    assert load_category(fx["pickle_dir"].parent, 7, cache_dir=tmp_path / "p").source.kind == "pickle-dir"


def test_other_category_by_label_and_name(fx, tmp_path):
    want = category(fx["arrays"], "train", 3)
    by_label = load_category(fx["tar"], 3, cache_dir=tmp_path)
    by_name = load_category(fx["png_zip"], "cat", cache_dir=tmp_path)
    np.testing.assert_array_equal(by_label.train, want)
    np.testing.assert_array_equal(by_name.train, want)
    assert by_label.category == by_name.category == "cat"


def test_jpeg_source_says_jpeg_reencoding(fx, tmp_path):
    cd = load_category(fx["jpg_zip"], "horse", cache_dir=tmp_path)
    assert "JPEG re-encoding" in cd.description and not cd.lossless
    assert cd.to_dict()["image_format"] == "jpeg"
    # lossy: close to, but not equal to, the originals
    diff = np.abs(cd.train.astype(int) - category(fx["arrays"], "train").astype(int))
    assert diff.max() > 0 and diff.mean() < 20


def test_decoded_arrays_are_cached(fx, tmp_path):
    first = load_category(fx["png_zip"], "horse", cache_dir=tmp_path)
    assert not first.from_cache
    files = list((tmp_path / "decoded").glob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "decoded").glob(".*tmp"))
    second = load_category(fx["png_zip"], "horse", cache_dir=tmp_path)
    assert second.from_cache
    np.testing.assert_array_equal(second.train, first.train)
    assert second.fingerprint == first.fingerprint and second.description == first.description
    # a changed source gets a new key (size/mtime), so it is decoded again
    other = fx["root"] / "copy.zip"
    other.write_bytes(Path(fx["png_zip"]).read_bytes())
    assert not load_category(other, "horse", cache_dir=tmp_path).from_cache
    # a damaged cache file is ignored (with a warning) and rebuilt
    files[0].write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged"):
        again = load_category(fx["png_zip"], "horse", cache_dir=tmp_path)
    np.testing.assert_array_equal(again.train, first.train)


# ----------------------------------------------------------------------------- inputs and targets

def test_greyscale_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(2, 3, 5, 4), dtype=np.uint8)
    g = greyscale(rgb)
    assert g.shape == (2, 1, 5, 4) and g.dtype == np.float32
    for n in range(2):
        for i in range(5):
            for j in range(4):
                r, gg, b = (int(rgb[n, c, i, j]) for c in range(3))
                assert g[n, 0, i, j] == np.float32((r + gg + b) / 768)


def test_nearest_colour_matches_brute_force():
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(3, 3, 8, 8), dtype=np.uint8)
    palette = rng.random((6, 3))
    palette[5] = palette[1]  # a duplicate: ties go to the lower index
    got = nearest_colour(rgb, palette)
    assert got.shape == (3, 1, 8, 8) and got.dtype == np.int64
    for n in range(3):
        for i in range(8):
            for j in range(8):
                px = [int(rgb[n, c, i, j]) / 256 for c in range(3)]
                dists = [math.dist(px, list(col)) for col in palette]
                assert got[n, 0, i, j] == dists.index(min(dists))
    assert 5 not in got


# ----------------------------------------------------------------------------- palettes

def test_palette_is_deterministic_and_cached(fx, tmp_path):
    cd = load_category(fx["png"], "horse", cache_dir=tmp_path)
    a = compute_palette(cd.train, k=5, seed=0)
    b = compute_palette(cd.train, k=5, seed=0)
    c = compute_palette(cd.train, k=5, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 3) and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, c)
    p1 = kmeans_palette(cd, 5, 0, cache_dir=tmp_path)
    p2 = kmeans_palette(cd, 5, 0, cache_dir=tmp_path)
    np.testing.assert_array_equal(p1.array, a)
    assert p2.array.tobytes() == p1.array.tobytes() and "cached" in p2.description and "k-means" in p1.description
    # the centres are centres: each is the mean of some pixels, so the palette beats a random one
    px = cd.train.transpose(0, 2, 3, 1).reshape(-1, 3) / 256
    def distortion(pal):
        return np.min(np.linalg.norm(px[:, None] - pal[None], axis=2), axis=1).mean()
    assert distortion(a) < distortion(np.random.default_rng(0).random((5, 3)))


def test_palette_csv_and_npy(tmp_path):
    cols = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.5, 0.5, 0.5]])
    with_header = tmp_path / "a.csv"
    with_header.write_text("r,g,b\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in cols) + "\n")
    no_header = tmp_path / "b.csv"
    no_header.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in cols) + "\n\n")
    plain = tmp_path / "c.npy"
    np.save(plain, cols)
    exercise = tmp_path / "d.npy"  # the exercise's (centres, distortion) object array
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = cols, np.float64(0.07)
    np.save(exercise, obj, allow_pickle=True)
    for f in (with_header, no_header, plain, exercise):
        p = load_palette(f)
        np.testing.assert_array_equal(p.array, cols)
        assert p.k == 3 and p.kind == "file" and str(f) in p.description
    assert len({load_palette(f).sha256 for f in (with_header, plain, exercise)}) == 1
    # the CSV a run writes round-trips exactly
    out = tmp_path / "out.csv"
    load_palette(exercise).save_csv(out)
    np.testing.assert_array_equal(load_palette(out).array, cols)


@pytest.mark.parametrize("text, match", [
    ("r,g,b\n0.1,0.2\n0.3,0.4\n", "three numbers"),
    ("r,g,b\n0.1,0.2,x\n0.3,0.4,0.5\n", "line 2"),
    ("0.1,0.2,0.3\n0.4,0.5,1.5\n", r"\[0, 1\]"),
    ("r,g,b\n0.1,0.2,0.3\n", "at least 2 colours"),
    ("", "no colours"),
    ("0.1,0.2,nan\n0.1,0.2,0.3\n", "finite"),
])
def test_malformed_palette_csv(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ArchcountError, match=match) as exc:
        load_palette(f)
    assert exc.value.argument == "palette" and "bad.csv" in str(exc.value)


def test_malformed_palette_npy(tmp_path):
    wrong_shape = tmp_path / "shape.npy"
    np.save(wrong_shape, np.zeros((5, 2)))
    with pytest.raises(ArchcountError, match=r"\[K, 3\]"):
        load_palette(wrong_shape)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY\x01\x00 not really")
    with pytest.raises(ArchcountError, match="not a valid .npy"):
        load_palette(garbage)
    with pytest.raises(ArchcountError, match="does not exist"):
        load_palette(tmp_path / "missing.csv")


def test_npy_palette_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Evil(), protocol=2)
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    evil = tmp_path / "evil.npy"
    evil.write_bytes(buf.getvalue() + payload)
    with pytest.raises(ArchcountError, match="refusing to load"):
        load_palette(evil)
    assert not marker.exists()


def test_palette_dataclass():
    p = Palette.from_array(np.eye(3), "file", "eye")
    assert p.to_dict()["k"] == 3 and p.to_dict()["sha256"] == hashlib.sha256(np.eye(3).tobytes()).hexdigest()
    with pytest.raises(ArchcountError, match="at least 2"):
        Palette.from_array(np.zeros((1, 3)), "file", "one")


# ----------------------------------------------------------------------------- resolution order

def test_resolution_order(fx, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    # 1. the argument beats everything
    monkeypatch.setenv("ARCHCOUNT_DATA", str(fx["png"]))
    src = resolve_source(fx["tar"], cache_dir=cache)
    assert (src.kind, src.origin) == ("pickle-tar", "--data")
    # 2. then $ARCHCOUNT_DATA
    src = resolve_source(None, cache_dir=cache)
    assert (src.kind, src.origin, src.path) == ("image-dir", "ARCHCOUNT_DATA", str(fx["png"].resolve()))
    monkeypatch.setenv("ARCHCOUNT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ArchcountError, match="ARCHCOUNT_DATA.*does not exist"):
        resolve_source(None, cache_dir=cache)
    monkeypatch.delenv("ARCHCOUNT_DATA")
    # 3. then the cache (extracted batches)
    shared_root = tmp_path / "shared"
    (shared_root / "data").mkdir(parents=True)
    write_zip(fx["png"], shared_root / "data" / "cifar10-jpeg.zip")
    monkeypatch.setenv("ARCHCOUNT_SHARED", str(shared_root))
    write_pickle_dir(cache, fx["arrays"])
    src = resolve_source(None, cache_dir=cache)
    assert (src.kind, src.origin) == ("pickle-dir", "cache")
    # 4. then ../shared/data/cifar10-jpeg.zip
    src = resolve_source(None, cache_dir=tmp_path / "empty-cache")
    assert (src.kind, src.origin) == ("image-zip", "shared")
    assert src.path == str((shared_root / "data" / "cifar10-jpeg.zip").resolve())


def test_offline_error_lists_the_options(tmp_path):
    with pytest.raises(ArchcountError) as exc:
        resolve_source(None, cache_dir=tmp_path / "c", shared=False, url=(tmp_path / "nope.tar.gz").as_uri())
    msg = str(exc.value)
    for option in ("--data", "ARCHCOUNT_DATA", "cache", "download failed"):
        assert option in msg
    with pytest.raises(ArchcountError, match="downloading is disabled"):
        resolve_source(None, cache_dir=tmp_path / "c", shared=False, download=False)
    cache = tmp_path / "c"
    assert not cache.exists() or not any(cache.iterdir())  # no archive, no partial download


def test_download_checks_the_md5(fx, tmp_path):
    url = Path(fx["tar"]).as_uri()
    good = hashlib.md5(Path(fx["tar"]).read_bytes()).hexdigest()
    dest = D.download_official(tmp_path / "ok", url=url, md5=good)
    assert dest.name == D.OFFICIAL_ARCHIVE and dest.read_bytes() == Path(fx["tar"]).read_bytes()
    with pytest.raises(ArchcountError, match="checksum mismatch"):
        D.download_official(tmp_path / "bad", url=url, md5="0" * 32)
    assert list((tmp_path / "bad").iterdir()) == []  # neither the archive nor a partial file


def test_official_archive_name_requires_the_official_md5(fx, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / D.OFFICIAL_ARCHIVE).write_bytes(Path(fx["tar"]).read_bytes())
    src = resolve_source(None, cache_dir=cache, shared=False)
    assert (src.kind, src.origin) == ("pickle-tar", "cache")
    with pytest.raises(ArchcountError, match="checksum mismatch"):
        load_category(src, "horse", cache_dir=cache)


# ----------------------------------------------------------------------------- bad input

def test_truncated_archives(fx, tmp_path):
    tar_bytes = Path(fx["tar"]).read_bytes()
    bad_tar = tmp_path / "cut.tar.gz"
    bad_tar.write_bytes(tar_bytes[: len(tar_bytes) // 2])
    with pytest.raises(ArchcountError, match="corrupt or truncated") as exc:
        load_category(bad_tar, "horse", cache_dir=tmp_path)
    assert "cut.tar.gz" in str(exc.value)
    zip_bytes = Path(fx["png_zip"]).read_bytes()
    bad_zip = tmp_path / "cut.zip"
    bad_zip.write_bytes(zip_bytes[: len(zip_bytes) // 2])
    with pytest.raises(ArchcountError, match="not a valid zip"):
        load_category(bad_zip, "horse", cache_dir=tmp_path)
    decoded = tmp_path / "decoded"
    assert not decoded.exists() or not any(decoded.iterdir())  # nothing half-written was cached


def test_corrupt_zip_member(fx, tmp_path):
    stored = write_zip(fx["png"], tmp_path / "stored.zip", zipfile.ZIP_STORED)
    with zipfile.ZipFile(stored) as zf:
        info = zf.getinfo("cifar10/train/horse/0003.png")
    raw = bytearray(stored.read_bytes())
    pos = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    raw[pos] ^= 0xFF
    stored.write_bytes(bytes(raw))
    with pytest.raises(ArchcountError, match="corrupt"):
        load_category(stored, "horse", cache_dir=tmp_path)


def test_corrupt_and_missing_pickle_batches(fx, tmp_path):
    d = write_pickle_dir(tmp_path / "p", fx["arrays"])
    blob = (d / "data_batch_3").read_bytes()
    (d / "data_batch_3").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ArchcountError, match="data_batch_3.*corrupt or truncated"):
        load_category(d, "horse", cache_dir=tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(ArchcountError, match="lacks the batch file data_batch_3"):
        load_category(d, "horse", cache_dir=tmp_path)


def test_pickle_batches_of_the_wrong_size(fx, tmp_path):
    arrays = dict(fx["arrays"])
    arrays["train_data"] = arrays["train_data"][:, :768].copy()  # 16x16 RGB rows
    d = write_pickle_dir(tmp_path / "small", arrays)
    with pytest.raises(ArchcountError, match="3072 bytes"):
        load_category(d, "horse", cache_dir=tmp_path)


def test_unknown_and_missing_categories(fx, tmp_path):
    with pytest.raises(ArchcountError, match="unknown class 'unicorn'.*horse") as exc:
        load_category(fx["tar"], "unicorn", cache_dir=tmp_path)
    assert exc.value.argument == "category"
    with pytest.raises(ArchcountError, match="no train images of class 'unicorn'.*classes in train/: airplane"):
        load_category(fx["png_zip"], "unicorn", cache_dir=tmp_path)
    with pytest.raises(ArchcountError, match="out of range"):
        load_category(fx["tar"], 12, cache_dir=tmp_path)
    tree = write_tree(tmp_path / "nohorse-test", fx["arrays"])
    for f in (tree / "test" / "horse").iterdir():
        f.unlink()
    (tree / "test" / "horse").rmdir()
    with pytest.raises(ArchcountError, match="no test images of class 'horse'"):
        load_category(tree.parent, "horse", cache_dir=tmp_path)


@pytest.mark.parametrize("image, match", [
    (Image.new("RGB", (16, 16)), "is 16x16, expected 32x32"),
    (Image.new("L", (32, 32)), "image mode L, expected RGB"),
    (Image.new("RGBA", (32, 32)), "image mode RGBA"),
])
def test_images_of_the_wrong_size_or_mode(fx, tmp_path, image, match):
    tree = write_tree(tmp_path / "t", fx["arrays"])
    image.save(tree / "train" / "horse" / "0002.png")
    with pytest.raises(ArchcountError, match=match) as exc:
        load_category(tree, "horse", cache_dir=tmp_path)
    assert "0002.png" in str(exc.value)
    zipped = write_zip(tree, tmp_path / "t.zip")
    with pytest.raises(ArchcountError, match=match):
        load_category(zipped, "horse", cache_dir=tmp_path)


def test_undecodable_image(fx, tmp_path):
    tree = write_tree(tmp_path / "t", fx["arrays"])
    (tree / "train" / "horse" / "0001.png").write_bytes(b"\x89PNG not an image")
    with pytest.raises(ArchcountError, match="0001.png.*corrupt or truncated image"):
        load_category(tree, "horse", cache_dir=tmp_path)


def test_unsupported_paths(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ArchcountError, match="unsupported file type"):
        resolve_source(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchcountError, match="holds neither CIFAR-10 python batches .* nor an image-folder tree"):
        resolve_source(tmp_path / "empty")


# ----------------------------------------------------------------------------- the real data

@pytest.mark.integration
def test_shared_zip_horse(shared_data, tmp_path):
    cd = load_category(shared_data / "cifar10-jpeg.zip", "horse", cache_dir=tmp_path)
    assert cd.train.shape == (5000, 3, 32, 32) and cd.test.shape == (1000, 3, 32, 32)
    assert "JPEG re-encoding" in cd.description and cd.label == 7
    x = greyscale(cd.train)
    assert x.shape == (5000, 1, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    pal = load_palette(shared_data / "colour_kmeans24_cat7.csv")
    assert pal.k == 24
    y = nearest_colour(cd.test, pal.array)
    assert y.shape == (1000, 1, 32, 32) and y.min() >= 0 and y.max() == 23
    # spot-check targets against a brute-force computation on one image
    img = cd.test[0].transpose(1, 2, 0).reshape(-1, 3) / 256
    brute = np.argmin(np.linalg.norm(img[:, None] - pal.array[None], axis=2), axis=1)
    np.testing.assert_array_equal(y[0, 0].ravel(), brute)
