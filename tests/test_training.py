"""The training recipes end to end on CPU, with tiny random models of the real architectures.

Each recipe runs through ``polisum train ... --config training/configs/tiny/<recipe>.yaml``, the
command a user runs; the tiny models (Exaone4, a Gemma-2 teacher and a smaller Gemma-2 student
sharing one tokenizer, an SD3.5-shaped pipeline) are built once into a temporary folder by
``training.tiny`` and then loaded from disk like downloaded weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")
pytest.importorskip("trl")
pytest.importorskip("diffusers")

import torch
from typer.testing import CliRunner

from polisum.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny"


@pytest.fixture(scope="module", autouse=True)
def tiny_models(tmp_path_factory: pytest.TempPathFactory):
    """tiny:NAME models are built under a temporary folder, not the user's cache."""
    previous = os.environ.get("POLISUM_TINY_MODELS")
    os.environ["POLISUM_TINY_MODELS"] = str(tmp_path_factory.mktemp("tiny-models"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared CPU
    yield Path(os.environ["POLISUM_TINY_MODELS"])
    torch.set_num_threads(threads)
    if previous is None:
        os.environ.pop("POLISUM_TINY_MODELS", None)
    else:
        os.environ["POLISUM_TINY_MODELS"] = previous


def train(*args: str, ok: bool = True):
    result = CliRunner().invoke(app, ["train", *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long error lines


def metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def losses(rows: list[dict], key: str = "loss") -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in rows if key in r]


# ---------------------------------------------------------------------------------------------
# sft


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs, then a resumed run to four: the step count must continue."""
    out = tmp_path_factory.mktemp("sft")
    config = str(TINY / "sft.yaml")
    train("sft", "--config", config, "--output-dir", str(out), "--set", "training.epochs=2")
    first = metrics(out / "metrics.jsonl")
    (out / "first_run_steps.json").write_text(json.dumps([r["step"] for r in first]))
    train(
        "sft",
        "--config",
        config,
        "--output-dir",
        str(out),
        "--resume",
        "--set",
        "training.epochs=4",
    )
    return out


def test_sft_writes_adapter_metrics_and_run_json(sft_run: Path) -> None:
    adapter = sft_run / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer_config.json").is_file()  # the chat template travels with it
    assert not (adapter / "training_args.bin").exists()  # no pickle next to the weights
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    assert set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    run = json.loads((sft_run / "run.json").read_text())
    assert run["recipe"] == "sft" and run["config"]["lora"]["r"] == 8
    assert run["versions"]["torch"] and run["versions"]["trl"] and run["versions"]["peft"]
    rows = metrics(sft_run / "metrics.jsonl")
    assert all("lr" in r for r in rows if "loss" in r)
    assert [s for s, _ in losses(rows, "eval_loss")] == [2, 4, 6, 8]  # every epoch


def test_sft_training_loss_falls(sft_run: Path) -> None:
    rows = metrics(sft_run / "metrics.jsonl")
    train_losses = [v for _, v in losses(rows)]
    evals = [v for _, v in losses(rows, "eval_loss")]
    assert train_losses[-1] < train_losses[0]
    assert evals[-1] < evals[0]
    result = json.loads((sft_run / "result.json").read_text())
    assert result["best_eval_loss"] == pytest.approx(min(evals), rel=1e-6)


def test_sft_resume_continues_step_count(sft_run: Path) -> None:
    first_steps = json.loads((sft_run / "first_run_steps.json").read_text())
    steps = [s for s, _ in losses(metrics(sft_run / "metrics.jsonl"))]
    assert max(first_steps) == 4
    assert steps == sorted(steps) and steps[-1] == 8
    assert [s for s in steps if s > 4] == [5, 6, 7, 8]  # continued, not restarted at 1
    assert json.loads((sft_run / "result.json").read_text())["global_step"] == 8
    assert json.loads((sft_run / "run.json").read_text())["previous"]["recipe"] == "sft"


def test_sft_refuses_to_overwrite_a_started_run(sft_run: Path) -> None:
    result = train(
        "sft", "--config", str(TINY / "sft.yaml"), "--output-dir", str(sft_run), ok=False
    )
    assert result.exit_code == 2
    assert "pass --resume to continue" in flat(result.output)


def test_sft_adapter_loads_into_the_generator_and_changes_its_output(sft_run: Path) -> None:
    from polisum.generate import GenerationConfig, load_generator

    adapter = sft_run / "adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    conversation = [
        {"role": "system", "content": "도서관은 평일 오전 9시부터 오후 6시까지 운영한다."},
        {"role": "user", "content": "도서관 운영 시간은?"},
    ]
    config = GenerationConfig(max_new_tokens=8)
    plain = load_generator(f"hf:{base}").generate([conversation], config)[0]
    tuned_gen = load_generator(f"hf:{base}", adapter=str(adapter))
    tuned = tuned_gen.generate([conversation], config)[0]
    assert "adapter" in tuned_gen.name
    assert (tuned.text, tuned.completion_tokens) != (plain.text, plain.completion_tokens)


def test_merge_gives_the_adapted_model(sft_run: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = sft_run / "adapter"
    out = tmp_path / "merged"
    train("merge", "--adapter", str(adapter), "--out", str(out), "--dtype", "float32")
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("[|user|]청년 월세 지원\n[|assistant|]", return_tensors="pt")["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        merged_logits = merged(ids).logits
        assert torch.allclose(merged_logits, peft(ids).logits, atol=1e-4)
        assert not torch.allclose(merged_logits, plain(ids).logits, atol=1e-4)


def test_chat_encoding_trains_on_assistant_tokens_only(tiny_models: Path) -> None:
    from training.chat import accepts_system, encode_chat, row_to_messages
    from training.hf import ModelSection, load_tokenizer

    row = {
        "context": "CONTEXT",
        "messages": [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ],
    }
    messages = row_to_messages(row, "row")
    assert messages[0] == {"role": "system", "content": "CONTEXT"}
    for name, end in (("tiny:exaone4", "[|endofturn|]"), ("tiny:gemma2-teacher", "<end_of_turn>")):
        tok = load_tokenizer(ModelSection(name_or_path=name))
        fold = not accepts_system(tok)
        assert fold == (name == "tiny:gemma2-teacher")  # Gemma's template rejects system turns
        enc = encode_chat(tok, messages, fold_system=fold)
        assert enc is not None and len(enc.input_ids) == len(enc.assistant_masks)
        trained = tok.decode(
            [t for t, m in zip(enc.input_ids, enc.assistant_masks, strict=False) if m]
        )
        assert trained.replace("\n", "") == f"A1{end}A2{end}"
        everything = tok.decode(enc.input_ids)
        assert "CONTEXT" in everything and "Q2" in everything
        # The prompt part is exactly what inference renders before generating.
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": "CONTEXT\n\nQ1"}] if fold else messages[:2],
            tokenize=False,
            add_generation_prompt=True,
        )
        first = enc.assistant_masks.index(1)
        assert tok.decode(enc.input_ids[:first]) == prompt


def test_bad_chat_rows_are_named(tmp_path: Path) -> None:
    from training.chat import load_chat_file
    from training.common import RecipeError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(RecipeError, match=r"bad\.jsonl:1: no assistant turn"):
        load_chat_file(bad)
    bad.write_text('{"prompt": "hi"}\n')
    with pytest.raises(RecipeError, match=r"bad\.jsonl:1: expected 'messages'"):
        load_chat_file(bad)


def test_unknown_config_keys_fail_loudly(tmp_path: Path) -> None:
    from training.common import RecipeError
    from training.config import load_config
    from training.sft import SFTConfig

    cfg, _ = load_config(SFTConfig, "tiny/sft", ["training.lr=1e-3"])
    assert cfg.training.lr == 1e-3 and cfg.data.train.endswith("sft_train.jsonl")
    real, _ = load_config(SFTConfig, "exaone_1.2b_lora")
    assert (real.lora.r, real.lora.alpha, real.lora.dropout) == (8, 16, 0.05)
    assert (real.training.per_device_batch_size, real.training.gradient_accumulation_steps) == (
        4,
        6,
    )
    assert (real.training.epochs, real.training.lr, real.training.weight_decay) == (5, 2e-4, 0.01)
    with pytest.raises(RecipeError, match="unknown key"):
        load_config(SFTConfig, "tiny/sft", ["training.learning_rate=1e-3"])


def test_python_m_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training.sft", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--output-dir" in done.stdout


# ---------------------------------------------------------------------------------------------
# kd


@pytest.fixture(scope="module")
def kd_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kd")
    train("kd", "--config", str(TINY / "kd.yaml"), "--output-dir", str(out))
    return out


def test_kd_runs_all_three_stages(kd_run: Path) -> None:
    assert (kd_run / "teacher" / "adapter" / "adapter_config.json").is_file()
    index = json.loads((kd_run / "logits" / "index.json").read_text())
    assert index["complete"] and index["k"] == 16
    assert len(index["splits"]["train"]["shards"]) > 1  # shard_tokens is small on purpose
    student = kd_run / "student" / "adapter"
    assert json.loads((student / "adapter_config.json").read_text())["base_model_name_or_path"]
    rows = metrics(kd_run / "metrics.jsonl")
    assert {r["stage"] for r in rows} == {"teacher", "student"}
    student_rows = [r for r in rows if r["stage"] == "student"]
    assert all("ce_loss" in r and "kd_loss" in r for r in student_rows if "loss" in r)
    evals = [v for _, v in losses(student_rows, "eval_loss")]
    assert len(evals) == 3 and evals[-1] < evals[0]
    assert json.loads((kd_run / "run.json").read_text())["recipe"] == "kd"


def test_kd_logit_shards_round_trip_exactly(kd_run: Path, tmp_path: Path) -> None:
    from training.logits import read_shard, read_split, write_shard

    sequences = read_split(kd_run / "logits", "train")
    assert len(sequences) == 6
    copy = tmp_path / "copy.safetensors"
    write_shard(copy, sequences, {"k": "16"})
    again = read_shard(copy)
    for a, b in zip(sequences, again, strict=True):
        for name in ("input_ids", "labels", "topk_ids", "topk_logits"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and torch.equal(x, y), name
        assert a.topk_ids.shape == (int((a.labels != -100).sum()), 16)
    with open(copy, "rb") as fh:
        assert b"pickle" not in fh.read(4096)


def _teacher(kd_run: Path):
    from training.hf import ModelSection, load_causal_lm

    model = load_causal_lm(
        ModelSection(name_or_path="tiny:gemma2-teacher", dtype="float32"),
        adapter=str(kd_run / "teacher" / "adapter"),
        merge=True,
    )
    assert model.config._attn_implementation == "eager"  # Gemma-2 soft-capping
    return model.eval()


def test_kd_dump_holds_the_teachers_top_k(kd_run: Path) -> None:
    from training.logits import read_split

    teacher = _teacher(kd_run)
    seq = read_split(kd_run / "logits", "validation")[0]
    with torch.no_grad():
        logits = teacher(seq.input_ids.long()[None]).logits[0]
    positions = (seq.labels != -100).nonzero().squeeze(-1) - 1
    values, ids = logits[positions].topk(16, dim=-1)
    assert torch.equal(ids.to(torch.int32), seq.topk_ids)
    assert torch.allclose(values, seq.topk_logits, atol=1e-5)


def test_kd_loss_is_zero_when_student_is_teacher(kd_run: Path) -> None:
    from training.distill import collate, distillation_losses
    from training.hf import ModelSection, load_causal_lm
    from training.logits import read_split

    batch = collate(read_split(kd_run / "logits", "train")[:3], pad_token_id=0)
    teacher = _teacher(kd_run)
    student = load_causal_lm(ModelSection(name_or_path="tiny:gemma2-student", dtype="float32"))
    with torch.no_grad():
        for divergence in ("forward", "reverse", "jsd"):
            same = distillation_losses(teacher, batch, 0.5, 2.0, divergence)
            other = distillation_losses(student.eval(), batch, 0.5, 2.0, divergence)
            assert float(same["kd"]) < 1e-6, divergence
            assert float(other["kd"]) > 1e3 * max(float(same["kd"]), 1e-9), divergence
            assert float(same["loss"]) == pytest.approx(0.5 * float(same["ce"]), abs=1e-5)


def test_topk_divergences() -> None:
    from training.distill import topk_divergence

    torch.manual_seed(0)
    p, q = torch.randn(5, 8), torch.randn(5, 8)
    for kind in ("forward", "reverse", "jsd"):
        assert torch.allclose(topk_divergence(p, p, 2.0, kind), torch.zeros(5), atol=1e-6)
        assert (topk_divergence(q, p, 2.0, kind) > 0).all()
    assert torch.allclose(
        topk_divergence(q, p, 1.0, "forward"), topk_divergence(p, q, 1.0, "reverse")
    )
    assert torch.allclose(topk_divergence(q, p, 1.0, "jsd"), topk_divergence(p, q, 1.0, "jsd"))
    assert (topk_divergence(q, p, 1.0, "jsd") <= torch.log(torch.tensor(2.0)) + 1e-6).all()


def test_kd_refuses_a_student_with_another_tokenizer(kd_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "kd"
    shutil.copytree(kd_run / "logits", out / "logits")
    result = train(
        "kd",
        "--config",
        str(TINY / "kd.yaml"),
        "--output-dir",
        str(out),
        "--stage",
        "student",
        "--set",
        "student.model.name_or_path=tiny:exaone4",
        ok=False,
    )
    assert result.exit_code == 2 and "do not share a tokenizer" in flat(result.output)


# ---------------------------------------------------------------------------------------------
# sd35


@pytest.fixture(scope="module")
def sd35_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sd35")
    train("sd35", "--config", str(TINY / "sd35.yaml"), "--output-dir", str(out))
    return out


def test_sd35_writes_lora_validation_images_and_logs(sd35_run: Path) -> None:
    assert (sd35_run / "adapter" / "pytorch_lora_weights.safetensors").is_file()
    info = json.loads((sd35_run / "adapter" / "adapter_info.json").read_text())
    assert info["base_model"] == "tiny:sd3" and info["steps"] == 8
    assert (sd35_run / "validation" / "step-000008" / "prompt00-seed0.png").is_file()
    rows = metrics(sd35_run / "metrics.jsonl")
    assert [s for s, _ in losses(rows)] == list(range(1, 9))
    assert all("lr" in r for r in rows if "loss" in r)
    evals = losses(rows, "eval_loss")
    assert [s for s, _ in evals] == [0, 8]
    assert evals[-1][1] < evals[0][1]  # fixed noise and timesteps: only the weights moved
    assert json.loads((sd35_run / "run.json").read_text())["config"]["lora"]["rank"] == 4
    names = {p.name for p in (sd35_run / "checkpoints").iterdir()}
    assert names == {"checkpoint-4", "checkpoint-8"}
    assert not list((sd35_run / "checkpoints").rglob("*.pt*"))  # safetensors + JSON only


def test_sd35_resume_continues_where_it_stopped(sd35_run: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(sd35_run / "checkpoints" / "checkpoint-4", out / "checkpoints" / "checkpoint-4")
    train(
        "sd35",
        "--config",
        str(TINY / "sd35.yaml"),
        "--output-dir",
        str(out),
        "--resume",
        "--set",
        "validation.prompts=[]",
    )
    assert [s for s, _ in losses(metrics(out / "metrics.jsonl"))] == [5, 6, 7, 8]
    resumed = load_file(str(out / "adapter" / "pytorch_lora_weights.safetensors"))
    straight = load_file(str(sd35_run / "adapter" / "pytorch_lora_weights.safetensors"))
    assert resumed.keys() == straight.keys()
    # Same data order, noise and optimizer state: the resumed run ends where the straight one did.
    for key in straight:
        assert torch.allclose(resumed[key], straight[key], atol=1e-5), key


def test_sd35_lora_loads_into_the_pipeline_changes_images_and_merges(
    sd35_run: Path, tiny_models: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_models / "sd3")
    pipe.set_progress_bar_config(disable=True)

    def render() -> torch.Tensor:
        return pipe(
            "a red square on a white background",
            num_inference_steps=2,
            height=32,
            width=32,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    before = render()
    pipe.load_lora_weights(str(sd35_run / "adapter"))
    after = render()
    assert not torch.allclose(before, after, atol=1e-4)
    # Merged into a full pipeline folder, the LoRA renders the same image.
    merged = tmp_path / "merged"
    train("merge", "--adapter", str(sd35_run / "adapter"), "--out", str(merged))
    pipe = StableDiffusion3Pipeline.from_pretrained(merged)
    pipe.set_progress_bar_config(disable=True)
    assert torch.allclose(render(), after, atol=1e-4)


def test_sd35_lora_loads_into_the_image_renderer(sd35_run: Path, tiny_models: Path) -> None:
    imagegen = pytest.importorskip("imagegen")
    import numpy as np

    renderer = imagegen.Renderer(tiny_models / "sd3", device="cpu")
    options = {"steps": 2, "width": 64, "height": 64, "seed": 3}
    before = np.asarray(renderer.render("a blue circle", **options)[0], dtype=np.int16)
    renderer.load_lora(sd35_run / "adapter")
    after = np.asarray(renderer.render("a blue circle", **options)[0], dtype=np.int16)
    assert np.abs(after - before).max() > 0


def test_sd35_bad_data_is_named(tmp_path: Path) -> None:
    from training.common import RecipeError
    from training.diffusion.data import load_image_captions

    (tmp_path / "a.png").write_bytes((TINY / "data" / "images" / "red-square.png").read_bytes())
    with pytest.raises(RecipeError, match=r"a\.png: no caption file a\.txt"):
        load_image_captions(str(tmp_path))
    assert load_image_captions(str(tmp_path), default_caption="x")[0].caption == "x"
    rows = tmp_path / "data.jsonl"
    rows.write_text('{"image": "missing.png", "caption": "c"}\n')
    with pytest.raises(RecipeError, match=r"data\.jsonl:1: image .*missing\.png not found"):
        load_image_captions(str(rows))


# ---------------------------------------------------------------------------------------------
# training.max_steps, through the Python entry points a benchmark drives


def test_max_steps_stops_each_recipe_after_that_many_optimizer_steps(tmp_path: Path) -> None:
    from training import kd, sd35, sft

    adapter = sft.run(TINY / "sft.yaml", tmp_path / "sft", ["training.max_steps=2"])
    assert adapter == tmp_path / "sft" / "adapter" and (adapter / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "sft" / "result.json").read_text())["global_step"] == 2
    assert max(s for s, _ in losses(metrics(tmp_path / "sft" / "metrics.jsonl"))) == 2

    kd.run(
        TINY / "kd.yaml",
        tmp_path / "kd",
        ["teacher.training.max_steps=1", "student.training.max_steps=2"],
    )
    rows = metrics(tmp_path / "kd" / "metrics.jsonl")
    for stage, steps in (("teacher", 1), ("student", 2)):
        assert max(r["step"] for r in rows if r["stage"] == stage) == steps

    out = sd35.run(
        TINY / "sd35.yaml", tmp_path / "sd35", ["training.max_steps=3", "validation.prompts=[]"]
    )
    assert json.loads((out / "adapter_info.json").read_text())["steps"] == 3
    assert [s for s, _ in losses(metrics(tmp_path / "sd35" / "metrics.jsonl"))] == [1, 2, 3]
