"""Tests of cnnvis_gl.data: CIFAR-10 (python and binary layouts), image folders, torch datasets,
batching/augmentation, the download path (served from a local HTTP server) and bad inputs."""

from __future__ import annotations

import datetime
import functools
import hashlib
import io
import pickle
import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnvis_gl.data.loaders as loaders
from cnnvis_gl.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    ImageData,
    data_root,
    download_file,
    fetch_cifar10,
    open_data,
    random_crop_flip,
)
from cnnvis_gl.errors import DataError

# ---------------------------------------------------------------------------- helpers


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def write_py_batch(path: Path, data: np.ndarray, labels: np.ndarray | list[int]) -> None:
    """A batch pickle in the CIFAR-10 python layout."""
    obj = {b"batch_label": b"test", b"labels": [int(v) for v in labels], b"data": data}
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_py_meta(path: Path, classes: list[str]) -> None:
    path.write_bytes(pickle.dumps({b"label_names": [c.encode() for c in classes]}, protocol=2))


def write_bin_batch(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    """A batch in the CIFAR-10 binary layout: 1 label byte + 3072 pixel bytes per record."""
    records = np.concatenate(
        [np.asarray(labels, np.uint8)[:, None], data.reshape(-1, 3072)], axis=1
    )
    records.astype(np.uint8).tofile(path)


def tiny_py_cifar(folder: Path, n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small python-layout test split in ``folder`` (created); returns (data, labels)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = np.arange(n) % 10
    folder.mkdir(parents=True, exist_ok=True)
    write_py_batch(folder / "test_batch", data, labels)
    write_py_meta(folder / "batches.meta", CIFAR10_CLASSES)
    return data, labels


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_data_error(excinfo: pytest.ExceptionInfo[DataError], path: Path | str) -> None:
    message = str(excinfo.value)
    assert str(path) in message, message
    assert "\n" not in message


# ---------------------------------------------------------------------------- real CIFAR-10


@pytest.fixture(scope="module")
def cifar_test(cifar_dir: Path) -> ImageData:
    return open_data(f"cifar10:{cifar_dir}", "test")


@pytest.fixture(scope="module")
def cifar_train(cifar_dir: Path) -> ImageData:
    return open_data(f"cifar10:{cifar_dir}", "train")


def test_cifar_python_test_split(cifar_dir: Path, cifar_test: ImageData) -> None:
    assert cifar_test.name == "cifar10-test"
    assert len(cifar_test) == 10_000
    assert cifar_test.classes == CIFAR10_CLASSES
    assert cifar_test.image_shape == (3, 32, 32)
    assert cifar_test.mean == CIFAR10_MEAN and cifar_test.std == CIFAR10_STD
    labels = cifar_test.labels()
    assert labels.dtype == np.int64 and labels.shape == (10_000,)
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10

    batch = _unpickle(cifar_dir / "cifar-10-batches-py" / "test_batch")
    expected = torch.from_numpy(batch[b"data"][0].reshape(3, 32, 32))
    raw0 = cifar_test.raw([0])
    assert raw0.dtype == torch.uint8 and raw0.shape == (1, 3, 32, 32)
    assert torch.equal(raw0[0], expected)
    assert np.array_equal(labels, np.asarray(batch[b"labels"]))


def test_cifar_python_train_split(cifar_dir: Path, cifar_train: ImageData) -> None:
    assert cifar_train.name == "cifar10-train"
    assert len(cifar_train) == 50_000
    assert np.bincount(cifar_train.labels(), minlength=10).tolist() == [5000] * 10
    last = _unpickle(cifar_dir / "cifar-10-batches-py" / "data_batch_5")
    assert torch.equal(
        cifar_train.raw([49_999])[0], torch.from_numpy(last[b"data"][-1].reshape(3, 32, 32))
    )
    assert cifar_train.labels()[-1] == last[b"labels"][-1]


def test_cifar_spec_may_name_the_batches_folder(cifar_dir: Path, cifar_test: ImageData) -> None:
    direct = open_data(f"cifar10:{cifar_dir / 'cifar-10-batches-py'}")
    assert len(direct) == 10_000
    assert torch.equal(direct.raw(slice(0, 5)), cifar_test.raw(slice(0, 5)))


def test_cifar_binary_layout_matches_python(
    tmp_path: Path, cifar_test: ImageData, cifar_train: ImageData
) -> None:
    per_file = 200
    bin_dir = tmp_path / "cifar-10-batches-bin"
    bin_dir.mkdir()
    train_idx = np.concatenate([np.arange(per_file) + 10_000 * i for i in range(5)])
    for i in range(5):
        idx = train_idx[i * per_file : (i + 1) * per_file]
        write_bin_batch(
            bin_dir / f"data_batch_{i + 1}.bin",
            cifar_train.raw(idx).numpy(),
            cifar_train.labels()[idx],
        )
    write_bin_batch(
        bin_dir / "test_batch.bin",
        cifar_test.raw(slice(0, per_file)).numpy(),
        cifar_test.labels()[:per_file],
    )
    (bin_dir / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")

    test = open_data(f"cifar10:{tmp_path}", "test")
    assert len(test) == per_file and test.classes == CIFAR10_CLASSES
    assert torch.equal(test.raw(slice(None)), cifar_test.raw(slice(0, per_file)))
    assert np.array_equal(test.labels(), cifar_test.labels()[:per_file])

    train = open_data(f"cifar10:{bin_dir}", "train")
    assert len(train) == 5 * per_file
    assert torch.equal(train.raw(slice(None)), cifar_train.raw(train_idx))
    assert np.array_equal(train.labels(), cifar_train.labels()[train_idx])

    small = open_data(f"cifar10:{tmp_path}", "test", image_size=16)
    assert small.image_shape == (3, 16, 16) and small.raw([0]).shape == (1, 3, 16, 16)


def test_truncated_real_test_batch(cifar_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    real = (cifar_dir / "cifar-10-batches-py" / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(real[: len(real) // 3])
    with pytest.raises(DataError) as excinfo:
        open_data(f"cifar10:{tmp_path}")
    assert_data_error(excinfo, folder / "test_batch")


# ---------------------------------------------------------------------------- batches


def _small_set(n: int = 50, size: int = 8, seed: int = 0) -> ImageData:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8))
    return ImageData.from_tensors(images, np.arange(n) % 3, ["a", "b", "c"], name="small")


def test_batches_shapes_and_normalisation() -> None:
    data = _small_set(50)
    batches = list(data.batches(16))
    assert [b[0].shape[0] for b in batches] == [16, 16, 16, 2]
    assert len(list(data.batches(16, drop_last=True))) == 3
    x, y, idx = batches[0]
    assert x.dtype == torch.float32 and x.shape == (16, 3, 8, 8) and x.device.type == "cpu"
    assert y.dtype == torch.int64 and idx.dtype == torch.int64 and idx.device.type == "cpu"
    assert torch.equal(idx, torch.arange(16))
    assert torch.equal(y, torch.from_numpy(data.labels()[:16]))
    raw = data.raw(idx).double() / 255
    mean = torch.tensor(data.mean, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float64).view(3, 1, 1)
    assert torch.allclose(x.double(), (raw - mean) / std, atol=1e-5)
    assert torch.allclose(x, data.normalize(data.raw(idx)), atol=1e-6)
    # from_tensors estimated mean/std from the images: the whole set normalises to 0 / 1.
    all_x = torch.cat([b[0] for b in batches])
    assert torch.allclose(all_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(all_x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_cifar_normalisation_is_roughly_standard(cifar_test: ImageData) -> None:
    x = torch.cat([b[0] for b in cifar_test.subset(2000).batches(1000)])
    assert (x.mean(dim=(0, 2, 3)).abs() < 0.1).all()
    assert ((x.std(dim=(0, 2, 3)) - 1).abs() < 0.1).all()


def test_batches_shuffle_is_seeded() -> None:
    data = _small_set(40)

    def order(seed: int) -> torch.Tensor:
        return torch.cat([idx for _, _, idx in data.batches(7, shuffle=True, seed=seed)])

    first = order(3)
    assert torch.equal(first, order(3))
    assert not torch.equal(first, order(4))
    assert not torch.equal(first, torch.arange(40))
    assert torch.equal(first.sort().values, torch.arange(40))
    for x, y, idx in data.batches(7, shuffle=True, seed=3):
        assert torch.equal(y, torch.from_numpy(data.labels()[idx.numpy()]))
        assert torch.allclose(x, data.normalize(data.raw(idx)))


def test_batches_augment() -> None:
    data = _small_set(64, size=12)
    plain = list(data.batches(32, shuffle=True, seed=1))
    aug = list(data.batches(32, shuffle=True, augment=True, seed=1))
    again = list(data.batches(32, shuffle=True, augment=True, seed=1))
    for (xp, yp, ip), (xa, ya, ia), (xb, _, _) in zip(plain, aug, again, strict=True):
        assert torch.equal(ip, ia) and torch.equal(yp, ya)
        assert xa.shape == xp.shape and xa.dtype == torch.float32
        assert not torch.equal(xa, xp)
        assert torch.equal(xa, xb)


def _is_crop_flip(out: torch.Tensor, src: torch.Tensor, pad: int) -> bool:
    padded = torch.nn.functional.pad(src, (pad, pad, pad, pad))
    h, w = src.shape[-2:]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop) or torch.equal(out, crop.flip(-1)):
                return True
    return False


def test_random_crop_flip_is_a_padded_crop() -> None:
    raw = _small_set(32, size=10).raw(slice(None))
    out = random_crop_flip(raw, torch.Generator().manual_seed(0))
    assert out.shape == raw.shape and out.dtype == torch.uint8
    assert all(_is_crop_flip(out[i], raw[i], 4) for i in range(len(raw)))
    flips = [
        torch.equal(random_crop_flip(raw[:1], torch.Generator().manual_seed(s)), raw[:1])
        for s in range(40)
    ]
    assert any(flips) and not all(flips)  # the identity (offset 4, no flip) is one of the outcomes


def test_raw_indices_and_subset() -> None:
    data = _small_set(10)
    every = data.raw(slice(None))
    assert every.shape == (10, 3, 8, 8)
    assert torch.equal(data.raw([3, 1]), every[[3, 1]])
    assert torch.equal(data.raw(np.array([3, 1])), every[[3, 1]])
    assert torch.equal(data.raw(torch.tensor([3, 1])), every[[3, 1]])
    assert torch.equal(data.raw([-1]), every[[9]])
    assert torch.equal(data.raw(4), every[[4]])
    assert torch.equal(data.raw(np.arange(10) % 2 == 0), every[::2])
    assert data.raw([]).shape == (0, 3, 8, 8)
    with pytest.raises(IndexError):
        data.raw([10])
    with pytest.raises(TypeError):
        data.raw(np.array([0.5]))

    sub = data.subset(4)
    assert len(sub) == 4 and sub.name == data.name and sub.classes == data.classes
    assert sub.mean == data.mean and torch.equal(sub.raw(slice(None)), every[:4])
    assert np.array_equal(sub.labels(), data.labels()[:4])
    assert len(data.subset(100)) == 10 and len(sub.subset(2)) == 2
    assert sum(b[0].shape[0] for b in sub.batches(3)) == 4


# ---------------------------------------------------------------------------- torch datasets


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, images: list[torch.Tensor], labels: list[int]) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.labels[i]


def test_from_torch_dataset() -> None:
    base = _small_set(12)
    u8 = base.raw(slice(None))
    labels = base.labels().tolist()
    unit = _ListDataset([img.float() / 255 for img in u8], labels)
    data = ImageData.from_torch(unit, ["a", "b", "c"])
    assert len(data) == 12 and data.image_shape == (3, 8, 8)
    assert torch.equal(data.raw(slice(None)), u8)
    assert data.labels().tolist() == labels
    x, y, idx = next(iter(data.batches(5)))
    assert x.shape == (5, 3, 8, 8) and y.tolist() == labels[:5]

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    normed = _ListDataset([(img.float() / 255 - m) / s for img in u8], labels)
    data_n = ImageData.from_torch(
        torch.utils.data.DataLoader(normed, batch_size=4), ["a", "b", "c"], mean, std
    )
    assert data_n.mean == mean and torch.equal(data_n.raw(slice(None)), u8)
    assert len(data_n.subset(5)) == 5

    # Unknown range: each image is min-max scaled to 0..255.
    wide = _ListDataset([torch.linspace(-3, 5, 3 * 4 * 4).view(3, 4, 4)], [0])
    raw = ImageData.from_torch(wide, ["a"]).raw([0])
    assert int(raw.min()) == 0 and int(raw.max()) == 255


# ---------------------------------------------------------------------------- image folders


def _png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG")


def test_folder_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "pics"
    imgs = {}
    for cls in ("dog", "cat"):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            px = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
            _png(root / cls / f"{k}.png", px)
            imgs[(cls, k)] = px
    smooth = np.tile(np.linspace(0, 255, 6, dtype=np.uint8)[None, :, None], (6, 1, 3))
    Image.fromarray(smooth).save(root / "dog" / "z.jpg", quality=95)
    Image.fromarray(smooth).save(root / "cat" / "y.bmp")
    Image.fromarray(rng.integers(0, 256, size=(12, 9, 3), dtype=np.uint8)).save(
        root / "cat" / "x_big.png"
    )
    Image.fromarray(rng.integers(0, 256, size=(6, 6), dtype=np.uint8), mode="L").save(
        root / "cat" / "x_gray.png"
    )
    (root / "README.txt").write_text("files beside the class folders are ignored")
    (root / "dog" / ".hidden").write_text("hidden files are ignored")

    data = open_data(f"folder:{root}", "train")  # split is ignored for folders
    assert data.name == "folder-pics" and data.classes == ["cat", "dog"]
    assert len(data) == 10 and data.image_shape == (3, 6, 6)
    # cat: 0,1,2.png, x_big.png, x_gray.png, y.bmp; dog: 0,1,2.png, z.jpg
    assert data.labels().tolist() == [0] * 6 + [1] * 4
    every = data.raw(slice(None))
    assert every.shape == (10, 3, 6, 6)
    assert torch.equal(every[0], torch.from_numpy(imgs[("cat", 0)].transpose(2, 0, 1)))
    assert torch.equal(every[7], torch.from_numpy(imgs[("dog", 1)].transpose(2, 0, 1)))
    assert torch.equal(every[5], torch.from_numpy(smooth.transpose(2, 0, 1)))  # BMP is exact
    jpeg_err = (
        (every[9].int() - torch.from_numpy(smooth.transpose(2, 0, 1)).int()).abs().float().mean()
    )
    assert jpeg_err < 8
    assert torch.equal(every[4][0], every[4][1])  # grayscale became RGB
    expected_mean = (every.double() / 255).mean(dim=(0, 2, 3))
    assert np.allclose(data.mean, expected_mean.numpy(), atol=1e-6)
    assert len(list(data.batches(4))) == 3
    assert torch.equal(data.subset(3).raw(slice(None)), every[:3])

    resized = open_data(f"folder:{root}", image_size=4)
    assert resized.image_shape == (3, 4, 4) and resized.raw([0, 3]).shape == (2, 3, 4, 4)


# ---------------------------------------------------------------------------- download


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """(folder served, base URL) of a local HTTP server."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "www"
    served.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _make_archive(path: Path, src: Path, extra: dict[str, bytes] | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
        for name, payload in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_fetch_cifar10_from_local_server(
    tmp_path: Path, http_server: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, base = http_server
    data, labels = tiny_py_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = served / "cifar-10-python.tar.gz"
    _make_archive(archive, tmp_path / "src" / "cifar-10-batches-py")
    url = f"{base}/{archive.name}"

    root = tmp_path / "root"
    got = fetch_cifar10(root, url=url, md5=md5_of(archive))
    assert got == root / "cifar-10-batches-py" and (got / "test_batch").is_file()
    opened = open_data(f"cifar10:{root}")
    assert len(opened) == 20 and opened.labels().tolist() == labels.tolist()
    assert torch.equal(opened.raw(slice(None)), torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp files left
    archive.unlink()  # already there: no second download
    assert fetch_cifar10(root, url=url, md5="0" * 32) == got

    # open_data("cifar10") downloads into data_root()/cifar10 when allowed.
    _make_archive(archive, tmp_path / "src" / "cifar-10-batches-py")
    monkeypatch.setenv("CNNVIS_DATA", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache"
    with pytest.raises(DataError) as excinfo:
        open_data("cifar10", download=False)
    assert_data_error(excinfo, tmp_path / "cache" / "cifar10")
    monkeypatch.setattr(
        loaders, "fetch_cifar10", functools.partial(fetch_cifar10, url=url, md5=md5_of(archive))
    )
    assert len(open_data("cifar10", "test")) == 20
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


def test_download_wrong_md5_leaves_nothing(tmp_path: Path, http_server: tuple[Path, str]) -> None:
    served, base = http_server
    (served / "f.bin").write_bytes(b"x" * 5000)
    dest = tmp_path / "dl" / "f.bin"
    with pytest.raises(DataError) as excinfo:
        download_file(f"{base}/f.bin", dest, "0" * 32, desc="test")
    assert_data_error(excinfo, dest)
    assert f"{base}/f.bin" in str(excinfo.value)
    assert list(dest.parent.iterdir()) == []
    assert download_file(f"{base}/f.bin", dest, md5_of(served / "f.bin"), desc="test") == dest
    assert dest.read_bytes() == b"x" * 5000

    with pytest.raises(DataError) as excinfo:
        download_file(f"{base}/missing.bin", tmp_path / "dl" / "m.bin", None, desc="test")
    assert_data_error(excinfo, f"{base}/missing.bin")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_fetch_rejects_escaping_tar_member(tmp_path: Path, http_server: tuple[Path, str]) -> None:
    served, base = http_server
    tiny_py_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = served / "evil.tar.gz"
    _make_archive(archive, tmp_path / "src" / "cifar-10-batches-py", extra={"../evil": b"pwned"})
    root = tmp_path / "deep" / "root"
    with pytest.raises(DataError) as excinfo:
        fetch_cifar10(root, url=f"{base}/evil.tar.gz", md5=md5_of(archive))
    assert "../evil" in str(excinfo.value)
    assert_data_error(excinfo, root / "evil.tar.gz")
    assert not (tmp_path / "deep" / "evil").exists() and not (root.parent / "evil").exists()
    assert not (root / "cifar-10-batches-py").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_data_root_respects_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNVIS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "cnnvis_gl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "cnnvis_gl"
    monkeypatch.setenv("CNNVIS_DATA", str(tmp_path / "d"))
    assert data_root() == tmp_path / "d"


# ---------------------------------------------------------------------------- bad inputs


def _bad_missing(tmp: Path) -> tuple[str, Path]:
    return f"cifar10:{tmp / 'nope'}", tmp / "nope"


def _bad_empty(tmp: Path) -> tuple[str, Path]:
    (tmp / "empty").mkdir()
    return f"cifar10:{tmp / 'empty'}", tmp / "empty"


def _bad_truncated(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder, n=50)
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_garbage(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder)
    (folder / "test_batch").write_bytes(np.random.default_rng(0).bytes(4000))
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_shape(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder)
    write_py_batch(folder / "test_batch", np.zeros((4, 100), np.uint8), [0, 1, 2, 3])
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_no_labels(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder)
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2)
    )
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_not_a_dict(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_foreign_object(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    tiny_py_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": datetime.date(2020, 1, 1)}))
    return f"cifar10:{tmp}", folder / "test_batch"


def _bad_bin_truncated(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(bytes(3073 * 2 + 5))
    return f"cifar10:{tmp}", folder / "test_batch.bin"


def _bad_missing_train_batch(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "cifar-10-batches-py"
    data, labels = tiny_py_cifar(folder)
    for i in (1, 2, 4, 5):
        write_py_batch(folder / f"data_batch_{i}", data, labels)
    return f"cifar10:{tmp}|train", folder / "data_batch_3"


def _bad_folder_missing(tmp: Path) -> tuple[str, Path]:
    return f"folder:{tmp / 'nope'}", tmp / "nope"


def _bad_folder_empty(tmp: Path) -> tuple[str, Path]:
    (tmp / "empty").mkdir()
    return f"folder:{tmp / 'empty'}", tmp / "empty"


def _bad_folder_no_images(tmp: Path) -> tuple[str, Path]:
    (tmp / "f" / "a").mkdir(parents=True)
    (tmp / "f" / "b").mkdir()
    return f"folder:{tmp / 'f'}", tmp / "f"


def _bad_folder_text_file(tmp: Path) -> tuple[str, Path]:
    (tmp / "f" / "a").mkdir(parents=True)
    _png(tmp / "f" / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    (tmp / "f" / "a" / "notes.txt").write_text("not an image")
    return f"folder:{tmp / 'f'}", tmp / "f" / "a" / "notes.txt"


def _bad_folder_corrupt_png(tmp: Path) -> tuple[str, Path]:
    (tmp / "f" / "a").mkdir(parents=True)
    _png(tmp / "f" / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    (tmp / "f" / "a" / "1.png").write_bytes(b"definitely not a png")
    return f"folder:{tmp / 'f'}", tmp / "f" / "a" / "1.png"


def _bad_split(tmp: Path) -> tuple[str, Path]:
    tiny_py_cifar(tmp / "cifar-10-batches-py")
    return f"cifar10:{tmp}|val", tmp


BAD_INPUTS = {
    "missing dir": _bad_missing,
    "empty dir": _bad_empty,
    "truncated test_batch": _bad_truncated,
    "garbage test_batch": _bad_garbage,
    "wrong data shape": _bad_shape,
    "no labels": _bad_no_labels,
    "pickle not a dict": _bad_not_a_dict,
    "foreign object in pickle": _bad_foreign_object,
    "truncated binary batch": _bad_bin_truncated,
    "missing train batch": _bad_missing_train_batch,
    "folder missing": _bad_folder_missing,
    "folder empty": _bad_folder_empty,
    "folder without images": _bad_folder_no_images,
    "folder with a text file": _bad_folder_text_file,
    "folder with a corrupt png": _bad_folder_corrupt_png,
    "unknown split": _bad_split,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_data_error_naming_the_path(tmp_path: Path, case: str) -> None:
    spec, path = BAD_INPUTS[case](tmp_path)
    spec, _, split = spec.partition("|")
    with pytest.raises(DataError) as excinfo:
        open_data(spec, split or "test", download=False)
    assert_data_error(excinfo, path)


def test_corrupt_png_after_open_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "f" / "a").mkdir(parents=True)
    for k in range(2):
        _png(tmp_path / "f" / "a" / f"{k}.png", np.full((4, 4, 3), k, np.uint8))
    data = open_data(f"folder:{tmp_path / 'f'}")
    bad = tmp_path / "f" / "a" / "1.png"
    bad.write_bytes(bad.read_bytes()[:30])  # truncated after opening
    with pytest.raises(DataError) as excinfo:
        data.raw([1])
    assert_data_error(excinfo, bad)


@pytest.mark.parametrize("spec", ["imagenet:/x", "cifar100", "/some/dir", ""])
def test_unknown_spec(spec: str) -> None:
    with pytest.raises(DataError) as excinfo:
        open_data(spec)
    message = str(excinfo.value)
    assert "cifar10:DIR" in message and "folder:DIR" in message and "\n" not in message


def test_explicit_cifar_dir_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(loaders, "fetch_cifar10", no_download)
    with pytest.raises(DataError) as excinfo:
        open_data(f"cifar10:{tmp_path / 'absent'}", download=True)
    assert_data_error(excinfo, tmp_path / "absent")


def test_copied_real_layout_reads(cifar_dir: Path, tmp_path: Path) -> None:
    # A copy of the real test batch alone (no meta, no train batches) still opens as "test".
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    shutil.copyfile(cifar_dir / "cifar-10-batches-py" / "test_batch", folder / "test_batch")
    data = open_data(f"cifar10:{tmp_path}")
    assert len(data) == 10_000 and data.classes == CIFAR10_CLASSES
