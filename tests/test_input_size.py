"""Model input size and normalisation: lazy resize + centre crop, real photo files, presets."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.cli import main as cli_main
from cnnvis_gl.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMALIZE_PRESETS,
    ImageData,
    fit_to_model,
    open_data,
    parse_input_size,
    parse_normalize,
)
from cnnvis_gl.data import folder as folder_mod
from cnnvis_gl.data.folder import ALPHA_BACKGROUND, decode_image
from cnnvis_gl.data.imagedata import channel_stats, resize_crop_uint8, resize_uint8
from cnnvis_gl.data.inputs import CIFAR10_TRAIN_MEAN, CIFAR10_TRAIN_STD
from cnnvis_gl.errors import CnnvisError
from cnnvis_gl.model.cpu_fallback import LEGACY_TYPES, cuda_constructors_on_cpu
from cnnvis_gl.stats.ablation import ablate
from cnnvis_gl.train import TrainConfig, evaluate, train

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# ---------------------------------------------------------------------------- helpers


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.asarray(rgb, dtype=np.uint8), (h, w, 1))


def quadrants(h: int, w: int) -> np.ndarray:
    """``[h, w, 3]``: red top-left, green top-right, blue bottom-left, white bottom-right."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = RED
    img[: h // 2, w // 2 :] = GREEN
    img[h // 2 :, : w // 2] = BLUE
    img[h // 2 :, w // 2 :] = WHITE
    return img


def png16_rgb(path: Path, pixels: np.ndarray) -> None:
    """A 48-bit (16 bits a channel) RGB PNG, written byte by byte (PIL cannot write one)."""
    h, w, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def exif_jpeg(path: Path, display: np.ndarray, orientation: int) -> None:
    """A JPEG whose stored pixels must be turned by EXIF ``orientation`` (6 or 8) to give
    ``display``.  6: "rotate 90° clockwise to view", 8: "rotate 90° counter-clockwise"; the
    stored pixels are ``display`` turned the other way (numpy's rot90 turns counter-clockwise),
    independently of PIL's own table."""
    stored = np.rot90(display, k=1 if orientation == 6 else -1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif.tobytes())


def hwc(t: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` tensor as ``[H, W, 3]`` int array."""
    return t.permute(1, 2, 0).numpy().astype(int)


def close(pixel: np.ndarray, rgb: tuple[int, int, int], tol: int = 0) -> bool:
    return bool(np.abs(np.asarray(pixel, int) - np.asarray(rgb)).max() <= tol)


# ---------------------------------------------------------------------------- modes → RGB


def test_grayscale_becomes_equal_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8)[None, :], (5, 1))
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "L"
    px = decode_image(tmp_path / "g.png")
    assert px.shape == (3, 5, 25)
    for c in range(3):
        np.testing.assert_array_equal(px[c], gray)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    assert ALPHA_BACKGROUND == WHITE
    rgba = np.zeros((4, 9, 4), np.uint8)
    rgba[:, :3] = (255, 0, 0, 255)  # opaque red
    rgba[:, 3:6] = (0, 0, 255, 0)  # fully transparent blue: the background shows
    rgba[:, 6:] = (0, 255, 0, 128)  # half transparent green
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    px = hwc(torch.from_numpy(decode_image(tmp_path / "a.png")))
    assert close(px[0, 0], RED) and close(px[0, 4], WHITE)
    assert close(px[0, 7], (127, 255, 127), tol=1)  # 128/255 green over white


def test_gray_alpha_and_palette_with_transparency(tmp_path: Path) -> None:
    la = np.zeros((3, 6, 2), np.uint8)
    la[:, :3] = (100, 255)
    la[:, 3:] = (100, 0)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    px = hwc(torch.from_numpy(decode_image(tmp_path / "la.png")))
    assert close(px[1, 1], (100, 100, 100)) and close(px[1, 4], WHITE)

    idx = np.zeros((4, 8), np.uint8)
    idx[:, 4:] = 2
    idx[0, 0] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.save(tmp_path / "p.png")
    pal.save(tmp_path / "pt.png", transparency=2)  # palette entry 2 (blue) is transparent
    assert Image.open(tmp_path / "p.png").mode == "P"
    px = hwc(torch.from_numpy(decode_image(tmp_path / "p.png")))
    assert close(px[1, 1], RED) and close(px[0, 0], GREEN) and close(px[1, 6], BLUE)
    px = hwc(torch.from_numpy(decode_image(tmp_path / "pt.png")))
    assert close(px[1, 1], RED) and close(px[0, 0], GREEN) and close(px[1, 6], WHITE)


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 257 * 200, 65535]], dtype=np.uint16).repeat(3, axis=0)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode in ("I;16", "I")  # a 16-bit grayscale PNG
        assert (
            Image.open(tmp_path / "g16.png").convert("RGB").getpixel((1, 0)) == WHITE
        )  # PIL clips
    px = decode_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(px[:, 0], np.array([[0, 100, 200, 255]] * 3))

    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[:, :] = (257 * 200, 257 * 100, 257 * 50)
    png16_rgb(tmp_path / "rgb16.png", rgb16)
    px = hwc(torch.from_numpy(decode_image(tmp_path / "rgb16.png")))
    assert px.shape == (2, 3, 3) and close(px[1, 2], (200, 100, 50))


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_is_upright(tmp_path: Path, orientation: int) -> None:
    display = quadrants(60, 40)  # portrait; stored as a 40 x 60 landscape
    exif_jpeg(tmp_path / "r.jpg", display, orientation)
    with Image.open(tmp_path / "r.jpg") as im:
        assert im.getexif()[0x0112] == orientation and im.size == (60, 40)
        stored = np.asarray(im.convert("RGB")).astype(int)
    assert not close(stored[2, 2], RED, tol=40)  # what a loader without EXIF would show
    px = hwc(torch.from_numpy(decode_image(tmp_path / "r.jpg")))
    assert px.shape == (60, 40, 3)
    for (y, x), rgb in {(3, 3): RED, (3, 36): GREEN, (56, 3): BLUE, (56, 36): WHITE}.items():
        assert close(px[y, x], rgb, tol=12), (y, x, px[y, x])
    # at an input size: the same corners, after the shorter side is resized and the centre kept
    px = hwc(torch.from_numpy(decode_image(tmp_path / "r.jpg", (32, 32))))
    for (y, x), rgb in {(2, 2): RED, (2, 29): GREEN, (29, 2): BLUE, (29, 29): WHITE}.items():
        assert close(px[y, x], rgb, tol=12), (y, x, px[y, x])


# ---------------------------------------------------------------------------- resize + crop


def test_centre_crop_keeps_the_centre_and_the_aspect_ratio(tmp_path: Path) -> None:
    bands = np.concatenate([solid(30, 30, RED), solid(30, 30, GREEN), solid(30, 30, BLUE)], 1)
    (tmp_path / "d" / "only").mkdir(parents=True)
    Image.fromarray(bands).save(tmp_path / "d" / "only" / "wide.png")
    Image.fromarray(solid(20, 20, WHITE)).save(tmp_path / "d" / "only" / "z.png")
    data = open_data(f"folder:{tmp_path / 'd'}")
    assert data.image_shape == (3, 30, 90)  # the first image's size
    for size in (30, 15):
        px = hwc(data.resized(size).raw([0])[0])
        assert px.shape == (size, size, 3)
        inner = px[:, 1:-1].reshape(-1, 3)  # (a border column may blend with the next band)
        assert all(close(p, GREEN, tol=2) for p in inner), size
    # the same on decoded tensors: a 30 x 90 image at 15 x 15 keeps only its green centre
    t = torch.from_numpy(bands).permute(2, 0, 1)[None].contiguous()
    px = hwc(resize_crop_uint8(t, (15, 15))[0])
    assert all(close(p, GREEN, tol=2) for p in px[:, 1:-1].reshape(-1, 3))


def test_resize_crop_of_tensors() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    # a square image to a square size is a plain resize
    assert torch.equal(resize_crop_uint8(img, (64, 64)), resize_uint8(img, (64, 64)))
    assert resize_crop_uint8(img, (32, 32)) is img
    # a non-square size: same scale (1), central rows kept
    assert torch.equal(resize_crop_uint8(img, (16, 32)), img[:, :, 8:24])
    assert torch.equal(resize_crop_uint8(img, (32, 20)), img[:, :, :, 6:26])
    out = resize_crop_uint8(img, (48, 64))  # scale 2: 64 x 64, then rows 8..56
    assert torch.equal(out, resize_uint8(img, (64, 64))[:, :, 8:56])


def tensor_data(n: int = 10, size: int = 32) -> ImageData:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ImageData.from_tensors(images, np.arange(n) % 3, ["a", "b", "c"], name="t")


def count_fetches(data: ImageData, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the batch size of every ``data._fetch`` call."""
    calls: list[int] = []
    real = data._fetch

    def fetch(idx: np.ndarray) -> torch.Tensor:
        calls.append(len(idx))
        return real(idx)

    monkeypatch.setattr(data, "_fetch", fetch)
    return calls


def test_resized_view_is_lazy_and_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    data = tensor_data(10)
    calls = count_fetches(data, monkeypatch)
    view = data.resized(224)
    assert view.image_shape == (3, 224, 224) and len(view) == 10
    assert view.labels().tolist() == data.labels().tolist() and view.mean == data.mean
    assert calls == []  # nothing fetched or resized up front
    shapes = [tuple(x.shape) for x, _, _ in view.batches(4)]
    assert shapes == [(4, 3, 224, 224), (4, 3, 224, 224), (2, 3, 224, 224)]
    assert calls == [4, 4, 2]  # one parent fetch per batch
    raw = view.raw([7, 2])
    assert calls[-1] == 2
    expected = resize_uint8(data.raw([7, 2]), (224, 224))  # square to square: plain resize
    assert torch.equal(raw, expected)
    # subset keeps the size; resizing again starts from the original pixels
    sub = view.subset(3)
    assert sub.image_shape == (3, 224, 224) and len(sub) == 3
    assert torch.equal(sub.raw([1]), view.raw([1]))
    assert view.resized(32) is data
    assert torch.equal(view.resized(48).raw([0]), resize_uint8(data.raw([0]), (48, 48)))
    assert data.resized(32) is data and data.resized((32, 32)) is data
    with pytest.raises(ValueError):
        data.resized(0)


def test_every_kind_of_image_data_resizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tensor_data(6, size=12)
    torch_ds = torch.utils.data.TensorDataset(
        base.raw(slice(None)), torch.from_numpy(base.labels())
    )
    kinds = {
        "tensor": base,
        "subset": ImageData.from_torch(torch_ds, base.classes).subset(5),
        "torch": ImageData.from_torch(torch_ds, base.classes),
        "normalized": base.with_normalization(IMAGENET_MEAN, IMAGENET_STD),
    }
    for name, data in kinds.items():
        view = data.resized((20, 16))
        assert view.image_shape == (3, 20, 16), name
        assert torch.equal(view.raw([1]), resize_crop_uint8(base.raw([1]), (20, 16))), name
        assert view.subset(2).image_shape == (3, 20, 16) and len(view.subset(2)) == 2, name
        assert view.mean == data.mean, name
    # a folder decodes its files straight to the new size, and only when asked
    root = tmp_path / "f"
    (root / "c").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(quadrants(30, 50)).save(root / "c" / f"{k}.png")
    folder = open_data(f"folder:{root}")
    decoded: list[Path] = []
    real = folder_mod.decode_image
    monkeypatch.setattr(
        folder_mod, "decode_image", lambda p, s=None: decoded.append(p) or real(p, s)
    )
    view = folder.resized(24)
    sub = view.subset(2)
    assert decoded == [] and view.image_shape == (3, 24, 24) and sub.image_shape == (3, 24, 24)
    px = hwc(sub.raw([1])[0])
    assert len(decoded) == 1
    assert close(px[1, 1], RED) and close(px[1, 22], GREEN) and close(px[22, 1], BLUE)


def test_folder_of_mixed_photos_at_any_input_size(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for c in ("animals", "things"):
        (root / c).mkdir(parents=True)
    expect: list[tuple[int, int, int]] = []
    # animals: RGB JPEG (portrait), grayscale PNG (landscape), RGBA PNG, palette PNG
    Image.fromarray(solid(60, 40, (200, 30, 30))).save(root / "animals" / "a.jpg", quality=95)
    Image.fromarray(np.full((30, 50), 90, np.uint8)).save(root / "animals" / "b.png")
    rgba = np.zeros((33, 33, 4), np.uint8)
    rgba[...] = (10, 20, 250, 255)
    rgba[:3] = (0, 0, 0, 0)  # a transparent strip at the top, cropped away or white
    Image.fromarray(rgba).save(root / "animals" / "c.png")
    pal = Image.fromarray(np.ones((20, 64), np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 30, 160, 60] + [0] * (256 * 3 - 6))
    pal.save(root / "animals" / "d.png")
    expect += [(200, 30, 30), (90, 90, 90), (10, 20, 250), (30, 160, 60)]
    # things: 16-bit gray, 16-bit RGB, an EXIF-rotated JPEG, a BMP
    Image.fromarray(np.full((45, 45), 257 * 150, np.uint16)).save(root / "things" / "e.png")
    png16_rgb(root / "things" / "f.png", np.full((31, 47, 3), 257 * 70, np.uint16))
    exif_jpeg(root / "things" / "g.jpg", quadrants(64, 48), 6)
    Image.fromarray(solid(16, 16, (250, 250, 0))).save(root / "things" / "h.bmp")
    expect += [(150, 150, 150), (70, 70, 70), None, (250, 250, 0)]  # type: ignore[list-item]

    data = open_data(f"folder:{root}")
    assert data.classes == ["animals", "things"] and data.labels().tolist() == [0] * 4 + [1] * 4
    assert data.image_shape == (3, 60, 40)  # the first image's size, by default
    for size in (None, 24, (20, 28), 224):
        view = data if size is None else fit_to_model(data, size)
        h, w = view.image_shape[1:]
        x, y, _ = next(view.batches(8))
        assert x.shape == (8, 3, h, w) and torch.isfinite(x).all()
        raw = view.raw(slice(None))
        for i, rgb in enumerate(expect):
            centre = hwc(raw[i])[h // 2, w // 2]
            if rgb is not None:
                assert close(centre, rgb, tol=3), (size, i, centre)
        rotated = hwc(raw[6])  # upright: red top-left, white bottom-right
        assert close(rotated[2, 2], RED, tol=12) and close(rotated[-3, -3], WHITE, tol=12), size


# ---------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "spec, mean, std",
    [
        ("imagenet", IMAGENET_MEAN, IMAGENET_STD),
        ("ImageNet", IMAGENET_MEAN, IMAGENET_STD),
        ("cifar10", CIFAR10_TRAIN_MEAN, CIFAR10_TRAIN_STD),
        ("none", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # pixels in [0, 1] (RobustBench's models)
        ("0.1,0.2,0.3/0.4,0.5,0.6", (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
        (((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    ],
)
def test_normalize_changes_batches_exactly(spec: object, mean: tuple, std: tuple) -> None:
    data = tensor_data(7)
    view = fit_to_model(data, normalize=spec)
    assert view.mean == tuple(mean) and view.std == tuple(std)
    assert data.mean != view.mean  # the parent keeps its own statistics
    raw = data.raw(slice(None))
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    expected = (raw.float() / 255 - m) / s
    x = torch.cat([b[0] for b in view.batches(3)])
    assert torch.equal(x, expected)
    assert torch.equal(view.normalize(raw), expected)
    assert torch.equal(view.raw(slice(None)), raw)  # pixels are untouched
    # subset and resize keep the statistics; defaults keep the dataset's own
    assert view.subset(2).mean == tuple(mean) and view.resized(40).std == tuple(std)
    assert fit_to_model(data) is data and fit_to_model(data, normalize=None) is data


def test_cifar10_preset_is_the_training_set_statistics(cifar_dir: Path) -> None:
    assert NORMALIZE_PRESETS["cifar10"] == (CIFAR10_TRAIN_MEAN, CIFAR10_TRAIN_STD)
    train = open_data(f"cifar10:{cifar_dir}", "train")
    mean, std = channel_stats(train.raw(slice(None)))
    np.testing.assert_allclose(mean, CIFAR10_TRAIN_MEAN, atol=5e-7)
    np.testing.assert_allclose(std, CIFAR10_TRAIN_STD, atol=5e-7)


# ---------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "value",
    ["abc", "0", "224x", "x224", "22x-4", "1e3", 0, -5, 5000, 2.5, True, (224,), "224x224x3"],
)
def test_bad_input_size(value: object) -> None:
    with pytest.raises(CnnvisError) as e:
        parse_input_size(value, "--input-size")
    assert str(e.value).startswith("--input-size ") and "\n" not in str(e.value)


def test_good_input_sizes() -> None:
    assert parse_input_size(224) == (224, 224) and parse_input_size(np.int64(64)) == (64, 64)
    assert parse_input_size("299") == (299, 299) and parse_input_size(" 240X320 ") == (240, 320)
    assert parse_input_size((240, 320)) == (240, 320) and parse_input_size(None) is None


@pytest.mark.parametrize(
    "value",
    ["imagenet21k", "", "0.5,0.5,0.5", "0.5,0.5/0.2,0.2", "0.5,0.5,0.5/0.2,0,0.2",
     "0.5,0.5,0.5/0.2,-1,0.2", "nan,0,0/1,1,1", "a,b,c/d,e,f", ((1, 2, 3),), 3],
)  # fmt: skip
def test_bad_normalize(value: object) -> None:
    with pytest.raises(CnnvisError) as e:
        parse_normalize(value, "--normalize")
    assert str(e.value).startswith("--normalize ") and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["analyze", "basecnn", "--input-size", "abc"], "--input-size 'abc'"),
        (["analyze", "basecnn", "--input-size", "0"], "--input-size '0'"),
        (["analyze", "basecnn", "--normalize", "vgg"], "--normalize 'vgg'"),
        (["analyze", "basecnn", "--normalize", "0.5,0.5,0.5/1,0,1"], "positive"),
        (["train", "basecnn", "--input-size", "224x"], "--input-size '224x'"),
        (["train", "basecnn", "--normalize", "0.5,0.5,0.5"], "--normalize"),
    ],
)
def test_cli_option_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    # the data spec is bad too: the options are checked first, before anything is loaded
    rc = cli_main([*args, "--data", f"cifar10:{tmp_path}/nowhere", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cnnvis {args[0]}: error: "), err
    assert needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_api_errors_name_the_argument(tmp_path: Path) -> None:
    model = tiny_cnn()
    with pytest.raises(CnnvisError, match="^input_size 'big'"):
        cv.analyze(model, tensor_data(6), input_size="big", progress=False)
    with pytest.raises(CnnvisError, match="^normalize 'nope'"):
        cv.Recorder(model, tensor_data(6), tmp_path / "r", normalize="nope")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------- end to end


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


@pytest.mark.parametrize(
    ("head", "leaf"),
    [
        (nn.AvgPool2d(14), "3"),  # a head pooling 14×14 maps (56-px images) fed 32 px
        (nn.Linear(8 * 16 * 16, 10), "4"),  # a classifier sized for 64-px images
    ],
)
def test_a_model_built_for_other_images_says_so(head: nn.Module, leaf: str) -> None:
    # the error names the layer that failed and the option that fixes it, on one line
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
    model.extend([head, nn.Flatten()] if leaf == "3" else [nn.Flatten(), head])
    with pytest.raises(CnnvisError) as e:
        cv.analyze(model, tensor_data(4), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and f"(in {leaf!r})" in msg, msg
    assert "built for other images than 32x32?" in msg and "--input-size" in msg, msg


def test_a_model_for_grey_images_says_so() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(CnnvisError) as e:
        cv.analyze(model, tensor_data(4), progress=False)
    msg = str(e.value)
    assert "(in '0')" in msg and "takes 1-channel images and the data's have 3" in msg, msg


class _TakesADict(nn.Module):
    """A forward written for a dict of inputs (davidcpage/cifar10-fast's ``Network``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, inputs: dict) -> dict:
        outputs = dict(inputs)
        outputs["logits"] = self.conv(outputs["input"]).mean((2, 3))
        return outputs


class _TakesTwo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.conv(x) * mask).mean((2, 3))


@pytest.mark.parametrize("model", [_TakesADict(), _TakesTwo()], ids=["dict", "two"])
def test_a_forward_taking_other_inputs_than_images_says_what_it_is_given(model) -> None:
    with pytest.raises(CnnvisError) as e:
        cv.analyze(model, tensor_data(4), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{type(model).__name__} fails on an input"), msg
    assert "calls forward(images) with one tensor (B, C, H, W)" in msg and "wrapper" in msg, msg


class _BadView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).view(len(x), 999)


def test_a_shape_error_in_forward_gets_no_such_hint() -> None:
    with pytest.raises(CnnvisError) as e:
        cv.analyze(_BadView(), tensor_data(4), progress=False)
    msg = str(e.value)
    assert "wrapper" not in msg and "RuntimeError: shape '[2, 999]' is invalid" in msg, msg


class _MakesCudaTensors(nn.Module):
    """PyramidNet of kakaobrain/fast-autoaugment (and of clovaai/CutMix-PyTorch, dyhan0920's):
    zero channels padding the shortcut are made with ``torch.cuda.FloatTensor(…).fill_(0)``
    (``legacy``), or, as others write it, ``torch.zeros(…)``."""

    def __init__(self, legacy: bool = True) -> None:
        super().__init__()
        self.legacy = legacy
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (len(x), 1, *x.shape[2:])
        pad = torch.cuda.FloatTensor(*shape).fill_(0) if self.legacy else torch.zeros(shape)
        return self.fc((self.conv(x) + torch.cat((x, pad), 1)).relu().mean((2, 3)))


def test_legacy_cuda_constructors_make_cpu_tensors_for_a_model_on_the_cpu() -> None:
    cuda_float = torch.cuda.FloatTensor
    torch.manual_seed(0)
    legacy, plain = _MakesCudaTensors(), _MakesCudaTensors(legacy=False)
    plain.load_state_dict(legacy.state_dict())
    data = tensor_data(12)
    a = cv.analyze(legacy, data, k=3, progress=False)
    b = cv.analyze(plain, data, k=3, progress=False)
    assert [u.name for u in a.graph.units] == [u.name for u in b.graph.units] == ["conv", "fc"]
    assert sorted(a.keys()) == sorted(b.keys())
    for key in a.keys():
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
    loss, _ = evaluate(legacy, data)
    assert loss == evaluate(plain, data)[0]
    cut = [{"conv": [0, 2]}]
    ablated = [ablate(m, data.batches(6), cut, 3)[0] for m in (legacy, plain)]
    np.testing.assert_array_equal(ablated[0].loss, ablated[1].loss)
    assert ablated[0].count.sum() == 12
    hist = train(legacy, data, data, TrainConfig(epochs=1, batch_size=6), progress=False,
                 log=lambda _: None)  # (the training loop too)  # fmt: skip
    assert hist.steps == 2 and hist.epochs[0]["test_loss"] > 0
    assert torch.cuda.FloatTensor is cuda_float  # only for the length of cnnvis' passes


def test_the_cpu_constructors_are_restored_after_nested_and_failing_passes() -> None:
    saved = {n: getattr(torch.cuda, n) for n in LEGACY_TYPES}
    with cuda_constructors_on_cpu("cpu"):
        with cuda_constructors_on_cpu(torch.device("cpu")):
            assert torch.cuda.LongTensor(2).dtype == torch.int64
        assert torch.cuda.FloatTensor(1, 2).shape == (1, 2)  # the outer pass still has them
        with pytest.raises(RuntimeError, match="a failing pass"), cuda_constructors_on_cpu("cpu"):
            raise RuntimeError("a failing pass")
        assert torch.cuda.HalfTensor(3).dtype == torch.float16
    assert {n: getattr(torch.cuda, n) for n in LEGACY_TYPES} == saved
    with cuda_constructors_on_cpu("meta"):  # a model elsewhere than on the CPU: untouched
        assert torch.cuda.FloatTensor is saved["FloatTensor"]


class _MakesCudaTensorsByDevice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = torch.zeros(len(x), 1, *x.shape[2:], device="cuda")
        return (self.conv(x) + torch.cat((x, pad), 1)).mean((2, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="where CUDA is, the model runs")
def test_a_model_making_cuda_tensors_without_cuda_says_so() -> None:
    with pytest.raises(CnnvisError) as e:
        cv.analyze(_MakesCudaTensorsByDevice(), tensor_data(4), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "makes CUDA tensors in its own code" in msg, msg
    assert "on a machine with a GPU (--device cuda)" in msg, msg


def test_analyze_cifar_at_64_px(cifar_dir: Path) -> None:
    spec = f"cifar10:{cifar_dir}"
    snap = cv.analyze(tiny_cnn(), spec, input_size=64, limit=20, k=3, progress=False)
    assert snap.n_images == 20
    images = np.asarray(snap["images"])
    assert images.shape[1:] == (64, 64, 3)
    # the top-k images are the resized test images themselves
    ids = np.asarray(snap["image_index"])
    resized = open_data(spec).resized(64).raw(ids)
    np.testing.assert_array_equal(images, resized.permute(0, 2, 3, 1).numpy())
    for group in snap.graph.groups[:2]:
        boxes = np.asarray(snap[f"units/{group.unit}/topk_box"])
        assert boxes.min() >= 0 and boxes[..., 2:].max() <= 64
        patches = snap.patches(group.name, k=3)
        assert patches.shape[1:] == (3, 32, 32, 3) and patches.any()


def test_recorder_at_an_input_size_equals_analyze(cifar_dir: Path, tmp_path: Path) -> None:
    data = open_data(f"cifar10:{cifar_dir}").subset(20)
    model = tiny_cnn()
    kw = {"input_size": "48", "normalize": "imagenet"}
    with cv.Recorder(model, data, tmp_path, every=1, k=3, batch_size=8, **kw) as rec:
        rec.record(0)
    recorded = cv.open_run(tmp_path).snapshot(0)
    direct = cv.analyze(model, data, k=3, batch_size=8, progress=False, **kw)
    assert np.asarray(recorded["images"]).shape[1:] == (48, 48, 3)
    assert sorted(recorded.keys()) == sorted(direct.keys())
    for key in direct.keys():
        np.testing.assert_allclose(recorded[key], direct[key], rtol=1e-5, atol=1e-6, err_msg=key)
    plain = cv.analyze(model, data, k=3, batch_size=8, input_size=48, progress=False)
    unit = direct.graph.groups[0].unit
    assert not np.allclose(plain[f"units/{unit}/A_max"], direct[f"units/{unit}/A_max"])
