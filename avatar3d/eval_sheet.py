"""The evaluation as a picture (`chibi eval --sheet OUT.png`): what the errors look like.

Two sections, one row a face, every head rendered from the same frontal studio view
(`STUDIO_VIEW`, `synth_render.render_view`, expressions posed):
- held-out synthetic faces (`evaluate.heldout_spec`) picked at even steps of the CNN's
  mean slider error, from the best to the worst: the aligned crop the CNN read, the
  avatar of the true params, the avatar of the CNN's;
- the sample photos (`evaluate_real.real_photos`): the aligned crop, the avatar the photo
  path gives (fused: what a user gets), the avatar of the CNN alone.
Each row's caption gives the face's errors (held out) or its fusion sources (photos).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .param_arrays import COLOR_NAMES, decode_params
from .params import AvatarParams
from .synth_render import View, render_view, to_uint8

SHEET_BACKGROUND = (0.93, 0.93, 0.95)  # behind the heads, sRGB 0..1
# frontal, the whole head in frame, a soft key light from the upper left
STUDIO_VIEW = View(
    yaw=0.0, pitch=0.0, roll=0.0, yfov=0.45, fill=0.42, shift=(0.0, 0.0),
    key_dir=np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0]),
    key_intensity=2.6, key_color=np.ones(3), fill_intensity=0.8, ambient=0.35,
)  # fmt: skip
CAPTION_PX = 34  # height of a row's caption band
HEADER_PX = 30


@dataclass
class SheetRow:
    """One face: `images` (each (S, S, 3) uint8) left to right, and its caption lines."""

    images: list[np.ndarray]
    caption: list[str]


def head_picture(params: AvatarParams, size: int = 256) -> np.ndarray:
    """(size, size, 3) uint8: the avatar of `params`, head and expression, from STUDIO_VIEW."""
    from .build import build_avatar

    rgb, alpha, _ = render_view(build_avatar(params), params, STUDIO_VIEW, size)
    return to_uint8(rgb * alpha[..., None] + np.array(SHEET_BACKGROUND) * (1.0 - alpha[..., None]))


def heldout_params(
    arrays: dict[str, np.ndarray], i: int, sliders: np.ndarray | None = None
) -> AvatarParams:
    """Face i of a synthetic set's arrays as AvatarParams; `sliders` (23,) in place of
    its own if given (its colours, hair style and glasses kept)."""
    return decode_params(
        arrays["sliders"][i] if sliders is None else sliders,
        arrays["colors"][i], arrays["hair_style"][i], arrays["glasses"][i],
    )  # fmt: skip


def _enlarged(crop: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))


def spread_picks(errors: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` faces at even steps through `errors` sorted, best to worst."""
    order = np.argsort(errors, kind="stable")
    return order[np.unique(np.round(np.linspace(0, len(order) - 1, count)).astype(int))]


def heldout_rows(
    forward: Any, arrays: dict[str, np.ndarray], count: int, size: int = 256
) -> list[SheetRow]:
    """`count` held-out faces from best to worst CNN slider error (see the module doc)."""
    from .evaluate import delta_e
    from .fusion import DEFAULT_SLIDERS
    from .training import predict_arrays

    pred = predict_arrays(forward, arrays["crops"])
    truth = arrays["sliders"]
    errors = np.abs(pred.sliders - truth).mean(axis=1)
    default_errors = np.abs(DEFAULT_SLIDERS - truth).mean(axis=1)
    colour_errors = delta_e(pred.colors, arrays["colors"])  # (N, 5)
    rows = []
    for rank, i in enumerate(spread_picks(errors, count)):
        true_params = heldout_params(arrays, i)
        cnn_params = decode_params(
            pred.sliders[i], pred.colors[i], pred.hair_style[i], pred.glasses[i]
        )
        colours = ", ".join(
            f"{name.removesuffix('_color')} {colour_errors[i, k]:.1f}"
            for k, name in enumerate(COLOR_NAMES)
        )
        rows.append(
            SheetRow(
                [_enlarged(arrays["crops"][i], size)]
                + [head_picture(params, size) for params in (true_params, cnn_params)],
                [
                    f"held-out face {i} ({rank + 1} of {count}, best first): slider error "
                    f"{errors[i]:.3f} (the default's {default_errors[i]:.3f})",
                    f"dE2000 {colours}",
                ],
            )
        )
    return rows


def photo_rows(pipeline: Any, photos: list[tuple[str, bytes]], size: int = 256) -> list[SheetRow]:
    """The largest face of each photo: crop, fused avatar, the CNN's alone (module doc)."""
    from .errors import ChibiError

    rows = []
    for name, data in photos:
        try:
            result = pipeline.analyze(data)[0]
        except ChibiError as exc:
            rows.append(SheetRow([], [f"{name}: {exc.code}"]))
            continue
        sources = result.sources(pipeline.fusion)
        sources.pop("glasses_frame", None)  # a part of the glasses, not a field of its own
        counts = Counter(sources.values()).most_common()
        rows.append(
            SheetRow(
                [_enlarged(result.observation.crop, size)]
                + [head_picture(p, size) for p in (result.params, result.prediction.to_params())],
                [
                    f"{name}: the fused avatar's fields by source: "
                    + ", ".join(f"{source} {count}" for source, count in counts),
                ],
            )
        )
    return rows


def sheet_image(sections: list[tuple[list[str], list[SheetRow]]], size: int = 256) -> np.ndarray:
    """(H, W, 3) uint8: each section's column titles, then its rows with their captions."""
    columns = max(len(titles) for titles, _ in sections)
    width = columns * size
    bands = []
    font = ImageFont.load_default(size=14)
    for titles, rows in sections:
        header = Image.new("RGB", (width, HEADER_PX), (40, 44, 52))
        draw = ImageDraw.Draw(header)
        for k, title in enumerate(titles):
            draw.text((k * size + 8, 7), title, fill=(255, 255, 255), font=font)
        bands.append(np.asarray(header))
        for row in rows:
            caption = Image.new("RGB", (width, CAPTION_PX), (255, 255, 255))
            draw = ImageDraw.Draw(caption)
            for line, text in enumerate(row.caption[:2]):
                draw.text((8, 2 + 15 * line), text, fill=(20, 20, 20), font=font)
            bands.append(np.asarray(caption))
            if row.images:
                strip = np.full((size, width, 3), 255, np.uint8)
                for k, image in enumerate(row.images):
                    strip[:, k * size : (k + 1) * size] = image
                bands.append(strip)
    return np.concatenate(bands, axis=0)


def evaluation_sheet(
    model_name: str = "default",
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    faces: int = 6,
    size: int = 256,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The picture (see the module doc) for the named weights, as (H, W, 3) uint8."""
    from .evaluate import heldout_spec
    from .evaluate_real import real_photos
    from .pipeline import PhotoPipeline
    from .synth import load_or_render

    pipeline = PhotoPipeline(model_name, weights_dir, device="cpu")
    arrays = load_or_render(heldout_spec(), cache_dir, workers, log)
    return sheet_image(
        [
            (
                ["held out: the CNN's input", "true params", "the CNN's params"],
                heldout_rows(pipeline.regressor.forward, arrays, faces, size),
            ),
            (
                ["photo: the CNN's input", "fused (what a user gets)", "the CNN alone"],
                photo_rows(pipeline, real_photos(), size),
            ),
        ],
        size,
    )
