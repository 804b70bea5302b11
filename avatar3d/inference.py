"""Running a trained ChibiNet: BN folding, the mirror average, and what runs it.

`Regressor` is what the pipeline holds. On the CPU it runs the network through ONNX
Runtime, 2.2-2.5x faster a face than PyTorch with the same weights: PyTorch's eager mode
pays a Python dispatch and a layout decision for each of the network's ~100 small
operations, and picks its slow im2col path for the 1x1 convolutions at batch 1 (2.6-3.7
ms a face on one thread, against 1.1-1.4 ms; README, session 18; `python -m bench
regressor` prints both). Training, the refiners' fitting and CUDA stay in PyTorch.

The ONNX graph is exported from the checked, BN-folded weights (`export_graph`, 0.3-0.4
s); the pipeline keeps it in a cache named by the weights' sha256 and the exporting code
(`onnx_net`), so the `.pt` file stays the only weights file and nothing derived from it
can go stale.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import torch

from .onnx_net import OnnxChibiNet
from .param_arrays import SLIDER_MIRROR, Prediction
from .regressor import ChibiNet, crops_to_tensor, fuse_batchnorm, pick_device

# What runs the network: a ChibiNet, or anything called like one (`OnnxChibiNet`):
# images (N, 3, H, W) float 0..1 -> the heads of `split_heads`.
Forward = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def predict_tensor(
    model: Forward,
    images: torch.Tensor,
    flip_average: bool = True,
) -> dict[str, np.ndarray]:
    """Bounded outputs for (N, 3, H, W) 0..1 images as numpy: sliders (N, 23), colors
    (N, 5, 3), hair_style / glasses class probabilities.

    flip_average: also run the mirrored image and average (mirrored fields swapped
    back), so the prediction is exactly symmetric under a horizontal flip of the photo.
    """
    n = images.shape[0]
    # cuDNN runs float32 convolutions in TF32 unless told not to: on an H200 the outputs
    # then moved up to 6e-4 from the CPU's, which changed the rounded params of all 32
    # test faces (5.5e-7 and none without). The pipeline's batches (a photo's faces) are
    # launch-bound there either way; only batches of hundreds ran faster with TF32.
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        batch = torch.cat([images, images.flip(-1)]) if flip_average else images
        out = model(batch.contiguous(memory_format=torch.channels_last))
        sliders = out["sliders"].float()
        colors = out["colors"].float()
        hair = torch.softmax(out["hair_style"].float(), 1)
        glasses = torch.softmax(out["glasses"].float(), 1)
        if flip_average:
            sliders = 0.5 * (sliders[:n] + sliders[n:][:, SLIDER_MIRROR])
            colors, hair, glasses = (0.5 * (t[:n] + t[n:]) for t in (colors, hair, glasses))
    return {
        "sliders": sliders.cpu().numpy(),
        "colors": colors.cpu().numpy(),
        "hair_style": hair.cpu().numpy(),
        "glasses": glasses.cpu().numpy(),
    }


def export_onnx(model: ChibiNet) -> bytes:
    """`model.forward_logits` as an ONNX graph (bytes): "images" (N, 3, S, S) float32 0..1,
    S = the config's input size, N free -> "logits" (N, 48), the raw outputs."""

    class _Logits(torch.nn.Module):
        def __init__(self, net: ChibiNet):
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.net.forward_logits(images)

    size = model.config.input_size
    example = torch.zeros(1, 3, size, size)
    buffer = io.BytesIO()
    model = model.cpu().eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on the fixed crop size (constant slices, as meant) and
        # the TorchScript exporter's deprecation: torch==2.13.0 is pinned with it
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Logits(model), (example,), buffer, input_names=["images"],
            output_names=["logits"], dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def export_graph(model: ChibiNet) -> bytes:
    """The graph ONNX Runtime runs for `model`: its BatchNorms folded (in place), on the
    CPU (`export_onnx`)."""
    return export_onnx(fuse_batchnorm(model.cpu()))


BACKENDS = ("auto", "onnxruntime", "torch")


class Regressor:
    """A loaded ChibiNet ready for inference (BN folded, channels_last, inference_mode).

    flip_average: average each face with its mirror image (see `predict_tensor`);
    twice the compute, exact flip symmetry.
    backend: what runs the network. 'auto' is ONNX Runtime on the CPU (`OnnxChibiNet`:
    2.2-2.5x faster than PyTorch there at batch 1, outputs within 2.5e-6 of its) and
    PyTorch on CUDA; 'torch' forces PyTorch (`model` is the PyTorch module either way).
    """

    def __init__(
        self,
        model: ChibiNet,
        device: str | torch.device | None = None,
        flip_average: bool = True,
        backend: str = "auto",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.device = pick_device(str(device) if device is not None else None)
        self.model = fuse_batchnorm(model.to(self.device)).to(memory_format=torch.channels_last)
        self.config = model.config
        self.flip_average = flip_average
        if backend == "auto":
            backend = "onnxruntime" if self.device.type == "cpu" else "torch"
        if backend == "onnxruntime" and self.device.type != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only")
        self.backend = backend
        self.forward: Forward = self.model
        if backend == "onnxruntime":
            self.forward = OnnxChibiNet(export_graph(self.model), torch.get_num_threads())

    def predict(self, crops: np.ndarray) -> list[Prediction]:
        """crops (N, 128, 128, 3) uint8 aligned faces -> N predictions."""
        if isinstance(self.forward, OnnxChibiNet):  # as the pipeline's `OnnxRegressor`
            return self.forward.predict(crops, self.flip_average)
        out = predict_tensor(self.forward, crops_to_tensor(crops, self.device), self.flip_average)
        return [
            Prediction(out["sliders"][i], out["colors"][i], out["hair_style"][i], out["glasses"][i])
            for i in range(len(out["sliders"]))
        ]
