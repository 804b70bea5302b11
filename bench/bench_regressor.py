"""The photo half: ChibiNet per face, FaceMesh per image, and photo -> VRM bytes end to end.

Everything runs in this one process on the same real photo (scikit-image's astronaut),
so the ratio of the whole pipeline to the FaceMesh pass alone is measured like for like.
The same face as a 12 MP phone selfie shows what a typical upload costs.
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from avatar3d.build import build_avatar
from avatar3d.face import thread_analyzer
from avatar3d.imageio import decode_image
from avatar3d.inference import Regressor
from avatar3d.pipeline import PhotoPipeline
from avatar3d.regressor import load_pretrained, parameter_count
from exporters import export, export_file
from exporters.preview import render_thumbnail

from .common import median, percentile, time_blocks, time_interleaved, time_runs


def photo_to_vrm(pipeline: PhotoPipeline, data: bytes, thumbnail: bool = True) -> bytes:
    """The user's path: bytes -> faces -> CNN + teacher -> fused params -> avatar -> VRM 1.0
    (with the VRM thumbnail, as `chibi convert` and the server make it)."""
    (result,) = pipeline.analyze(data)
    return export_file(build_avatar(result.params), "vrm1", thumbnail)


def _selfie_photo(fmt: str = "JPEG") -> bytes:
    """The astronaut's head and shoulders filling a 4032x3024 photo, as a 12 MP phone
    selfie would (the face is ~570 px once the photo is reduced to 1600 px)."""
    head = Image.fromarray(skdata.astronaut()).crop((100, 0, 400, 225))
    buffer = io.BytesIO()
    head.resize((4032, 3024), Image.Resampling.LANCZOS).save(buffer, fmt, quality=90)
    return buffer.getvalue()


def main() -> None:
    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, "JPEG", quality=92)
    photo = buffer.getvalue()
    rgb = decode_image(photo)
    crop = thread_analyzer().analyze(rgb)[0].crop

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    backends = {
        f"{backend} {flip}": Regressor(
            load_pretrained("default", device="cpu"), "cpu", flip_average=flip, backend=backend
        )
        for backend in ("onnxruntime", "torch")
        for flip in (False, True)
    }
    regressor = backends["onnxruntime False"]
    print(
        f"== ChibiNet ({regressor.config.name}, {parameter_count(regressor.model):,} "
        "parameters, CPU; what the pipeline runs, ONNX Runtime, beside PyTorch) =="
    )
    # in blocks, in turn: each warm, as alone, and both under the same machine load
    # (called alternately, each evicts the other's weights: 1.8 against 1.2 ms)
    one = time_blocks(
        {key: (lambda r=r: r.predict(crop[None])) for key, r in backends.items()}, repeat=100
    )
    ort, eager = median(one["onnxruntime False"]), median(one["torch False"])
    print(
        f"batch 1, 1 thread       {ort:8.2f} ms/face   (p95 "
        f"{percentile(one['onnxruntime False'], 95):.2f})   target < 2 ms;"
        f"  PyTorch {eager:.2f} ms ({eager / ort:.2f}x)"
    )
    ort, eager = median(one["onnxruntime True"]), median(one["torch True"])
    print(
        f"  + mirror average (pipeline default) {ort:6.2f} ms/face;"
        f"  PyTorch {eager:.2f} ms ({eager / ort:.2f}x)"
    )
    batch = np.repeat(crop[None], 32, axis=0)
    b1 = time_blocks(
        {
            key: (lambda r=backends[key]: r.predict(batch))
            for key in ("onnxruntime False", "torch False")
        },
        repeat=10,
        warmup=2,
    )
    ort, eager = (32000 / median(b1[f"{key} False"]) for key in ("onnxruntime", "torch"))
    print(f"batch 32, 1 thread      {ort:8.0f} faces/s;  PyTorch {eager:.0f} faces/s")
    torch.set_num_threads(threads)
    # ONNX Runtime's threads are fixed when its session is made
    wide = Regressor(load_pretrained("default", device="cpu"), "cpu", flip_average=False)
    bn = median(time_runs(lambda: wide.predict(batch), repeat=30, warmup=3))
    print(f"batch 32, {threads} threads     {32000 / bn:8.0f} faces/s")

    print("== FaceMesh and the whole photo -> VRM path (astronaut 512 px JPEG) ==")
    pipeline = PhotoPipeline(device="cpu")
    eager = PhotoPipeline(device="cpu")
    eager.regressor = Regressor(load_pretrained("default", device="cpu"), "cpu", backend="torch")
    # in turn, so the ratio compares them under the same load (the thumbnail render moved
    # 27-40 ms between runs measured one after the other)
    runs = time_interleaved(
        {
            "facemesh": lambda: thread_analyzer().analyze(rgb),
            "whole": lambda: photo_to_vrm(pipeline, photo),
            "bare": lambda: photo_to_vrm(pipeline, photo, False),
            "eager": lambda: photo_to_vrm(eager, photo),
        },
        repeat=30,
        warmup=3,
    )
    facemesh, whole, bare = runs["facemesh"], runs["whole"], runs["bare"]
    print(f"FaceMesh (detect + 478 landmarks + crop) {median(facemesh):8.1f} ms/image")
    ratio = median(whole) / median(facemesh)
    print(
        f"photo -> VRM bytes   p50 {median(whole):8.1f} ms   p95 {percentile(whole, 95):8.1f} ms"
        f"   p50 / FaceMesh = {ratio:.1f}x (target <= 4x)"
    )
    print(
        f"  with the CNN in PyTorch p50 {median(runs['eager']):6.1f} ms"
        f"   p50 / FaceMesh = {median(runs['eager']) / median(facemesh):.1f}x"
    )
    print(
        f"  without the thumbnail p50 {median(bare):8.1f} ms   p95 {percentile(bare, 95):8.1f} ms"
        f"   p50 / FaceMesh = {median(bare) / median(facemesh):.1f}x"
    )
    selfie = _selfie_photo()
    big = time_runs(lambda: photo_to_vrm(pipeline, selfie), repeat=10, warmup=1)
    print(
        f"  a 12 MP phone selfie (4032x3024 JPEG, {len(selfie) / 1e6:.1f} MB): p50 "
        f"{median(big):8.1f} ms, of which decoding and reducing to 1600 px "
        f"{median(time_runs(lambda: decode_image(selfie), repeat=10, warmup=1)):.1f} ms"
    )
    for fmt in ("HEIF", "AVIF"):  # HEIC, as iPhones save photos, and AVIF
        other = _selfie_photo(fmt)
        decode_ms = median(time_runs(lambda other=other: decode_image(other), repeat=5, warmup=1))
        print(f"  the same selfie as {fmt}: decoding and reducing to 1600 px {decode_ms:.1f} ms")
    parts = {
        "decode + FaceMesh": lambda: thread_analyzer().analyze(decode_image(photo)),
        "decode + FaceMesh + CNN + teacher": lambda: pipeline.analyze(photo),
    }
    for name, fn in parts.items():
        print(f"  {name:34} {median(time_runs(fn, repeat=10, warmup=1)):8.1f} ms")
    params = pipeline.analyze(photo)[0].params
    avatar = build_avatar(params)
    print(f"  {'build_avatar':34} {median(time_runs(lambda: build_avatar(params), 10)):8.1f} ms")
    thumbnail_ms = median(time_runs(lambda: render_thumbnail(avatar), 5))
    print(f"  {'thumbnail render':34} {thumbnail_ms:8.1f} ms")
    print(
        f"  {'VRM 1.0 export':34} {median(time_runs(lambda: export(avatar, 'vrm1'), 10)):8.1f} ms"
    )
    print(f"(cpu count {os.cpu_count()}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
