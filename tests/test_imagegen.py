"""imagegen.Renderer on a tiny random SD3.5-shaped pipeline, loaded from disk like real weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import numpy as np
import torch
from typer.testing import CliRunner

from imagegen import ImageGenError, ImageRecord, Renderer, read_record, size_for_aspect
from imagegen.testing import build_tiny_lora, build_tiny_sd3

FAST = {"steps": 2, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sd3")
    model = build_tiny_sd3(root / "model")
    return {"model": model, "lora": build_tiny_lora(model, root / "lora")}


@pytest.fixture(scope="module")
def renderer(tiny: dict[str, Path]) -> Renderer:
    return Renderer(tiny["model"])


def pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def test_renders_64px_reproducibly_on_cpu(renderer: Renderer) -> None:
    assert renderer.device == "cpu" and renderer.dtype == torch.float32
    first = renderer.render("a plaza with EV chargers", seed=3, **FAST)
    again = renderer.render("a plaza with EV chargers", seed=3, **FAST)
    other = renderer.render("a plaza with EV chargers", seed=4, **FAST)
    assert len(first) == 1 and first[0].size == (64, 64) and first[0].mode == "RGB"
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_image_seeds_do_not_depend_on_batching(renderer: Renderer) -> None:
    batched = renderer.render("x", seed=10, num_images=3, batch_size=2, **FAST)
    single = renderer.render("x", seed=11, num_images=1, **FAST)
    assert [im.info["polisum"].seed for im in batched] == [10, 11, 12]
    # Same seed → same noise, whether the image was the 2nd of a batch or alone (fp tolerance).
    assert np.abs(pixels(batched[1:2]) - pixels(single)).max() <= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 60}, "multiple of 16"),
        ({"height": 0}, "multiple of 16"),
        ({"steps": 0}, "steps"),
        ({"num_images": 0}, "num_images"),
    ],
)
def test_bad_render_options_are_named(renderer: Renderer, kwargs: dict, message: str) -> None:
    with pytest.raises(ImageGenError, match=message):
        renderer.render("x", **{**FAST, **kwargs})


def test_lora_changes_output_scales_and_unloads_cleanly(tiny: dict[str, Path]) -> None:
    renderer = Renderer(tiny["model"])
    base = pixels(renderer.render("a harbor", seed=7, **FAST))
    renderer.load_lora(tiny["lora"], scale=1.0)
    with_lora = renderer.render("a harbor", seed=7, **FAST)
    assert np.abs(pixels(with_lora) - base).max() > 10
    record = with_lora[0].info["polisum"]
    assert record.lora == str(tiny["lora"]) and record.lora_scale == 1.0
    renderer.set_lora_scale(0.0)
    assert np.abs(pixels(renderer.render("a harbor", seed=7, **FAST)) - base).max() <= 1
    renderer.unload_lora()
    after = renderer.render("a harbor", seed=7, **FAST)
    assert np.array_equal(pixels(after), base)
    assert after[0].info["polisum"].lora is None
    # A .safetensors file works as well as its folder.
    renderer.load_lora(tiny["lora"] / "pytorch_lora_weights.safetensors", scale=0.5)
    half = pixels(renderer.render("a harbor", seed=7, **FAST))
    assert not np.array_equal(half, base)


def test_missing_lora_is_named(renderer: Renderer, tmp_path: Path) -> None:
    with pytest.raises(ImageGenError, match="no-such-lora"):
        renderer.load_lora(tmp_path / "no-such-lora")


def test_metadata_round_trips_through_png(renderer: Renderer, tmp_path: Path) -> None:
    images = renderer.render(
        "전기차 충전소가 있는 미래 도시 광장", "blurry, 흐릿함", seed=42, guidance=3.5, **FAST
    )
    (path,) = Renderer.save(images, tmp_path)
    record = read_record(path)
    assert record == images[0].info["polisum"]
    assert record.prompt == "전기차 충전소가 있는 미래 도시 광장"
    assert record.negative_prompt == "blurry, 흐릿함"
    assert (record.seed, record.guidance, record.steps, record.width) == (42, 3.5, 2, 64)
    assert record.model == renderer.model and record.lora is None and record.t5 is True
    # A second save never overwrites the first.
    (second,) = Renderer.save(images, tmp_path)
    assert second != path and path.exists()


def test_record_with_lora_round_trips() -> None:
    record = ImageRecord(prompt="p", seed=1, model="m", lora="/l", lora_scale=0.8, t5=False)
    assert (
        ImageRecord.from_text({k: str(v) for k, v in record.to_dict().items() if v is not None})
        == record
    )


def test_no_t5_drops_the_encoder(tiny: dict[str, Path]) -> None:
    renderer = Renderer(tiny["model"], drop_t5=True)
    assert renderer.pipe.text_encoder_3 is None and renderer.pipe.tokenizer_3 is None
    (image,) = renderer.render("a plaza", seed=1, **FAST)
    assert image.size == (64, 64) and image.info["polisum"].t5 is False


def test_cpu_offload_without_gpu_is_refused(tiny: dict[str, Path]) -> None:
    with pytest.raises(ImageGenError, match="needs a GPU"):
        Renderer(tiny["model"], cpu_offload=True, device="cpu")


def test_missing_weights_say_what_to_provide(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ImageGenError) as info:
        Renderer(tmp_path / "nope")
    assert "no such folder" in str(info.value) and "model_index.json" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageGenError, match=r"no model_index\.json"):
        Renderer(tmp_path / "empty")
    # A Hub id with the Hub unreachable (offline mode) fails with the same guidance.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ImageGenError) as info:
        Renderer("stabilityai/stable-diffusion-3.5-medium")
    assert "POLISUM_SD_MODEL" in str(info.value) and "--model" in str(info.value)


def test_model_from_env(tiny: dict[str, Path], monkeypatch) -> None:
    monkeypatch.setenv("POLISUM_SD_MODEL", str(tiny["model"]))
    assert Renderer(drop_t5=True).model == str(tiny["model"])


def test_size_for_aspect() -> None:
    assert size_for_aspect("1:1") == (1024, 1024)
    w, h = size_for_aspect("16:9")
    assert w % 64 == 0 and h % 64 == 0 and abs(w / h - 16 / 9) < 0.05
    assert abs(w * h - 1024 * 1024) / (1024 * 1024) < 0.1
    with pytest.raises(ImageGenError):
        size_for_aspect("wide")


# --- CLI ------------------------------------------------------------------------------------


def run_cli(*args: str):
    from polisum.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_imagine_prompt_writes_pngs_with_metadata(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    result = run_cli(
        "imagine", "--prompt", "a quiet harbor", "--model", str(tiny["model"]),
        "--lora", str(tiny["lora"]), "--lora-scale", "0.8", "--seed", "5", "--steps", "2",
        "--width", "64", "--height", "64", "-n", "2", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [im["seed"] for im in data["images"]] == [5, 6]
    records = [read_record(im["path"]) for im in data["images"]]
    assert {r.prompt for r in records} == {"a quiet harbor"}
    assert records[0].lora == str(tiny["lora"]) and records[0].lora_scale == 0.8


def test_cli_imagine_uses_the_chatbot_prompt(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    """The description goes through SDPromptWriter; a scripted generator stands in for the LLM."""
    pytest.importorskip("polisum.chat.sdprompt")
    from polisum.components import Components
    from polisum.generate import GenerationResult

    reply = {"prompt": "a futuristic plaza with EV chargers", "negative_prompt": "text",
             "aspect_ratio": "1:1", "style": "photorealistic"}  # fmt: skip
    seen: list[str] = []

    class Scripted:
        name = "scripted"

        def generate(self, conversations, config=None):
            seen.append(conversations[0][-1]["content"])
            return [GenerationResult(text=json.dumps(reply))]

    monkeypatch.setattr(Components, "generator", property(lambda self: Scripted()))
    result = run_cli(
        "imagine", "전기차 충전소가 있는 미래 도시 광장", "--model", str(tiny["model"]),
        "--seed", "1", "--steps", "2", "--width", "64", "--height", "64",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "전기차 충전소가 있는 미래 도시 광장" in seen[0]
    data = json.loads(result.stdout)
    record = read_record(data["images"][0]["path"])
    assert record.prompt == reply["prompt"] and record.negative_prompt == "text"


def test_cli_imagine_without_weights_explains(tmp_path: Path) -> None:
    result = run_cli("imagine", "--prompt", "x", "--model", str(tmp_path / "missing"))
    assert result.exit_code == 2
    assert "model_index.json" in result.stderr and "POLISUM_SD_MODEL" in result.stderr
    assert "Traceback" not in result.output


def test_cli_imagine_needs_exactly_one_source() -> None:
    assert run_cli("imagine").exit_code == 2
    assert run_cli("imagine", "scene", "--prompt", "p").exit_code == 2


def test_cli_imagine_without_a_prompt_writer_says_so(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("polisum.chat.sdprompt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLISUM_GENERATOR", raising=False)
    result = run_cli("imagine", "미래 도시 광장", "--model", str(tiny["model"]))
    assert result.exit_code == 2
    assert "--generator" in result.stderr and "Traceback" not in result.output
