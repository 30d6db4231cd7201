"""Which generator a command uses: CLI flag > POLISUM_GENERATOR > polisum.toml > none.

With none configured, answers are extractive and nothing is downloaded; ``default`` names the
documented default model (EXAONE-4.0-1.2B), which transformers fetches from the hub on first use.
"""

from __future__ import annotations

from polisum.config import Config
from polisum.generate import Generator, GeneratorError, load_generator

DEFAULT_GENERATOR = "hf:LGAI-EXAONE/EXAONE-4.0-1.2B"


def generator_spec(config: Config, flag: str | None = None) -> str | None:
    spec = (flag or config.generator or "").strip()
    if not spec or spec == "none":
        return None
    return DEFAULT_GENERATOR if spec == "default" else spec


def configured_generator(
    config: Config,
    generator: str | None = None,
    adapter: str | None = None,
    base_url: str | None = None,
) -> Generator | None:
    """Load the configured generator, or None for the extractive answerer."""
    spec = generator_spec(config, generator)
    if spec is None:
        if adapter:
            raise GeneratorError(
                f"--adapter {adapter} needs a base model: pass --generator hf:MODEL_ID_OR_PATH"
            )
        return None
    try:
        return load_generator(
            spec, adapter=adapter or config.adapter, base_url=base_url or config.base_url
        )
    except ImportError as exc:  # a backend module or its library is not installed
        raise GeneratorError(f"generator '{spec}' is not available here: {exc}") from exc
