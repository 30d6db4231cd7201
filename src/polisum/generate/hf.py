"""transformers backend: a causal LM from the hub or a local folder, optionally with a PEFT adapter.

Batched greedy generation with left padding (decoder-only models continue from the right end of
each row, so padding must sit on the left), the tokenizer's chat template, and streaming through
``TextIteratorStreamer``. A merged checkpoint is just a model folder; an adapter-only folder
(``adapter_config.json``) passed as the model loads its base model and the adapter on top.

Message contents are untrusted: the tokenizer's special and added tokens in them are neutralised
before templating (polisum.generate.special_tokens), and every prompt is checked after
tokenization: it may hold no more control-token ids than the template itself puts there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polisum.generate import GenerationConfig, GenerationResult, GeneratorError, Message
from polisum.generate._fingerprint import fingerprint
from polisum.generate.special_tokens import neutralize_messages, template_markers, usable_tokens

# Model types whose attention needs eager attention for correct results: Gemma-2's logit
# soft-capping is not implemented by the SDPA kernel.
_EAGER_MODEL_TYPES = {"gemma2"}


class HFGenerator:
    """``hf:MODEL_ID_OR_PATH`` with optional ``adapter=PATH`` (a PEFT LoRA folder)."""

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        merge_adapter: bool = False,
    ) -> None:
        try:
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise GeneratorError(
                "the hf: generator needs transformers and torch: pip install 'polisum[llm]'"
            ) from exc
        self.model_id = model
        self.batch_size = max(1, batch_size)
        base = model
        local = Path(model)
        if adapter is None and (local / "adapter_config.json").is_file():
            # An adapter folder given as the model: load its base, then the adapter.
            adapter = model
            base = _adapter_base(local)
        self.adapter = adapter
        try:
            config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code)
            self.tokenizer = AutoTokenizer.from_pretrained(
                adapter if adapter and _has_tokenizer(Path(adapter)) else base,
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise GeneratorError(f"cannot load model '{base}': {exc}") from exc
        attn = attn_implementation or (
            "eager" if getattr(config, "model_type", "") in _EAGER_MODEL_TYPES else None
        )
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        torch_dtype: Any = dtype
        if dtype == "auto":
            # bf16 where the GPU supports it; float32 on CPU (bf16 matmuls are slow there).
            if self.device.type == "cuda":
                torch_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                torch_dtype = torch.float32
        elif isinstance(dtype, str):
            torch_dtype = getattr(torch, dtype)
        try:
            kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
            if attn:
                kwargs["attn_implementation"] = attn
            self.model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
        except (OSError, ValueError) as exc:
            raise GeneratorError(f"cannot load model '{base}': {exc}") from exc
        if adapter:
            try:
                from peft import PeftModel
            except ImportError as exc:  # pragma: no cover
                raise GeneratorError("loading an adapter needs peft: pip install peft") from exc
            try:
                self.model = PeftModel.from_pretrained(self.model, adapter)
            except (OSError, ValueError) as exc:
                raise GeneratorError(f"cannot load adapter '{adapter}': {exc}") from exc
            if merge_adapter:
                self.model = self.model.merge_and_unload()
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            raise GeneratorError(f"model '{base}': its tokenizer has no chat template")
        self._fold_system = not _accepts_system(self.tokenizer)
        self.special_tokens, self._control_ids = _control_tokens(self.tokenizer)
        self._config = config
        self.name = f"hf:{fingerprint(base)}" + (
            f"+adapter:{fingerprint(adapter)}" if adapter else ""
        )

    # -- Generator ----------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(self._config, attr, None) or getattr(
                getattr(self._config, "text_config", None), attr, None
            )
            if value:
                return int(value)
        return int(min(self.tokenizer.model_max_length, 1 << 20))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, conversation: list[Message]) -> str:
        """The conversation rendered with the chat template, ready for the assistant's turn;
        special tokens inside message contents are neutralised."""
        return self._render(neutralize_messages(conversation, self.special_tokens))

    def checked_prompt(self, conversation: list[Message]) -> str:
        """:meth:`prompt`, verified on token ids: it holds no more control tokens than the
        template alone (contents replaced by "x") puts there, so no content can have produced
        one. Raises GeneratorError otherwise (a tokenizer that normalises a look-alike back)."""
        prompt = self.prompt(conversation)
        bare = self._render([{"role": m["role"], "content": "x"} for m in conversation])
        found, expected = self._count_control(prompt), self._count_control(bare)
        if found > expected:
            raise GeneratorError(
                f"{self.name}: the prompt holds {found - expected} control token(s) that came "
                "from message contents; refusing to generate from it"
            )
        return prompt

    def generate(
        self, conversations: list[list[Message]], config: GenerationConfig | None = None
    ) -> list[GenerationResult]:
        import torch

        config = config or GenerationConfig()
        prompts = [self.checked_prompt(c) for c in conversations]
        # Similar lengths batch together: less padding, less wasted compute.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[GenerationResult | None] = [None] * len(prompts)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        eos_ids = self._eos_ids
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            # The template already holds the BOS token: don't add another.
            enc = self.tokenizer(
                [prompts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            with torch.inference_mode():
                out = self.model.generate(**enc, **self._generate_kwargs(config))
            width = enc["input_ids"].shape[1]
            prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
            for row, i in enumerate(idx):
                new = out[row, width:]
                # A finished row is eos then padding; pad often *is* eos, so cut at the first.
                ids = _until_eos(new.tolist(), eos_ids)
                hit_eos = len(ids) < new.shape[0]
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                text, stopped = _apply_stop(text, config.stop)
                results[i] = GenerationResult(
                    text=text.strip(),
                    prompt_tokens=int(prompt_lengths[row]),
                    completion_tokens=len(ids),
                    finish_reason="stop" if hit_eos or stopped else "length",
                )
        return [r for r in results if r is not None]

    def stream(
        self, conversation: list[Message], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        config = config or GenerationConfig()
        enc = self.tokenizer(
            [self.checked_prompt(conversation)], return_tensors="pt", add_special_tokens=False
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**enc, **self._generate_kwargs(config), streamer=streamer)
            except BaseException as exc:  # surfaced in the consumer's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        emitted = ""
        for piece in streamer:
            if config.stop:
                emitted += piece
                cut, stopped = _apply_stop(emitted, config.stop)
                if stopped:
                    tail = cut[len(emitted) - len(piece) :]
                    if tail:
                        yield tail
                    break
            if piece:
                yield piece
        thread.join()
        if failure:
            raise GeneratorError(f"{self.name}: generation failed: {failure[0]}") from failure[0]

    # -- helpers ------------------------------------------------------------------------------
    def _render(self, conversation: list[Message]) -> str:
        messages = fold_system(conversation) if self._fold_system else list(conversation)
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _count_control(self, prompt: str) -> int:
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return sum(1 for i in ids if i in self._control_ids)

    @property
    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        return ids

    def _generate_kwargs(self, config: GenerationConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self._eos_ids) or None,
        }
        if config.temperature > 0:
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            # Greedy; unset sampling knobs a checkpoint's generation_config may carry.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


def fold_system(conversation: list[Message]) -> list[Message]:
    """Merge system messages into the first user turn, for templates (Gemma's) that raise on a
    system role."""
    system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
    rest = [dict(m) for m in conversation if m["role"] != "system"]
    if not system:
        return rest  # type: ignore[return-value]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest  # type: ignore[return-value]
    return [{"role": "user", "content": system}, *rest]  # type: ignore[list-item]


def _control_tokens(tokenizer: Any) -> tuple[frozenset[str], frozenset[int]]:
    """The strings to neutralise in contents (special tokens, markup-like added tokens, the chat
    template's markers) and the ids of the special and added tokens among them."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special = [*tokenizer.all_special_tokens, *(t.content for t in added.values() if t.special)]
    others = [t.content for t in added.values() if not t.special]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    tokens = usable_tokens(special, others) | template_markers(template)
    ids = {i for i, t in added.items() if t.content in tokens} | set(tokenizer.all_special_ids)
    ids.discard(tokenizer.unk_token_id)  # what unknown text becomes, not a control token
    return tokens, frozenset(ids)


def _accepts_system(tokenizer: Any) -> bool:
    marker = "polisum-system-probe"
    probe = [{"role": "system", "content": marker}, {"role": "user", "content": "U"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja raise_exception("System role not supported")
        return False
    return marker in rendered  # some templates drop a system turn silently


def _adapter_base(folder: Path) -> str:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"{folder}/adapter_config.json: unreadable: {exc}") from exc
    base = config.get("base_model_name_or_path")
    if not base:
        raise GeneratorError(
            f"{folder}/adapter_config.json names no base model (base_model_name_or_path)"
        )
    return str(base)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()


def _until_eos(ids: list[int], eos: set[int]) -> list[int]:
    for pos, t in enumerate(ids):
        if t in eos:
            return ids[:pos]
    return ids


def _apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
