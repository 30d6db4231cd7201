"""How a rendered image was made, written into and read back from PNG text chunks.

Each field is its own text chunk (``prompt``, ``seed``, ...) so any PNG viewer shows it; Pillow
writes non-Latin-1 text (Korean prompts) as UTF-8 iTXt chunks automatically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from imagegen.errors import ImageGenError

SOFTWARE = "polisum imagegen"


@dataclass(frozen=True)
class ImageRecord:
    prompt: str
    seed: int
    model: str
    negative_prompt: str | None = None
    lora: str | None = None
    lora_scale: float | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    t5: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def png_info(self) -> Any:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Software", SOFTWARE)
        for key, value in self.to_dict().items():
            if value is not None:  # absent chunk = None, so "" stays distinguishable
                info.add_text(key, str(value))
        return info

    @classmethod
    def from_text(cls, text: dict[str, str], source: str = "<png>") -> ImageRecord:
        """Parse the text chunks of a PNG written by :meth:`png_info`."""
        if "prompt" not in text or "seed" not in text or "model" not in text:
            raise ImageGenError(f"{source}: no polisum metadata (prompt/seed/model chunks)")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = text.get(f.name)
            if raw is None:
                continue
            try:
                if f.name in ("seed", "steps", "width", "height"):
                    values[f.name] = int(raw)
                elif f.name in ("lora_scale", "guidance"):
                    values[f.name] = float(raw)
                elif f.name == "t5":
                    values[f.name] = raw == "True"
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ImageGenError(f"{source}: bad '{f.name}' metadata {raw!r}") from exc
        return cls(**values)


def read_record(path: str | Path) -> ImageRecord:
    """The :class:`ImageRecord` stored in a PNG written by ``Renderer.save``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
    except OSError as exc:
        raise ImageGenError(f"{path}: cannot read image ({exc})") from exc
    return ImageRecord.from_text(text, source=str(path))
