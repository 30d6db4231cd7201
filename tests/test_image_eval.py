"""CLIP score and FID/KID code on tiny random networks, plus the input pitfalls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torchmetrics")

import numpy as np
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from imagegen import (
    FID_MIN_RELIABLE,
    ImageGenError,
    ImageRecord,
    clip_score,
    fid_kid,
    load_folder,
    load_prompts,
    to_rgb,
)
from imagegen.metrics import uint8_batch
from imagegen.testing import build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


class TinyFeatures(nn.Module):
    """A random conv net: uint8 N×3×H×W → N×8 features."""

    side = 32

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float() / 255.0)


def noise_images(n: int, seed: int, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def smooth_images(n: int, size: int = 48) -> list[Image.Image]:
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    return [
        Image.fromarray(
            np.stack([np.outer(np.ones(size), ramp) * (i + 1) / n] * 3, axis=-1).astype(np.uint8)
        )
        for i in range(n)
    ]


# --- pitfalls -------------------------------------------------------------------------------


def test_to_rgb_handles_modes() -> None:
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert to_rgb(Image.new("RGBA", (4, 4), (255, 0, 0, 255))).getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("L", (4, 4), 77)).getpixel((0, 0)) == (77, 77, 77)
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert to_rgb(deep).getpixel((0, 0)) == (255, 255, 255)  # 16-bit scaled, not clipped
    half = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert to_rgb(half).getpixel((0, 0)) == (128, 128, 128)
    assert to_rgb(Image.new("CMYK", (4, 4))).mode == "RGB"


def test_uint8_batch_resizes_with_pil_and_keeps_range() -> None:
    batch = uint8_batch([Image.new("RGB", (100, 60), (255, 10, 0)), Image.new("L", (8, 8), 5)], 32)
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 32, 32)
    assert batch[0, 0].min() == 255 and batch[1].max() == 5
    with pytest.raises(ImageGenError, match="differ in size"):
        uint8_batch([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 9))])


def test_load_folder_reports_bad_files(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8)).save(tmp_path / "b.png")
    Image.new("L", (8, 8)).save(tmp_path / "a.jpg")
    names = [n for n, im in load_folder(tmp_path)]
    assert names == ["a.jpg", "b.png"]
    (tmp_path / "c.png").write_bytes(b"not a png")
    with pytest.raises(ImageGenError, match=r"c\.png"):
        load_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageGenError, match="no images"):
        load_folder(tmp_path / "empty")
    with pytest.raises(ImageGenError, match="not a folder"):
        load_folder(tmp_path / "missing")


def test_load_prompts_formats(tmp_path: Path) -> None:
    names = ["a.png", "b.png"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"image": "b.png", "prompt": "bee"}\n{"image": "a", "prompt": "ant"}\n')
    assert load_prompts(jsonl, names) == ["ant", "bee"]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("a.png\t개미\nb.png\tbee\n", encoding="utf-8")
    assert load_prompts(tsv, names) == ["개미", "bee"]
    txt = tmp_path / "p.txt"
    txt.write_text("ant\nbee\n")
    assert load_prompts(txt, names) == ["ant", "bee"]
    txt.write_text("ant\n")
    with pytest.raises(ImageGenError, match="1 prompt lines for 2 images"):
        load_prompts(txt, names)
    assert load_prompts(None, names, [{"prompt": "x"}, {"prompt": "y"}]) == ["x", "y"]
    with pytest.raises(ImageGenError, match="--prompts"):
        load_prompts(None, names, [{"prompt": "x"}, {}])


# --- CLIP score -----------------------------------------------------------------------------


def test_clip_score_on_tiny_clip(tiny_clip: Path, tmp_path: Path) -> None:
    images = [*noise_images(3, seed=1), Image.new("RGB", (48, 48), (200, 30, 30))]
    prompts = ["전기차", "a cat", "전기차 충전소가 있는 광장", "red"]
    result = clip_score(images, prompts, str(tiny_clip), batch_size=4)
    assert result.model == str(tiny_clip) and len(result.per_image) == 4
    assert all(0 <= s <= 100 for s in result.per_image)
    assert result.score == pytest.approx(float(np.mean(result.per_image)), abs=1e-4)
    assert result.per_image[0] > 0 and len(set(result.per_image)) > 1
    # Prompts of different lengths are padded in a batch; padding must not change any score.
    one_by_one = clip_score(images, prompts, str(tiny_clip), batch_size=1)
    assert one_by_one.per_image == pytest.approx(result.per_image, abs=1e-3)
    # The same picture through a PNG file (grayscale+alpha on disk) scores like in memory.
    Image.fromarray(np.asarray(images[0])).save(tmp_path / "a.png")
    ((_name, loaded),) = load_folder(tmp_path)
    from_disk = clip_score([loaded], prompts[:1], str(tiny_clip))
    assert from_disk.per_image[0] == pytest.approx(result.per_image[0], abs=1e-3)


def test_clip_score_errors(tmp_path: Path, tiny_clip: Path) -> None:
    with pytest.raises(ImageGenError, match="2 images but 1 prompts"):
        clip_score(noise_images(2, 0), ["x"], str(tiny_clip))
    with pytest.raises(ImageGenError) as info:
        clip_score(noise_images(1, 0), ["x"], str(tmp_path / "no-clip"))
    assert "--clip-model" in str(info.value) and "no-clip" in str(info.value)


# --- FID / KID ------------------------------------------------------------------------------


def test_fid_is_zero_for_identical_sets_and_positive_for_different() -> None:
    features = TinyFeatures()
    a = noise_images(24, seed=1)
    same = fid_kid(a, list(a), features, kid_subset_size=10)
    assert abs(same.fid) < 1e-3 and abs(same.kid_mean) < 1e-3
    different = fid_kid(a, smooth_images(24), features, kid_subset_size=10)
    assert different.fid > 1e-2 and different.kid_mean > 0
    near = fid_kid(a, noise_images(24, seed=2), features, kid_subset_size=10)
    assert 0 < near.fid < different.fid  # two noise sets are closer than noise vs gradients
    assert any("unstable" in w for w in different.warnings)
    assert different.n_images == 24 and different.kid_subset_size == 10


def test_kid_subset_is_clipped_to_set_size() -> None:
    result = fid_kid(noise_images(5, 1), noise_images(7, 2), TinyFeatures())
    assert result.kid_subset_size == 5
    assert any("subset size lowered to 5" in w for w in result.warnings)
    assert FID_MIN_RELIABLE >= 2048


def test_fid_needs_two_images_per_side() -> None:
    with pytest.raises(ImageGenError, match="at least 2"):
        fid_kid(noise_images(1, 1), noise_images(4, 2), TinyFeatures())


def test_hf_features_from_a_local_clip(tiny_clip: Path) -> None:
    a = noise_images(6, seed=3)
    same = fid_kid(a, list(a), f"hf:{tiny_clip}", kid_subset_size=4)
    assert abs(same.fid) < 1e-3 and same.features == f"hf:{tiny_clip}"
    diff = fid_kid(a, smooth_images(6), f"hf:{tiny_clip}", kid_subset_size=4)
    assert diff.fid > 1e-3


def test_inception_without_weights_says_what_to_provide(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ImageGenError) as info:
        fid_kid(noise_images(2, 1), noise_images(2, 2), "inception")
    message = str(info.value)
    assert "torch-fidelity" in message and "weights-inception-2015-12-05" in message


# --- CLI ------------------------------------------------------------------------------------


def save_rendered(folder: Path, images: list[Image.Image], prompts: list[str]) -> None:
    folder.mkdir()
    for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        record = ImageRecord(prompt=prompt, seed=i, model="tiny")
        image.save(folder / f"{i}.png", pnginfo=record.png_info())


def test_cli_eval_images(tiny_clip: Path, tmp_path: Path) -> None:
    from polisum.cli import app

    save_rendered(tmp_path / "gen", noise_images(4, 1), ["a", "b", "c", "d"])
    save_rendered(tmp_path / "ref", smooth_images(4), ["e", "f", "g", "h"])
    result = CliRunner().invoke(app, [
        "eval", "images", "--images", str(tmp_path / "gen"), "--ref", str(tmp_path / "ref"),
        "--clip-model", str(tiny_clip), "--features", f"hf:{tiny_clip}", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["clip"]["model"] == str(tiny_clip) and set(data["clip"]["per_image"]) == {
        "0.png",
        "1.png",
        "2.png",
        "3.png",
    }
    assert data["distribution"]["fid"] > 0 and data["distribution"]["kid_subset_size"] == 4
    assert any("unstable" in w for w in data["distribution"]["warnings"])
    text = CliRunner().invoke(app, [
        "eval", "images", "--images", str(tmp_path / "gen"), "--ref", str(tmp_path / "gen"),
        "--clip-model", str(tiny_clip), "--features", f"hf:{tiny_clip}",
    ])  # fmt: skip
    assert text.exit_code == 0 and "CLIP score" in text.stdout and "FID 0.00" in text.stdout
    assert "unstable" in text.stderr


def test_cli_eval_images_without_clip_weights(tmp_path: Path) -> None:
    from polisum.cli import app

    save_rendered(tmp_path / "gen", noise_images(2, 1), ["a", "b"])
    result = CliRunner().invoke(app, [
        "eval", "images", "--images", str(tmp_path / "gen"), "--clip-model", str(tmp_path / "x"),
    ])  # fmt: skip
    assert result.exit_code == 2 and "--clip-model" in result.stderr
    assert "Traceback" not in result.output
