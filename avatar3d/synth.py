"""Synthetic training data: random AvatarParams -> built avatar -> photo-like face crop.

Each sample is exact: the crop's labels are the params it was built from. Renders
are made photo-like by `synth_render` (real-photo backgrounds and surface detail,
random pose and lights, camera noise, JPEG). The crop is aligned with the same
similarity fit and canonical points as a real photo (`landmarks.alignment_transform`),
from the avatar's own eye centres, nose tip and mouth corners projected into the
render, so every sample is aligned exactly (no detector failures bias the set).

The set is rendered once per (count, seed) and cached as .npz under
`.cache/synth/` (gitignored); `load_or_render` regenerates it when it is missing.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from skimage import color as skcolor

from .avatar import Avatar
from .fusion import teacher_glasses
from .param_arrays import ParamTargets, encode_params, teacher_targets
from .params import (
    EXPRESSION_SLIDERS,
    GLASSES,
    HAIR_STYLES,
    SHAPE_SLIDERS,
    AvatarParams,
    rgb_to_hex,
)
from .skin_tones import MONK_SKIN_TONES, SKIN_TO_LIPS
from .synth_render import RENDER_SIZE, View, background, camera_finish, render_view, surface_detail
from .training import TrainingSet

# Bump when rendering changes, so stale caches are not reused.
SYNTH_VERSION = 1

_NATURAL_HAIR = ("#0e0c0b", "#2a1d17", "#4a3226", "#6b4a32", "#8d6a48", "#b58b5a", "#d9b77e",
                 "#e8d3a6", "#8e3b1f", "#b5562a", "#9a9a9a", "#dcdcdc")  # fmt: skip
_FANTASY_HAIR = ("#f28cb1", "#6aa7e8", "#7ad1b1", "#b38ae0", "#f2f2f2", "#e84a4a")
_IRIS = ("#3b2418", "#5a3d2b", "#7a5636", "#8a7a4a", "#5e7a3a", "#4f7da8", "#7d9bb8", "#6e6e6e")


def _lab(hex_color: str) -> np.ndarray:
    return skcolor.rgb2lab(np.array([[list(_hex_rgb(hex_color))]]))[0, 0]


def _hex_rgb(hex_color: str) -> tuple[float, float, float]:
    return tuple(int(hex_color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


def _from_lab(lab: np.ndarray) -> str:
    with warnings.catch_warnings():  # out-of-gamut values are clipped below, on purpose
        warnings.simplefilter("ignore", UserWarning)
        rgb = skcolor.lab2rgb(np.asarray(lab, np.float64).reshape(1, 1, 3))[0, 0]
    return rgb_to_hex(np.clip(rgb, 0.0, 1.0))


def _jitter(hex_color: str, rng: np.random.Generator, dl: float, dab: float) -> str:
    lab = _lab(hex_color) + rng.normal(0.0, [dl, dab, dab])
    lab[0] = np.clip(lab[0], 3.0, 97.0)
    return _from_lab(lab)


def _monk_position(u: float) -> float:
    """u in 0..1 -> a position t in 0..9 along the Monk scale (t = swatch index).

    Half of the draws are uniform in t, half uniform in colour distance along the scale:
    its steps are uneven (dE76 2-8 between the four lightest swatches, 12-25 between the
    middle ones), and uniform in t alone left the middle tones with a tenth of the
    training faces per unit of colour the light end had, and the CNN's largest skin
    errors there (the fairness goal of `chibi eval`). One draw, so every later draw of
    an avatar stays what it was."""
    labs = np.array([_lab(tone) for tone in MONK_SKIN_TONES])
    steps = np.linalg.norm(np.diff(labs, axis=0), axis=1)
    knots = np.arange(len(MONK_SKIN_TONES), dtype=np.float64)
    share = 0.5 * knots / knots[-1] + 0.5 * np.concatenate([[0.0], np.cumsum(steps)]) / steps.sum()
    return float(np.interp(u, share, knots))


def sample_skin(rng: np.random.Generator, margin: float = 0.0) -> str:
    """A skin colour drawn along the Monk scale (interpolated in Lab, spread by
    `_monk_position`), jittered.

    margin: how far past both ends of the scale the draw reaches, in swatch steps
    (extrapolated along the end steps in Lab). A network reads its outermost training
    skins toward the middle, so a set drawn to the ends only leaves the darkest swatch
    read too light (`chibi eval`'s signed L* per swatch)."""
    last = len(MONK_SKIN_TONES) - 1
    t = _monk_position(rng.uniform(0.0, 1.0))
    if margin:  # 0 leaves every draw as it was before the option
        t = -margin + t * (last + 2 * margin) / last
    i = int(np.clip(np.floor(t), 0, last - 1))
    lab = (1 - (t - i)) * _lab(MONK_SKIN_TONES[i]) + (t - i) * _lab(MONK_SKIN_TONES[i + 1])
    lab += rng.normal(0.0, [2.5, 2.5, 3.5])
    # the light end of the scale is also drawn a little pinker, as chibi skins often are
    if rng.random() < 0.2:
        lab[1] += rng.uniform(2.0, 8.0)
    return _from_lab(lab)


def skin_pull(
    margin: float = 0.0, radius: float = 8.0, draws: int = 20000, seed: int = 0
) -> np.ndarray:
    """(10, 3) CIE Lab: for each Monk swatch, the mean of the skins `sample_skin` draws
    (with `margin`) within `radius` dE76 of it, minus the swatch.

    A regressor reads a colour toward the training colours it cannot tell from it. The
    CNN's mean skin error per swatch follows this offset at a radius of 8 (session 33:
    correlations of 0.92-0.95 over the 30 numbers, rms difference about 0.3 against an
    rms error of about 0.8, for three networks; 0.75 for one trained on skins jittered
    wider), so a recipe's skins can be checked before any training
    (`scripts/fairness_check.py` prints both)."""
    rng = np.random.default_rng(seed)
    hexes = [sample_skin(rng, margin) for _ in range(draws)]
    skins = skcolor.rgb2lab(np.array([[_hex_rgb(h) for h in hexes]]))[0]
    swatches = np.array([_lab(tone) for tone in MONK_SKIN_TONES])
    near = np.linalg.norm(skins[None] - swatches[:, None], axis=-1) < radius  # (10, draws)
    return (near @ skins) / near.sum(1, keepdims=True) - swatches


def sample_params(
    rng: np.random.Generator, skin_color: str | None = None, skin_margin: float = 0.0
) -> AvatarParams:
    """Random AvatarParams covering every slider's full range and plausible colours
    (`skin_margin`: `sample_skin`'s margin, where `skin_color` is not given)."""
    shape = {n: float(np.clip(rng.beta(1.3, 1.3), 0.0, 1.0)) for n in SHAPE_SLIDERS}
    expression = {n: 0.0 for n in EXPRESSION_SLIDERS}
    if rng.random() < 0.55:
        expression["smile"] = float(rng.uniform(0.0, 1.0))
    if rng.random() < 0.35:
        expression["mouth_open"] = float(rng.uniform(0.0, 1.0))
    if rng.random() < 0.3:
        expression["brow_raise"] = float(rng.uniform(0.0, 1.0))
    blink = rng.random()
    if blink < 0.15:  # both eyes together
        expression["blink_left"] = expression["blink_right"] = float(rng.uniform(0.0, 1.0))
    elif blink < 0.3:  # a wink or uneven closure
        expression["blink_left"] = float(rng.uniform(0.0, 1.0))
        expression["blink_right"] = float(rng.uniform(0.0, 1.0))
    expression = {k: round(v, 4) for k, v in expression.items()}
    skin = skin_color or sample_skin(rng, skin_margin)
    if rng.random() < 0.85:
        hair = _jitter(_NATURAL_HAIR[rng.integers(len(_NATURAL_HAIR))], rng, 4.0, 3.0)
    else:
        hair = _jitter(_FANTASY_HAIR[rng.integers(len(_FANTASY_HAIR))], rng, 5.0, 8.0)
    brow_lab = _lab(hair) * np.array([0.8, 1.0, 1.0]) + rng.normal(0.0, [4.0, 2.0, 2.0])
    skin_lab = _lab(skin)
    lip_lab = skin_lab + np.array(SKIN_TO_LIPS) + rng.normal(0.0, [6.0, 6.0, 4.0])
    return AvatarParams(
        shape={k: round(v, 4) for k, v in shape.items()},
        expression=expression,
        skin_color=skin,
        hair_color=hair,
        iris_color=_jitter(_IRIS[rng.integers(len(_IRIS))], rng, 5.0, 5.0),
        lip_color=_from_lab(lip_lab),
        brow_color=_from_lab(np.clip(brow_lab, [3.0, -60, -60], [90.0, 60, 60])),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        hair_length=round(float(rng.uniform(0.0, 1.0)), 4),
        glasses=GLASSES[0] if rng.random() < 0.6 else GLASSES[rng.integers(1, len(GLASSES))],
    )


# --------------------------------------------------------------------------- samples
def photo_and_points(
    avatar: Avatar, params: AvatarParams, rng: np.random.Generator, size: int = RENDER_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """One photo-like render (size, size, 3) uint8 and its 5 alignment points (5, 2) pixels
    (`landmarks.ALIGN_LANDMARKS`)."""
    rgb, alpha, points = render_view(avatar, params, View.random(rng), size)
    foreground = rgb * surface_detail(rng, size)[..., None]
    image = foreground * alpha[..., None] + background(rng, size) * (1.0 - alpha[..., None])
    return camera_finish(image, rng), points


def photo_and_crop(
    avatar: Avatar, params: AvatarParams, rng: np.random.Generator, size: int = RENDER_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """One photo-like render (size, size, 3) uint8 and its aligned crop (128, 128, 3) uint8."""
    from .landmarks import CROP_SIZE, crop_transform, warp_image

    photo, points = photo_and_points(avatar, params, rng, size)
    return photo, warp_image(photo, crop_transform(points), CROP_SIZE)


@dataclass(frozen=True)
class SetSpec:
    """What to render: `avatars` random avatars x `views` renders each, from `seed`.

    skin_tones: when set, avatar i gets skin_tones[i % len] exactly (the fairness set).
    teacher: also run FaceMesh + the teacher on every render (for evaluation).
    skin_margin: the random skins reach this many swatch steps past both ends of the
    Monk scale (`sample_skin`).
    """

    kind: str
    avatars: int
    views: int = 1
    seed: int = 0
    skin_tones: tuple[str, ...] = ()
    teacher: bool = False
    skin_margin: float = 0.0

    @property
    def count(self) -> int:
        return self.avatars * self.views

    def cache_name(self) -> str:
        """File name: the spec plus a digest of the code that makes the pictures, so a
        changed builder, painter or renderer never reuses stale renders (`source_digest`)."""
        tones = f"-t{len(self.skin_tones)}" if self.skin_tones else ""
        tones += f"-m{self.skin_margin:g}" if self.skin_margin else ""
        return (
            f"{self.kind}-a{self.avatars}-v{self.views}-s{self.seed}{tones}"
            f"-{source_digest(self.teacher)}.npz"
        )


def source_digest(teacher: bool = False) -> str:
    """8 hex digits over the sources the renders depend on (and the teacher's, if used)."""
    from . import landmarks

    root = Path(__file__).resolve().parent
    files = sorted((root / "build").glob("*.py")) + [
        root / name
        for name in ("texture.py", "atlas.py", "synth.py", "synth_render.py", "skin_tones.py")
    ]
    if teacher:  # the teacher also runs FaceMesh, so all of face analysis counts
        files += [
            root / name
            for name in (
                "teacher.py",
                "teacher_colors.py",
                "teacher_covers.py",
                "teacher_glasses.py",
                "teacher_hair.py",
                "face.py",
                "face_boxes.py",
                "landmarks.py",
            )  # fmt: skip
        ]
    digest = hashlib.sha256(f"r{SYNTH_VERSION}".encode())
    for path in files:
        digest.update(path.name.encode() + code_fingerprint(path.read_text()).encode())
    # of face analysis, the crops depend only on the alignment's constants and the warp
    alignment = (landmarks.CANONICAL_CROP_POINTS, landmarks.ALIGN_WEIGHTS, landmarks.CROP_SIZE)
    digest.update(repr((alignment, landmarks.CROP_BORDER_VALUE)).encode())
    warp_source = textwrap.dedent(inspect.getsource(landmarks.warp_image))
    digest.update(code_fingerprint(warp_source).encode())
    return digest.hexdigest()[:8]


def code_fingerprint(source: str) -> str:
    """The Python `source`'s syntax tree without comments, layout, docstrings or imports.

    A set's cache name hashes this rather than the file's bytes: a reworded docstring or
    a name now imported from another module (session 29 moved `encode_params`) leaves
    every render the same, yet with the bytes hashed `chibi train` began to render its
    36,000 avatars again (23 min on two cores, then 9 for the refiners' 12,000). The
    imported modules are not hashed either way.
    """
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    tree = ast.parse(source)
    for node in list(ast.walk(tree)):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        if isinstance(node, documented) and ast.get_docstring(node, clean=False) is not None:
            body = body[1:]
        code = [n for n in body if not isinstance(n, (ast.Import, ast.ImportFrom))]
        node.body = code or [ast.Pass()]
    return ast.dump(tree)


def _render_avatar(spec: SetSpec, index: int) -> list[dict[str, Any]]:
    """The `views` samples of avatar `index` (deterministic in (seed, index))."""
    from .build import build_avatar

    rng = np.random.default_rng([spec.seed, index])
    skin = spec.skin_tones[index % len(spec.skin_tones)] if spec.skin_tones else None
    params = sample_params(rng, skin_color=skin, skin_margin=spec.skin_margin)
    avatar = build_avatar(params)
    samples = []
    for _ in range(spec.views):
        photo, crop = photo_and_crop(avatar, params, rng)
        sample: dict[str, Any] = {"crop": crop, "params": params.to_json(indent=None)}
        if spec.teacher:
            sample["teacher"] = _teacher_record(photo)
        samples.append(sample)
    return samples


def _teacher_record(photo: np.ndarray) -> dict[str, Any] | None:
    from .errors import ChibiError
    from .face import thread_analyzer
    from .fusion import teacher_record
    from .teacher import measure

    try:
        face = thread_analyzer().analyze(photo)[0]
        return teacher_record(measure(photo, face))
    except ChibiError:
        return None


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _work(job: tuple[SetSpec, int]) -> list[dict[str, Any]]:
    return _render_avatar(*job)


def render_set(
    spec: SetSpec, workers: int = 2, log: Callable[[str], None] | None = None
) -> dict[str, np.ndarray]:
    """Render a whole set; returns the arrays stored in the cache (see `load_or_render`).

    With one worker the set renders in this process, whose torch threads are the
    caller's again afterwards: `chibi train --workers 1` trained on one thread when it
    had rendered its sets and on `--threads` when they were cached, and so wrote other
    weights when resumed."""
    import torch

    from .process_map import process_map

    jobs = [(spec, i) for i in range(spec.avatars)]
    results: list[list[dict[str, Any]]] = []
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if workers > 1:  # a render process that dies is replaced and its avatars redone
        outputs = process_map(_work, jobs, workers, initializer=_worker_init)
    else:
        _worker_init()
        outputs = map(_work, jobs)
    try:
        for i, samples in enumerate(outputs):
            results.append(samples)
            if log and (i + 1) % max(1, len(jobs) // 10) == 0:
                elapsed = time.perf_counter() - start
                log(f"  {spec.kind}: {i + 1}/{len(jobs)} avatars ({elapsed:.0f}s)")
    finally:
        torch.set_num_threads(threads)
    samples = [s for group in results for s in group]
    params = [AvatarParams.from_json(s["params"]) for s in samples]
    targets = encode_params(params)
    arrays = {
        "crops": np.stack([s["crop"] for s in samples]),
        "sliders": targets.sliders, "colors": targets.colors,
        "hair_style": targets.hair_style, "glasses": targets.glasses,
        "avatar_index": np.repeat(np.arange(spec.avatars), spec.views),
    }  # fmt: skip
    if spec.teacher:
        records = [s["teacher"] or {} for s in samples]
        t, slider_conf, color_conf = teacher_targets(records)
        glasses, glasses_conf = teacher_glasses(records)
        arrays.update(teacher_sliders=t.sliders, teacher_slider_conf=slider_conf,
                      teacher_colors=t.colors, teacher_color_conf=color_conf,
                      teacher_glasses=glasses, teacher_glasses_conf=glasses_conf,
                      teacher_found=np.array([bool(r) for r in records]))  # fmt: skip
    return arrays


def default_cache_dir() -> Path:
    return Path(os.environ.get("CHIBI_CACHE", Path.cwd() / ".cache" / "synth"))


def load_or_render(
    spec: SetSpec,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """The set's arrays from the .npz cache, rendering (and caching) it first if needed.

    Arrays: crops (N, 128, 128, 3) uint8; sliders (N, 23); colors (N, 5, 3) sRGB;
    hair_style, glasses (N,) int; avatar_index (N,); with `teacher`: teacher_sliders,
    teacher_slider_conf (N, 23), teacher_colors (N, 5, 3), teacher_color_conf (N, 5),
    teacher_glasses (N,) int 1 = a frame seen, teacher_glasses_conf (N,), teacher_found
    (N,) bool.
    """  # fmt: skip
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / spec.cache_name()
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    if log:
        log(f"rendering {spec.kind} set: {spec.avatars} avatars x {spec.views} views -> {path}")
    arrays = render_set(spec, workers, log)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def as_training_set(arrays: dict[str, np.ndarray]) -> TrainingSet:
    targets = ParamTargets(arrays["sliders"], arrays["colors"], arrays["hair_style"],
                           arrays["glasses"])  # fmt: skip
    return TrainingSet.fully_labelled(arrays["crops"], targets, "synthetic")
