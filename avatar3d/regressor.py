"""ChibiNet: the CNN that reads an aligned face crop and predicts every `AvatarParams` field.

One factory builds every variant from a small config (timm style):
`create_model("chibinet-m")` or `create_model(ChibiNetConfig(...))`. Shipped weights
live in `avatar3d/weights/<name>.pt` next to `<name>.json` (config, sha256, how they
were trained); `load_pretrained("default")` verifies the checksum before loading.

Input: aligned crops (N, 128, 128, 3) uint8 RGB (see `avatar3d.landmarks.CROP_SIZE`).
Output heads (all bounded):
  sliders    (N, 23)   sigmoid, the 17 shape + 5 expression sliders + hair_length, 0..1
  colors     (N, 5, 3) sigmoid, sRGB 0..1 of skin, hair, iris, lip, brow
  hair_style (N, 7)    logits over `HAIR_STYLES`
  glasses    (N, 3)    logits over `GLASSES`
Nothing here predicts gender, age or ethnicity.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .model_files import DEFAULT_MODEL, WEIGHTS_DIR, sha256_file, verified_weights
from .param_arrays import COLOR_COLUMNS, COLOR_NAMES, SLIDER_FIELDS
from .params import GLASSES, HAIR_STYLES

INPUT_SIZE = 128


# Per-channel statistics used to normalise the input inside the model.
_MEAN = (0.5, 0.45, 0.42)
_STD = (0.25, 0.24, 0.24)


# Where each colour lies in the aligned 128 px crop (`landmarks.CANONICAL_CROP_POINTS`:
# eye centres at (49.8, 50.2) and (78.2, 50.2), mouth corners at y = 81.5):
# (x, y, sigma) in crop pixels, read off the mean of 6000 synthetic training crops.
COLOR_LAYOUT: dict[str, tuple[tuple[float, float, float], ...]] = {
    "skin_color": ((42.0, 68.0, 6.0), (86.0, 68.0, 6.0)),
    "hair_color": ((64.0, 10.0, 10.0), (22.0, 40.0, 8.0), (106.0, 40.0, 8.0)),
    "iris_color": ((49.8, 51.0, 4.0), (78.2, 51.0, 4.0)),
    "lip_color": ((64.0, 82.0, 4.0),),
    "brow_color": ((49.8, 38.0, 4.0), (78.2, 38.0, 4.0)),
}
# How strongly the initial position bias prefers those places (logits).
COLOR_LAYOUT_STRENGTH = 7.0
# (x0, y0, x1, y1) of the crop, as fractions, whose mean brightness `exposure_norm`
# fixes: cheeks, nose and mouth, inside the face whatever the hair.
EXPOSURE_WINDOW = (0.30, 0.40, 0.70, 0.68)
EXPOSURE_TARGET = 0.5


def color_layout_bias(size: int, input_size: int = INPUT_SIZE) -> torch.Tensor:
    """(5, size, size) initial position bias of the colour pool on a size x size map."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * (input_size / size)
    ys, xs = centres.view(-1, 1), centres.view(1, -1)
    bias = torch.zeros(len(COLOR_NAMES), size, size)
    for k, name in enumerate(COLOR_NAMES):
        for x, y, sigma in COLOR_LAYOUT[name]:
            bump = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2.0 * sigma**2))
            bias[k] = torch.maximum(bias[k], COLOR_LAYOUT_STRENGTH * bump)
    return bias


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ChibiNetConfig:
    """Architecture of a ChibiNet variant.

    stem: channels of the first 3x3 stride-2 convolution.
    stages: (out_channels, stride, blocks) per stage of depthwise-separable blocks.
    head_channels: 1x1 reduction before the spatial flatten (the crop is aligned, so
      where a feature sits carries the geometry; global pooling would throw that away).
    hidden: width of the shared fully connected layer; dropout before the heads.
    coords: append two coordinate channels (x, y in -1..1) to the input (CoordConv), so
      early layers can tell where in the aligned crop an edge lies.
    color_pool: each colour also reads what it learns to look at: a softmax over the
      positions of the first stage's map (from the second stage's features and a
      learned position bias) says where, and the input pixels and first-stage features
      are averaged there. Without it the colours share the slider trunk's flattened
      map, and no model without it learned the irises (README, session 14).
    color_layout: start each colour's position bias as bumps where that colour lies in
      the canonical crop (`COLOR_LAYOUT`), so where it looks first does not depend on
      the initial weights (only with `color_pool`).
    exposure_norm: the trunk sees the crop scaled to a fixed mean brightness over the
      middle of the face (`EXPOSURE_WINDOW`), so the sliders cannot follow the photo's
      exposure; only the colour pool reads the pixels as they are (needs `color_pool`).
    color_refine: width of a small MLP that corrects the colour logits from all five
      colours' logits, the log mean RGB of the middle of the face (`EXPOSURE_WINDOW`)
      and the log of the pixels each colour pooled; 0 for none (needs `color_pool`).
      It starts at zero, is frozen while the rest trains and is fitted afterwards on
      the trained network's own outputs (`avatar3d.refiners`): the colours'
      errors are partly systematic (README, session 16).
    color_refiners: how many such MLPs, from different initial weights, are fitted
      side by side; their corrections are averaged.
    slider_refine, slider_refiners: the same for the slider logits, from all 48 outputs
      before any refiner; fitted with the colour refiners (README, session 17).
    """

    name: str = DEFAULT_MODEL
    input_size: int = INPUT_SIZE
    stem: int = 24
    stages: tuple[tuple[int, int, int], ...] = ((32, 1, 1), (64, 2, 2), (112, 2, 2), (160, 2, 2))
    head_channels: int = 48
    hidden: int = 256
    dropout: float = 0.1
    coords: bool = False
    color_pool: bool = False
    color_layout: bool = False
    exposure_norm: bool = False
    color_refine: int = 0
    color_refiners: int = 1
    slider_refine: int = 0
    slider_refiners: int = 1

    def __post_init__(self) -> None:
        if (self.color_layout or self.exposure_norm or self.color_refine) and not self.color_pool:
            raise ValueError("color_layout, exposure_norm and color_refine need color_pool")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [list(s) for s in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChibiNetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ChibiNet config keys: {unknown}")
        values = dict(data)
        if "stages" in values:
            values["stages"] = tuple(tuple(int(v) for v in s) for s in values["stages"])
        return cls(**values)


MODEL_CONFIGS: dict[str, ChibiNetConfig] = {
    # shipped in sessions 13-14: its first stage keeps the stem's 64 px, so the last
    # feature map is 8x8; chibinet-s halves it there and ends at 4x4, which read the
    # few-pixel face sliders worse (held-out slider MAE 0.177 against 0.158, README)
    "chibinet-m": ChibiNetConfig(name="chibinet-m"),
    # chibinet-m with colours that pool where they look: every colour better, fairness
    # within the goal, but the irises only for some initial seeds and the CNN's
    # head_size / hair_length less stable under brightness (README, session 14)
    "chibinet-mc": ChibiNetConfig(name="chibinet-mc", color_pool=True),
    # shipped in session 15: chibinet-mc whose colours start looking where they lie in
    # the canonical crop (the irises found from any start) and whose trunk sees every
    # crop at the same exposure (head_size / hair_length steady under brightness; README)
    "chibinet-mce": ChibiNetConfig(
        name="chibinet-mce", color_pool=True, color_layout=True, exposure_norm=True
    ),
    # the shipped model: chibinet-mce (trained exactly as it is) and then six colour
    # refiners fitted on its outputs: every colour, and the fairness figure, better.
    # Session 16: fitted on the training crops. Session 17: six slider refiners too, all
    # fitted on those crops and on renders the network never saw (README)
    "chibinet-mcer": ChibiNetConfig(
        name="chibinet-mcer", color_pool=True, color_layout=True, exposure_norm=True,
        color_refine=64, color_refiners=6, slider_refine=64, slider_refiners=6,
    ),  # fmt: skip
    "chibinet-s": ChibiNetConfig(
        name="chibinet-s", stages=((32, 2, 1), (64, 2, 2), (112, 2, 2), (160, 2, 2))
    ),
    # a tiny variant for tests and smoke runs
    "chibinet-xs": ChibiNetConfig(
        name="chibinet-xs", stem=8, stages=((16, 2, 1), (24, 2, 1), (32, 2, 1), (48, 2, 1)),
        head_channels=16, hidden=64, dropout=0.0,
    ),
}  # fmt: skip


# --------------------------------------------------------------------------- network
class _ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1, act=True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class _SeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet v1 style), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.depthwise = _ConvBN(cin, cin, 3, stride, groups=cin)
        self.pointwise = _ConvBN(cin, cout, 1, 1, act=stride != 1 or cin != cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return nn.functional.relu6(x + y) if self.residual else y


class MLPEnsemble(nn.Module):
    """`count` MLPs (inputs -> width -> width -> outputs, ReLU) run as batched matrix
    products; `members` gives each one's output (count, N, outputs), calling the module
    their mean (N, outputs). The last layer starts at zero, so the output does too."""

    def __init__(self, count: int, inputs: int, width: int, outputs: int):
        super().__init__()

        def uniform(fan_in: int, *shape: int) -> nn.Parameter:  # nn.Linear's default bounds
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(count, *shape).uniform_(-bound, bound))

        def zeros(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(count, *shape))

        self.weights = nn.ParameterList(
            [uniform(inputs, inputs, width), uniform(width, width, width), zeros(width, outputs)]
        )
        self.biases = nn.ParameterList(
            [uniform(inputs, 1, width), uniform(width, 1, width), zeros(1, outputs)]
        )

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, inputs) -> (count, N, outputs)."""
        h = x.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight)
            if index < len(self.weights) - 1:
                h = torch.relu(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.members(x).mean(dim=0)


class ChibiNet(nn.Module):
    """Aligned face crop -> AvatarParams heads. See the module docstring for shapes."""

    def __init__(self, config: ChibiNetConfig):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        layers: list[nn.Module] = [_ConvBN(5 if config.coords else 3, config.stem, 3, 2)]
        channels = config.stem
        size = config.input_size // 2
        stage_ends = []  # index in `features` of each stage's last block
        first_size = size // config.stages[0][1]
        for out_channels, stride, blocks in config.stages:
            for i in range(blocks):
                layers.append(_SeparableBlock(channels, out_channels, stride if i == 0 else 1))
                channels = out_channels
            size //= stride
            stage_ends.append(len(layers) - 1)
        layers.append(_ConvBN(channels, config.head_channels, 1, 1))
        self.features = nn.Sequential(*layers)
        self._taps = tuple(stage_ends[:2])
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.head_channels * size * size, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
        )
        self.n_sliders = len(SLIDER_FIELDS)
        self.n_colors = len(COLOR_NAMES)
        self.out = nn.Linear(
            config.hidden, self.n_sliders + 3 * self.n_colors + len(HAIR_STYLES) + len(GLASSES)
        )
        if config.color_pool:
            first, second = config.stages[0][0], config.stages[1][0]
            self.color_where = nn.Conv2d(second, self.n_colors, 1)
            # the crop is aligned, so where a colour lies is also a matter of position
            self.color_position = nn.Parameter(
                color_layout_bias(first_size, config.input_size)
                if config.color_layout
                else torch.zeros(self.n_colors, first_size, first_size)
            )
            # one (first + 3) -> 3 map per colour, added to the shared head's colour logits;
            # not zero, or `color_where` gets no gradient until these have grown
            self.color_weight = nn.Parameter(0.02 * torch.randn(self.n_colors, first + 3, 3))
        if config.color_refine:
            # built last, so every other layer draws the initial weights it would without;
            # frozen here and zero at its output, so training the rest is unchanged too
            colors = 3 * self.n_colors
            self.color_refiner = MLPEnsemble(
                config.color_refiners, 2 * colors + 3, config.color_refine, colors
            )
            self.color_refiner.requires_grad_(False)
        if config.slider_refine:
            # after the colour refiner, so that one draws the initial weights it would without
            outputs = self.out.out_features
            self.slider_refiner = MLPEnsemble(
                config.slider_refiners, outputs, config.slider_refine, self.n_sliders
            )
            self.slider_refiner.requires_grad_(False)

    def _color_weights(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(N, 5, h*w): where each colour looks, a softmax over the first stage's positions."""
        n, _, h, w = first.shape
        seen = self.color_where(second)
        where = nn.functional.interpolate(seen, size=(h, w), mode="bilinear", align_corners=False)
        where = where + self.color_position
        return torch.softmax(where.reshape(n, self.n_colors, h * w), dim=-1)

    def _pooled_colors(
        self, images: torch.Tensor, first: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 5, 3) colour logits from the pixels and first-stage features averaged over
        where each colour looks, and (N, 5, 3) the pixels' averages alone."""
        n, _, h, w = first.shape
        weights = self._color_weights(first, second)
        # a fixed kernel (the crop's size is the config's), so the ONNX export is static
        pixels = nn.functional.avg_pool2d(images, self.config.input_size // w)
        # (N, h*w, C) views of the maps: free for channels_last, the inference layout
        flat = [m.permute(0, 2, 3, 1).reshape(n, h * w, -1) for m in (first, pixels)]
        pooled = torch.cat([torch.bmm(weights, f) for f in flat], dim=2)  # (N, 5, C + 3)
        return torch.einsum("nkc,kcd->nkd", pooled, self.color_weight), pooled[..., -3:]

    @staticmethod
    def _window(images: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) view of the crops over `EXPOSURE_WINDOW`."""
        h, w = images.shape[-2:]
        x0, y0, x1, y1 = EXPOSURE_WINDOW
        return images[:, :, int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)]

    def _exposure_normalised(self, images: torch.Tensor) -> torch.Tensor:
        """The crops scaled so the middle of the face has mean brightness
        `EXPOSURE_TARGET`: a brighter or darker photo of the same face looks the same."""
        level = self._window(images).mean(dim=(1, 2, 3), keepdim=True).clamp(min=0.02)
        return images * (EXPOSURE_TARGET / level)

    def _features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The trunk's last map and, with `color_pool`, its first two stages' maps."""
        x = self._exposure_normalised(images) if self.config.exposure_norm else images
        x = (x - self.mean) / self.std
        if self.config.coords:
            n, _, h, w = x.shape
            ys = torch.linspace(-1.0, 1.0, h, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
            xs = torch.linspace(-1.0, 1.0, w, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
            x = torch.cat([x, xs, ys], dim=1).contiguous(memory_format=torch.channels_last)
        if not self.config.color_pool:
            return self.features(x), []
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                taps.append(x)
        return x, taps

    def forward_logits(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) float 0..1 -> (N, 48) raw outputs before the bounding functions."""
        raw, pixels = self.unrefined_logits(images)
        a, b = COLOR_COLUMNS.start, COLOR_COLUMNS.stop
        sliders, colors = raw[:, :a], raw[:, a:b]
        if self.config.slider_refine:
            sliders = sliders + self.slider_refiner(raw)
        if self.config.color_refine:
            colors = colors + self.color_refiner(self.refiner_inputs(images, raw, pixels))
        return torch.cat([sliders, colors, raw[:, b:]], dim=1)

    def refiner_inputs(
        self, images: torch.Tensor, raw: torch.Tensor, pixels: torch.Tensor
    ) -> torch.Tensor:
        """(N, 33) what `color_refiner` reads: the colour logits of `raw`, the log mean RGB
        of the middle of the face and the log of the pixels (N, 5, 3) each colour pooled."""
        exposure = self._window(images).mean(dim=(2, 3))
        logs = torch.log(torch.cat([exposure, pixels.flatten(1)], dim=1).clamp(min=0.02))
        return torch.cat([raw[:, COLOR_COLUMNS], logs], dim=1)

    def unrefined_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`forward_logits` before the refiners (the same without them), and with
        `color_pool` the mean pixels (N, 5, 3) each colour pooled (else None)."""
        x, taps = self._features(images)
        raw = self.out(self.fc(x))
        if not taps:
            return raw, None
        a, b = COLOR_COLUMNS.start, COLOR_COLUMNS.stop
        pooled, pixels = self._pooled_colors(images, *taps)
        colors = raw[:, a:b] + pooled.flatten(1)
        return torch.cat([raw[:, :a], colors, raw[:, b:]], dim=1), pixels

    def color_attention(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 5, h, w) weights, each summing to 1: where each colour of `COLOR_NAMES`
        looks on the first stage's map (h = w = 64 for a 128 px crop); needs `color_pool`."""
        if not self.config.color_pool:
            raise ValueError(f"{self.config.name} has no colour pool")
        _, (first, second) = self._features(images)
        n, _, h, w = first.shape
        return self._color_weights(first, second).view(n, self.n_colors, h, w)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return split_heads(self.forward_logits(images))


def split_heads(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, 48) raw outputs -> the bounded heads: slider_logits and sliders (N, 23),
    colors (N, 5, 3) sRGB 0..1, hair_style (N, 7) and glasses (N, 3) logits."""
    a, b = COLOR_COLUMNS.start, COLOR_COLUMNS.stop
    c = b + len(HAIR_STYLES)
    return {
        "slider_logits": raw[:, :a],
        "sliders": torch.sigmoid(raw[:, :a]),
        "colors": torch.sigmoid(raw[:, a:b]).view(-1, len(COLOR_NAMES), 3),
        "hair_style": raw[:, b:c],
        "glasses": raw[:, c:],
    }


def create_model(name_or_config: str | ChibiNetConfig | dict[str, Any] = DEFAULT_MODEL) -> ChibiNet:
    """The one factory: a ChibiNet from a registered name, a config, or a config dict."""
    if isinstance(name_or_config, str):
        if name_or_config not in MODEL_CONFIGS:
            raise ValueError(f"unknown model {name_or_config!r}; known: {', '.join(MODEL_CONFIGS)}")
        config = MODEL_CONFIGS[name_or_config]
    elif isinstance(name_or_config, dict):
        config = ChibiNetConfig.from_dict(name_or_config)
    else:
        config = name_or_config
    return ChibiNet(config)


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- weights
def save_weights(
    model: ChibiNet, directory: str | Path, name: str, info: dict[str, Any] | None = None
) -> Path:
    """Write `<name>.pt` (float16 state dict + config) and `<name>.json` (sha256, config, info).

    Both files are written to temporary names first and renamed, so a crash never
    leaves a half-written weights file behind. Returns the .pt path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()
    }
    pt_path = directory / f"{name}.pt"
    tmp_pt = directory / f".{name}.pt.tmp"
    torch.save({"config": model.config.to_dict(), "state_dict": state}, tmp_pt)
    meta = {
        "name": name,
        "file": pt_path.name,
        "sha256": sha256_file(tmp_pt),
        "bytes": tmp_pt.stat().st_size,
        "config": model.config.to_dict(),
        "parameters": parameter_count(model),
        **(info or {}),
    }
    tmp_json = directory / f".{name}.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_pt.replace(pt_path)
    tmp_json.replace(directory / f"{name}.json")
    return pt_path


def load_pretrained(
    name: str = "default", weights_dir: str | Path | None = None, device: str | None = None
) -> ChibiNet:
    """Load shipped weights by name, verifying their sha256 first.

    Raises ChibiError('model_unavailable') when the files are missing and
    ChibiError('weights_checksum') when the file does not match its recorded digest.
    """
    directory = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    path, _ = verified_weights(name, directory)
    return load_weights_file(path, device)


def load_weights_file(path: str | Path, device: str | None = None) -> ChibiNet:
    """Load a .pt written by `save_weights` (no checksum: for checkpoints you made yourself)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(blob["config"])
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    model.eval()
    return model.to(pick_device(device))


def pick_device(device: str | None = None) -> torch.device:
    """CPU by default; CUDA when present (or as asked)."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- inference
def fuse_batchnorm(model: ChibiNet) -> ChibiNet:
    """Fold every BatchNorm into its convolution (eval mode; fewer ops at inference)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, _ConvBN) and isinstance(module[1], nn.BatchNorm2d):
            conv, bn = module[0], module[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, groups=conv.groups, bias=True,
            )  # fmt: skip
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
            module[0] = fused.to(conv.weight.device)
            module[1] = nn.Identity()
    return model


def crops_to_tensor(crops: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float 0..1, channels_last memory."""
    crops = np.ascontiguousarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    tensor = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return tensor.contiguous(memory_format=torch.channels_last)
