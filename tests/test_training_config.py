"""Recipe configs: YAML onto the recipes' dataclass schemas (training.config, OmegaConf).

Fast: nothing here loads a model. What a wrong config does to a run (exit code, message) is
checked through the same ``polisum train`` command a user types.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("omegaconf")

from training.common import RecipeError
from training.config import CONFIG_DIR, load_config
from training.kd import KDConfig
from training.sd35 import SD35Config
from training.sft import SFTConfig
from typer.testing import CliRunner

from polisum.cli import app

TINY = CONFIG_DIR / "tiny"


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_SFT = "model: {name_or_path: tiny:exaone4}\ndata: {train: train.jsonl}\n"


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        (SFTConfig, "exaone_1.2b_lora"),
        (SFTConfig, "gemma2_9b_teacher_lora"),
        (SFTConfig, "tiny/sft"),
        (KDConfig, "gemma2_2b_kd"),
        (KDConfig, "tiny/kd"),
        (SD35Config, "sd35_medium_lora"),
        (SD35Config, "tiny/sd35"),
    ],
)
def test_every_bundled_config_loads_into_its_schema(schema: type, name: str) -> None:
    config, plain = load_config(schema, name)
    assert isinstance(config, schema)
    assert plain["data"]["train"] == config.data.train
    assert "${" not in str(plain)  # run.json records resolved values


def test_a_value_of_the_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_SFT + "training: {per_device_batch_size: four}\n")
    with pytest.raises(RecipeError) as info:
        load_config(SFTConfig, path)
    message = str(info.value)
    assert str(path) in message and "training.per_device_batch_size" in message
    assert "four" in message
    path = write(tmp_path, MINIMAL_SFT + "training: {epochs: five}\n")
    with pytest.raises(RecipeError, match=r"config\.yaml: training\.epochs: .*'five'"):
        load_config(SFTConfig, path)
    path = write(tmp_path, MINIMAL_SFT + "training: {max_steps: 3.5}\n")
    with pytest.raises(RecipeError, match=r"training\.max_steps"):
        load_config(SFTConfig, path)
    path = write(tmp_path, MINIMAL_SFT + "lora: {target_modules: q_proj}\n")
    with pytest.raises(RecipeError, match=r"lora\.target_modules"):
        load_config(SFTConfig, path)


def test_strings_that_read_as_the_declared_type_are_converted(tmp_path: Path) -> None:
    text = MINIMAL_SFT + "training: {epochs: '5', max_steps: '3', lr: '2e-4', bf16: 'true'}\n"
    config, plain = load_config(SFTConfig, write(tmp_path, text))
    t = config.training
    assert (t.epochs, t.max_steps, t.lr, t.bf16) == (5.0, 3, 2e-4, True)
    assert isinstance(t.epochs, float) and isinstance(t.max_steps, int)
    assert plain["training"]["max_steps"] == 3


def test_unknown_keys_name_the_key_and_where_it_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_SFT + "training: {learning_rate: 1.0e-3}\n")
    with pytest.raises(RecipeError) as info:
        load_config(SFTConfig, path)
    message = str(info.value)
    assert str(path) in message and "unknown key 'training.learning_rate'" in message
    assert "lr" in message  # the keys that do exist there
    with pytest.raises(RecipeError, match="unknown key 'extra'"):
        load_config(SFTConfig, write(tmp_path, MINIMAL_SFT + "extra: 1\n"))
    with pytest.raises(
        RecipeError, match=r"override 'student\.lora\.rank=4': unknown key 'student\.lora\.rank'"
    ):
        load_config(KDConfig, "tiny/kd", ["student.lora.rank=4"])


def test_overrides_apply_in_order_with_yaml_values(tmp_path: Path) -> None:
    config, plain = load_config(
        SFTConfig,
        "tiny/sft",
        ["training.lr=1e-4", "training.lr=3e-4", "lora=null", "training.max_steps=3"],
    )
    assert config.training.lr == 3e-4 and config.lora is None
    assert config.training.max_steps == 3 and plain["training"]["max_steps"] == 3
    sd35, _ = load_config(
        SD35Config, "tiny/sd35", ["validation.prompts=[]", "training.adam_betas=[0.8, 0.9]"]
    )
    assert sd35.validation.prompts == [] and sd35.training.adam_betas == [0.8, 0.9]
    kd, _ = load_config(KDConfig, "tiny/kd", ["student.training.max_steps=2", "stages=[dump]"])
    assert kd.student.training.max_steps == 2 and kd.stages == ["dump"]
    assert kd.teacher.training.max_steps is None  # default: epochs decide
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_config(SFTConfig, "tiny/sft", ["training.lr"])
    with pytest.raises(RecipeError, match=r"override 'training\.epochs=five': training\.epochs"):
        load_config(SFTConfig, "tiny/sft", ["training.epochs=five"])


def test_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLISUM_TEST_DATA", "/data/sft")
    folder = tmp_path / "configs"
    folder.mkdir()
    path = write(
        folder,
        "model: {name_or_path: tiny:exaone4}\n"
        "data:\n"
        "  train: ${config_dir:}/train.jsonl\n"
        "  validation: ${oc.env:POLISUM_TEST_DATA}/validation.jsonl\n"
        "training: {lr: 1.0e-3, max_length: 512}\n",
    )
    config, plain = load_config(SFTConfig, path, ["training.max_steps=${training.max_length}"])
    assert config.data.train == f"{folder.resolve()}/train.jsonl"
    assert config.data.validation == "/data/sft/validation.jsonl"
    assert config.training.max_steps == 512 and isinstance(config.training.max_steps, int)
    assert plain["data"]["train"] == config.data.train  # resolved, not the ${...} text
    # The bundled tiny configs find their data next to them, wherever they are run from.
    tiny, _ = load_config(SFTConfig, "tiny/sft")
    assert Path(tiny.data.train) == TINY / "data" / "sft_train.jsonl"
    with pytest.raises(RecipeError, match=r"data\.train: Interpolation key 'nowhere\.x'"):
        load_config(SFTConfig, path, ["data.train=${nowhere.x}"])


def test_required_keys_and_value_checks(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"config\.yaml: data\.train: .*missing"):
        load_config(SFTConfig, write(tmp_path, "model: {name_or_path: tiny:exaone4}\n"))
    with pytest.raises(RecipeError, match=r"model\.name_or_path: .*missing"):
        load_config(SFTConfig, write(tmp_path, "data: {train: x.jsonl}\n"))
    # Values a type allows but a recipe cannot use fail at load, before any stage has run.
    with pytest.raises(RecipeError, match=r"student\.divergence: 'kl' is not one of forward"):
        load_config(KDConfig, "tiny/kd", ["student.divergence=kl"])
    with pytest.raises(RecipeError, match=r"student\.alpha: 2\.0 must lie in \[0, 1\]"):
        load_config(KDConfig, "tiny/kd", ["student.alpha=2"])
    with pytest.raises(RecipeError, match=r"stages: unknown distil"):
        load_config(KDConfig, "tiny/kd", ["stages=[teacher, distil]"])
    with pytest.raises(RecipeError, match=r"training\.batch_size: 0 must be at least 1"):
        load_config(SD35Config, "tiny/sd35", ["training.batch_size=0"])
    with pytest.raises(RecipeError, match=r"training\.max_steps: 0 must be at least 1"):
        load_config(SFTConfig, "tiny/sft", ["training.max_steps=0"])
    with pytest.raises(RecipeError, match=r"training\.eval_steps: .*needs eval_steps"):
        load_config(SFTConfig, "tiny/sft", ["training.eval_strategy=steps"])


def test_bad_yaml_and_missing_config(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_config(SFTConfig, write(tmp_path, "training: [\n"))
    with pytest.raises(RecipeError, match="expected a mapping at the top level"):
        load_config(SFTConfig, write(tmp_path, "- a\n- b\n"))
    with pytest.raises(RecipeError, match=r"no such file, nor a bundled config \(.*tiny/sft"):
        load_config(SFTConfig, tmp_path / "absent.yaml")


def test_the_command_reports_a_bad_config_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for bad, expected in (
        ("training.epochs=five", "training.epochs"),
        ("training.learning_rate=1", "unknown key 'training.learning_rate'"),
    ):
        result = CliRunner().invoke(
            app,
            ["train", "sft", "--config", "tiny/sft", "--output-dir", str(out), "--set", bad],
        )
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.output.split())
    assert not out.exists()  # refused before the run folder was made
