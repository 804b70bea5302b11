"""ChibiNet as an ONNX graph: ONNX Runtime runs it, and the graph is cached by weights.

The pipeline's CPU path. `OnnxChibiNet` runs an exported graph with numpy in and out;
`OnnxRegressor` is the pipeline's regressor built from shipped weights by name without
importing torch: the graph exported from those weights (`inference.export_graph`) is
kept under `.cache/onnx/` (or `$CHIBI_ONNX_CACHE`), named by the weights' sha256
(checked against their JSON first, as `regressor.load_pretrained` does) and by the code
and torch version that export it, so a cached graph cannot outlive what made it.
Importing torch took 1.3 s of a 2.9 s `chibi params` and exporting 0.3 s more; a cache
that cannot be written (a read-only install) only costs the export again. Each new
version of the weights, the code or torch exports a new graph (about 4 MB), so writing
one keeps only the `KEEP_GRAPHS` most recently used and drops `.part` files a killed
process left.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .model_files import verified_weights
from .param_arrays import COLOR_COLUMNS, COLOR_NAMES, SLIDER_MIRROR, Prediction
from .params import HAIR_STYLES

# where the graphs are kept unless CHIBI_ONNX_CACHE names another folder
ONNX_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "onnx"
# the code a graph is exported by: another version of either may export another graph
_EXPORTING_CODE = ("regressor.py", "inference.py")
# graphs kept in the cache: a few, so checkouts or weights used side by side sharing one
# cache folder do not export each other's graphs again on every switch
KEEP_GRAPHS = 4
# a `.part` this old was left by a process killed while writing it
STALE_PART_S = 3600.0


class OnnxChibiNet:
    """An exported ChibiNet graph (`inference.export_onnx`) run by ONNX Runtime on the
    CPU: "images" (N, 3, S, S) float32 0..1 -> "logits" (N, 48).

    threads: ONNX Runtime's intra-op threads (1, like the pipeline's torch; the
    arithmetic, so the bytes written, then does not depend on the machine's cores).
    Called with a torch tensor it answers like the module (`ChibiNet.forward`'s heads),
    which is how `chibi eval` scores what the pipeline runs."""

    def __init__(self, graph: bytes, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.graph = graph
        self.session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"]
        )
        self.input_size = int(self.session.get_inputs()[0].shape[2])
        # the first run plans the graph's memory: pay it here, not in the first request
        self.logits(np.zeros((1, 3, self.input_size, self.input_size), np.float32))

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) float32 C-contiguous -> (N, 48) raw outputs."""
        return self.session.run(None, {"images": images})[0]

    def __call__(self, images: Any) -> dict[str, Any]:
        import torch

        from .regressor import split_heads

        array = images.detach().cpu().float().contiguous().numpy()
        return split_heads(torch.from_numpy(self.logits(array)))

    def predict(self, crops: np.ndarray, flip_average: bool = True) -> list[Prediction]:
        """(N, S, S, 3) uint8 aligned crops -> N predictions; with `flip_average` each
        face is averaged with its mirror image (mirrored sliders swapped back), as
        `inference.predict_tensor` does."""
        crops = np.ascontiguousarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        images = crops.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        n = len(images)
        batch = np.concatenate([images, images[..., ::-1]]) if flip_average else images
        logits = self.logits(np.ascontiguousarray(batch))
        a, b = COLOR_COLUMNS.start, COLOR_COLUMNS.stop
        c = b + len(HAIR_STYLES)
        sliders = _sigmoid(logits[:, :a])
        colors = _sigmoid(logits[:, a:b]).reshape(-1, len(COLOR_NAMES), 3)
        hair, glasses = _softmax(logits[:, b:c]), _softmax(logits[:, c:])
        if flip_average:
            sliders = np.float32(0.5) * (sliders[:n] + sliders[n:][:, SLIDER_MIRROR])
            colors, hair, glasses = (
                np.float32(0.5) * (x[:n] + x[n:]) for x in (colors, hair, glasses)
            )
        return [Prediction(sliders[i], colors[i], hair[i], glasses[i]) for i in range(n)]


class OnnxRegressor:
    """The pipeline's regressor on the CPU: shipped weights by name, run as a cached
    ONNX graph (`cached_graph`), without torch where the graph is cached."""

    backend = "onnxruntime"

    def __init__(self, graph: bytes, flip_average: bool = True):
        self.forward = OnnxChibiNet(graph)
        self.flip_average = flip_average

    @classmethod
    def from_weights(
        cls, name: str, weights_dir: Path, cache_dir: Path | None = None
    ) -> OnnxRegressor:
        """Raises ChibiError 'model_unavailable' / 'weights_checksum' as `load_pretrained`."""
        path, meta = verified_weights(name, weights_dir)

        def export() -> bytes:
            from .inference import export_graph
            from .regressor import load_weights_file

            return export_graph(load_weights_file(path, "cpu"))

        graph = cached_graph(meta["sha256"], export, cache_dir)
        try:
            return cls(graph)
        except Exception:  # noqa: BLE001 - ONNX Runtime refused a damaged cached graph
            return cls(cached_graph(meta["sha256"], export, cache_dir, fresh=True))

    def predict(self, crops: np.ndarray) -> list[Prediction]:
        """crops (N, 128, 128, 3) uint8 aligned faces -> N predictions."""
        return self.forward.predict(crops, self.flip_average)


def cached_graph(
    weights_sha256: str,
    export: Callable[[], bytes],
    cache_dir: Path | None = None,
    fresh: bool = False,
) -> bytes:
    """The graph `export()` makes of the weights whose sha256 is given, from the cache
    when it holds one made by this code and this torch (unless `fresh`); written there
    (atomically) when it does not. A graph read is marked used (its mtime), and writing
    one prunes the cache (`prune_graphs`)."""
    directory = Path(cache_dir or os.environ.get("CHIBI_ONNX_CACHE") or ONNX_CACHE)
    path = directory / f"chibinet-{graph_key(weights_sha256)}.onnx"
    if not fresh:
        try:
            graph = path.read_bytes()
        except OSError:
            pass
        else:
            with contextlib.suppress(OSError):  # a read-only cache is still a cache
                os.utime(path)
            return graph
    graph = export()
    temporary = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(graph)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would keep it from other users' workers
        os.replace(temporary, path)
    except OSError:  # not cached: the next process exports again
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        return graph
    prune_graphs(directory)
    return graph


def prune_graphs(directory: Path, keep: int = KEEP_GRAPHS) -> None:
    """Delete all but the `keep` most recently used graphs in `directory`, and `.part`
    files older than `STALE_PART_S`. Files another process deletes first, or that
    cannot be deleted, are passed over."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    now = time.time()
    graphs = []
    for entry in entries:
        with contextlib.suppress(OSError):
            mtime = entry.stat().st_mtime
            if entry.name.startswith("chibinet-") and entry.suffix == ".onnx":
                graphs.append((mtime, entry))
            elif entry.suffix == ".part" and now - mtime > STALE_PART_S:
                entry.unlink()
    for _, old in sorted(graphs, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


def graph_key(weights_sha256: str) -> str:
    """A digest of the weights, the exporting code's bytes and torch's version."""
    digest = hashlib.sha256(weights_sha256.encode())
    here = Path(__file__).resolve().parent
    for name in _EXPORTING_CODE:
        digest.update((here / name).read_bytes())
    digest.update(metadata.version("torch").encode())
    return digest.hexdigest()[:32]


def cpu_only_torch() -> bool:
    """Whether the installed torch is a CPU build (its version says '+cpu'), so CUDA
    cannot be present and the CPU path needs no `import torch` to know it."""
    try:
        return metadata.version("torch").endswith("+cpu")
    except metadata.PackageNotFoundError:
        return True


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
