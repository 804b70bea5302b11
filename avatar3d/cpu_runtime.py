"""ChibiNet on the CPU through ONNX Runtime: the same weights, 2.4-2.7x faster a face.

PyTorch's eager mode pays a Python dispatch and a layout decision for each of the
network's ~100 small operations, and picks its slow im2col path for the 1x1
convolutions at batch 1: 2.6-2.9 ms a face on one thread. The same network exported
to ONNX and run by ONNX Runtime (convolutions fused with their activations, one
pre-planned graph) takes 0.95-1.1 ms (README, session 18; `python -m bench regressor`
prints both). Training, CUDA and the refiners' fitting stay in PyTorch.

The graph is exported in memory from the checked, BN-folded weights each time a
`Regressor` is built (0.3-0.4 s), so the `.pt` file stays the only weights file and
nothing derived from it can go stale.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from .regressor import ChibiNet, split_heads


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


class OnnxChibiNet:
    """A ChibiNet run by ONNX Runtime on the CPU, called like the module itself:
    images (N, 3, S, S) float 0..1 (any memory layout) -> the heads of `ChibiNet.forward`.

    threads: ONNX Runtime's intra-op threads (1, like the pipeline's torch; the
    arithmetic, so the bytes written, then does not depend on the machine's cores)."""

    def __init__(self, model: ChibiNet, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.config = model.config
        self.session = onnxruntime.InferenceSession(
            export_onnx(model), options, providers=["CPUExecutionProvider"]
        )
        # the first run plans the graph's memory: pay it here, not in the first request
        size = model.config.input_size
        self.logits(np.zeros((1, 3, size, size), np.float32))

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 C-contiguous -> (N, 48) raw outputs."""
        return self.session.run(None, {"images": images})[0]

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        array = images.detach().cpu().float().contiguous().numpy()
        return split_heads(torch.from_numpy(self.logits(array)))
