"""``POST /v1/prompt`` (a validated SD3.5 prompt, written by the answer model) and
``POST /v1/images`` (PNGs from the configured image model). Both 503 with the reason when
their model is missing."""

from __future__ import annotations

import base64
import io

from fastapi import APIRouter

from polisum.chat.sdprompt import ModelRequiredError, SDPrompt, SDPromptWriter
from polisum.serve.deps import ReadCaller, ServeState, StateDep, check_k, check_text, over_limit
from polisum.serve.models import (
    ImageModel,
    ImagesRequest,
    ImagesResponse,
    PromptRequest,
    PromptResponse,
    PromptSource,
)
from polisum.serve.problems import ProblemError, problem_doc
from polisum.types import Hit

router = APIRouter(tags=["images"])
UNAVAILABLE = {503: problem_doc("no model configured, or all generation slots busy")}


def write_prompt(
    state: ServeState, description: str, from_docs: bool, k: int
) -> tuple[SDPrompt, list[Hit] | None]:
    try:
        writer = SDPromptWriter(state.generator)
    except ModelRequiredError as exc:
        raise ProblemError(
            503,
            f"{exc} (for the service: polisum serve --generator ...)",
        ) from None
    passages = state.index.search(description, k=k) if from_docs else None
    with state.slots.hold():
        return writer.write(description, passages), passages


@router.post("/prompt", response_model=PromptResponse, responses=UNAVAILABLE)
def prompt(body: PromptRequest, state: StateDep, who: ReadCaller) -> PromptResponse:
    """A Stable Diffusion 3.5 prompt (English prompt, negative prompt, aspect, style) for a
    scene described in any language, optionally grounded in retrieved passages."""
    check_text("description", body.description, state.limits)
    check_k(body.k, state.limits)
    result, passages = write_prompt(state, body.description, body.from_docs, body.k)
    sources = None
    if passages is not None:
        ids = state.source_ids.get()
        sources = [
            PromptSource(source=h.source, page=h.page, chunk_id=h.chunk_id,
                         document_id=ids.get(h.source))
            for h in passages
        ]  # fmt: skip
    return PromptResponse(**result.model_dump(), sources=sources)


@router.post("/images", response_model=ImagesResponse, responses=UNAVAILABLE)
def images(body: ImagesRequest, state: StateDep, who: ReadCaller) -> ImagesResponse:
    """Render PNGs with the configured SD3.5 model, from a prompt or a described scene."""
    limits = state.limits
    if (body.prompt is None) == (body.description is None):
        raise over_limit("prompt", "give either a prompt or a description", "conflict")
    for name in ("prompt", "description", "negative_prompt"):
        value = getattr(body, name)
        if value is not None:
            check_text(name, value, limits)
    if body.num_images > limits.max_images:
        raise over_limit("num_images", f"must be at most {limits.max_images}")
    if body.steps > limits.max_image_steps:
        raise over_limit("steps", f"must be at most {limits.max_image_steps}")
    for name in ("width", "height"):
        value = getattr(body, name)
        if value is not None and value > limits.max_image_side:
            raise over_limit(name, f"must be at most {limits.max_image_side}")
    reason = state.images.unavailable()
    if reason:
        raise ProblemError(503, reason)
    from imagegen import ImageGenError, size_for_aspect

    prompt_text, negative, aspect = body.prompt, body.negative_prompt, None
    if prompt_text is None:
        assert body.description is not None
        written, _ = write_prompt(state, body.description, False, 3)
        prompt_text, aspect = written.prompt, written.aspect_ratio
        negative = negative or written.negative_prompt
    width, height = body.width, body.height
    if width is None or height is None:
        side = limits.max_image_side // 64 * 64  # size_for_aspect gives multiples of 64
        w, h = size_for_aspect(aspect or "1:1", pixels=min(1024, side) ** 2)
        width, height = width or min(w, side), height or min(h, side)
    renderer = state.images.renderer()
    with state.slots.hold():
        try:
            pictures = renderer.render(
                prompt_text, negative, steps=body.steps, width=width, height=height,
                num_images=body.num_images, seed=body.seed,
            )  # fmt: skip
        except ImageGenError as exc:
            raise ProblemError(422, str(exc)) from None
    out = []
    for picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        out.append(
            ImageModel(
                seed=picture.info["polisum"].seed,
                png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"),
            )
        )
    return ImagesResponse(
        prompt=prompt_text, negative_prompt=negative, model=renderer.model, images=out
    )
