"""Photo bytes -> AvatarParams: decode, find faces, regress, measure, fuse.

`PhotoPipeline` holds the loaded models (FaceMesh, ChibiNet, the fusion table) so a
worker builds it once and reuses it; `photo_to_params` is the one-call form used by
the CLI, the server and the batch job. MediaPipe graphs are not thread-safe, so the
shared default pipeline is one per thread. Photos stay in memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fusion import FusionTable, fuse, load_fusion_table
from .model_files import WEIGHTS_DIR, resolve_name
from .param_arrays import Prediction, teacher_targets
from .params import AvatarParams


@dataclass
class FaceResult:
    """One face of a photo: what each source said and the fused params.

    observation: the `FaceObservation` (aligned crop, landmarks, pose);
    prediction: the CNN's raw output; teacher: the teacher's labels or None when the
    teacher could not measure this face; params: the fused AvatarParams.
    """

    observation: Any
    prediction: Prediction
    teacher: Any
    params: AvatarParams

    def sources(self, table: FusionTable) -> dict[str, str]:
        """field -> 'teacher', 'cnn' or 'default': where each fused value came from, or
        'hidden' for a teacher field the photo hides (the default, `TeacherLabels.hidden`),
        'skin_scale' for a colour the teacher took from the skin scale at the lightness
        it read (`TeacherLabels.skin_scale`: a black-and-white photo's skin and lips, the
        skin under a coloured light);
        and 'glasses_frame' where the teacher's reading decides the glasses: the source of
        the frame's shape ('cnn', or 'default' for `UNKNOWN_FRAME`)."""
        from .fusion import (
            FUSION_FIELDS,
            HAIR_LENGTH,
            teacher_glasses,
            teacher_hair_style,
            teacher_record,
        )

        record = teacher_record(self.teacher)
        _, slider_conf, color_conf = teacher_targets([record])
        conf = np.concatenate([slider_conf[0], color_conf[0]])
        out = {}
        for name, c in zip(FUSION_FIELDS, conf, strict=True):
            source = table.source(name)
            if source == "teacher" and c < table.min_confidence:
                source = table.stand_in(name)
            if source == "teacher" and name in record.get("hidden", ()):
                source = "hidden"
            elif source == "teacher" and name in record.get("skin_scale", ()):
                source = "skin_scale"
            out[name] = source
        out["hair_style"] = "cnn" if table.source("hair_style") == "cnn" else "default"
        if teacher_hair_style(record.get("hair_style"), slider_conf[0, HAIR_LENGTH], table):
            out["hair_style"] = "teacher"
        out["glasses"] = table.source("glasses")
        if out["glasses"] == "teacher" and teacher_glasses([record])[1][0] < table.min_confidence:
            out["glasses"] = "default"
        if out["glasses"] == "teacher":  # which frame, where there is one
            out["glasses_frame"] = table.source("glasses_frame")
        return out


class PhotoPipeline:
    """Loaded models for photo -> params. Build one per worker thread and reuse it.

    model: weights name in `weights_dir` (default: the shipped model);
    device: 'cpu', 'cuda' or None (CUDA when present).
    use_teacher: False gives the CNN alone (for evaluation).
    analyzer: a `face.FaceAnalyzer` (default settings if None); limits: `imageio.ImageLimits`.
    """

    def __init__(
        self,
        model: str = "default",
        weights_dir: str | Path | None = None,
        device: str | None = None,
        fusion: FusionTable | None = None,
        use_teacher: bool = True,
        analyzer: Any = None,
        limits: Any = None,
    ):
        from .face import FaceAnalyzer
        from .imageio import DEFAULT_LIMITS

        directory = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        self.model_name = resolve_name(model, directory)
        self.regressor = _regressor(self.model_name, directory, device)
        self.fusion = fusion or load_fusion_table(self.model_name, directory)
        self.analyzer = analyzer or FaceAnalyzer()
        self.use_teacher = use_teacher
        self.limits = limits or DEFAULT_LIMITS

    def analyze(self, data: bytes, all_faces: bool = False) -> list[FaceResult]:
        """Image bytes -> one FaceResult per face (the largest only unless all_faces).

        Raises ChibiError: invalid_image, image_too_large, no_face, face_too_small,
        face_too_rotated (from face analysis).
        """
        from .imageio import decode_image

        rgb = decode_image(data, self.limits)
        return self.analyze_faces(rgb, self.analyzer.analyze(rgb, all_faces=all_faces))

    def analyze_faces(self, rgb: np.ndarray, faces: list[Any]) -> list[FaceResult]:
        """Regress and fuse faces already found in `rgb` (H, W, 3) uint8."""
        if not faces:
            return []
        crops = np.stack([face.crop for face in faces])
        predictions = self.regressor.predict(crops)
        results = []
        for face, prediction in zip(faces, predictions, strict=True):
            labels = self._teacher(rgb, face) if self.use_teacher else None
            params = fuse(prediction, labels, self.fusion)
            results.append(FaceResult(face, prediction, labels, params))
        return results

    def params(self, data: bytes, all_faces: bool = False) -> list[AvatarParams]:
        return [r.params for r in self.analyze(data, all_faces)]

    @staticmethod
    def _teacher(rgb: np.ndarray, face: Any) -> Any:
        from .errors import ChibiError
        from .teacher import measure

        try:
            return measure(rgb, face)
        except ChibiError:
            # the teacher could not measure this face (e.g. no skin visible): CNN only
            return None


def _regressor(name: str, directory: Path, device: str | None) -> Any:
    """ONNX Runtime on the CPU (`onnx_net.OnnxRegressor`, without torch once its graph is
    cached); PyTorch on CUDA, which is the default where torch sees a GPU."""
    from .onnx_net import OnnxRegressor, cpu_only_torch

    if device == "cpu" or (device is None and cpu_only_torch()):
        return OnnxRegressor.from_weights(name, directory)
    import torch

    from .inference import Regressor
    from .regressor import load_pretrained

    # ChibiNet is tiny (under 1 ms per face on one thread): more torch threads only
    # spin against the other stages and processes (1.5-2x slower per photo on 2
    # cores), and one fixed count keeps the CNN's arithmetic, so the bytes written,
    # the same in the CLI, the server's workers and both batch engines.
    torch.set_num_threads(1)
    return Regressor(load_pretrained(name, directory, device))


_local = threading.local()


def default_pipeline() -> PhotoPipeline:
    """This thread's shared pipeline with the shipped model (built on first use)."""
    pipeline = getattr(_local, "pipeline", None)
    if pipeline is None:
        pipeline = _local.pipeline = PhotoPipeline()
    return pipeline


def photo_to_params(data: bytes, all_faces: bool = False) -> list[AvatarParams]:
    """Photo bytes -> AvatarParams for the largest face (or every face, largest first).

    Raises ChibiError with the face-analysis codes (invalid_image, no_face, ...).
    """
    return default_pipeline().params(data, all_faces)
