"""Avatar -> VRM 1.0 (.vrm: a GLB with `VRMC_vrm`, `VRMC_materials_mtoon`, `VRMC_springBone`).

The avatar is written as it is (faces +Z, the VRM 1.0 convention). This module
also holds the VRM concepts both versions share (humanoid bones, licence
defaults, MToon numbers, gaze); `vrm0` translates them to the 0.x layout.

Materials carry `VRMC_materials_mtoon` and, beside it, `KHR_materials_unlit`
as the fallback for plain glTF viewers (the MToon spec lets MToon take
precedence when both are present, and UniVRM writes the same pair). The Khronos
validator flags every material holding `KHR_materials_unlit` together with any
other extension as MULTIPLE_EXTENSIONS (a warning it cannot lift: it does not
know VRMC_materials_mtoon), so VRM 1.0 files get exactly one such warning per
material; tests allow that and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pygltflib as gl

from avatar3d.avatar import VRM_EXPRESSION_PRESETS, Avatar, Material

from .gltf_writer import AvatarIndices, GltfWriter, write_avatar

LICENSE_URL = "https://vrm.dev/licenses/1.0/"
AUTHOR = "chibi-avatar"

# Every humanoid bone VRM 1.0 knows; skeleton joints with other names (hair) are not humanoid.
VRM1_HUMAN_BONES: tuple[str, ...] = (
    "hips", "spine", "chest", "upperChest", "neck", "head", "leftEye", "rightEye", "jaw",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "leftToes",
    "rightUpperLeg", "rightLowerLeg", "rightFoot", "rightToes",
    "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightShoulder", "rightUpperArm", "rightLowerArm", "rightHand",
    *(f"{side}{finger}" for side in ("left", "right") for finger in (
        "ThumbMetacarpal", "ThumbProximal", "ThumbDistal",
        "IndexProximal", "IndexIntermediate", "IndexDistal",
        "MiddleProximal", "MiddleIntermediate", "MiddleDistal",
        "RingProximal", "RingIntermediate", "RingDistal",
        "LittleProximal", "LittleIntermediate", "LittleDistal")),
)  # fmt: skip

EMOTIONS = ("happy", "angry", "sad", "relaxed", "surprised")
BLINKS = ("blink", "blinkLeft", "blinkRight")

# Gaze limits in degrees for eye bones (inner/outer: towards/away from the nose).
LOOK_AT_DEGREES = {"horizontalInner": 10.0, "horizontalOuter": 12.0, "verticalDown": 10.0,
                   "verticalUp": 10.0}  # fmt: skip
LOOK_AT_INPUT_MAX_DEGREES = 90.0

# Toon shading shared by both MToon versions: a crisp terminator, slightly lit.
MTOON_SHADING_TOONY = 0.95
MTOON_SHADING_SHIFT = -0.05
MTOON_GI_EQUALIZATION = 0.9
OUTLINE_DARKEN = 0.35  # outline colour = shade colour times this


def humanoid_nodes(avatar: Avatar, indices: AvatarIndices) -> dict[str, int]:
    """VRM 1.0 humanoid bone name -> node index, for every skeleton joint that is one."""
    return {
        name: indices.joint_nodes[joint]
        for joint, name in enumerate(avatar.skeleton.names)
        if name in VRM1_HUMAN_BONES
    }


def look_at_uses_bones(avatar: Avatar) -> bool:
    """True when both eye joints exist and move vertices; else gaze runs on the look* morphs."""
    names = avatar.skeleton.names
    if "leftEye" not in names or "rightEye" not in names:
        return False
    weighted = avatar.joints[avatar.weights > 0]
    return all((weighted == names.index(eye)).any() for eye in ("leftEye", "rightEye"))


def display_name(avatar: Avatar) -> str:
    return avatar.params.name if avatar.params is not None else avatar.name


def outline_color(material: Material) -> list[float]:
    return [c * OUTLINE_DARKEN for c in material.shade_color]


def _mtoon(material: Material, texture: int | None) -> dict[str, Any]:
    mtoon: dict[str, Any] = {
        "specVersion": "1.0",
        "transparentWithZWrite": False,
        "renderQueueOffsetNumber": 0,
        "shadeColorFactor": [float(c) for c in material.shade_color],
        "shadingShiftFactor": MTOON_SHADING_SHIFT,
        "shadingToonyFactor": MTOON_SHADING_TOONY,
        "giEqualizationFactor": MTOON_GI_EQUALIZATION,
        "matcapFactor": [0.0, 0.0, 0.0],
        "parametricRimColorFactor": [0.0, 0.0, 0.0],
        "parametricRimFresnelPowerFactor": 5.0,
        "parametricRimLiftFactor": 0.0,
        "rimLightingMixFactor": 1.0,
        "outlineWidthMode": "worldCoordinates" if material.outline_width > 0 else "none",
        "outlineWidthFactor": float(material.outline_width),
        "outlineColorFactor": outline_color(material),
        "outlineLightingMixFactor": 1.0,
    }
    if texture is not None:
        # The shaded side keeps the atlas's detail (eyes, mouth), tinted by the shade colour.
        mtoon["shadeMultiplyTexture"] = {"index": texture}
    return mtoon


def _expressions(avatar: Avatar, indices: AvatarIndices) -> dict[str, Any]:
    """Every preset expression bound to the morph target of the same name."""
    presets: dict[str, Any] = {}
    for name in VRM_EXPRESSION_PRESETS:
        if name not in indices.morph_targets:
            continue
        expression: dict[str, Any] = {
            "morphTargetBinds": [
                {"node": indices.mesh_node, "index": indices.morph_targets[name], "weight": 1.0}
            ],
            "isBinary": False,
            "overrideBlink": "none",
            "overrideLookAt": "none",
            "overrideMouth": "none",
        }
        if name in EMOTIONS:
            # Emotions reshape the eyes and mouth: fade blinking and lip sync out as they fade in.
            expression["overrideBlink"] = "blend"
            expression["overrideMouth"] = "blend"
        elif name in BLINKS:
            # Closed eyelids must not be pierced by gaze; a blink never overrides blinks (spec).
            expression["overrideLookAt"] = "block"
        presets[name] = expression
    return {"preset": presets}


def _look_at(avatar: Avatar) -> dict[str, Any]:
    bones = look_at_uses_bones(avatar)
    look_at: dict[str, Any] = {
        "offsetFromHeadBone": [float(c) for c in avatar.eye_offset],
        "type": "bone" if bones else "expression",
    }
    for key, degrees in LOOK_AT_DEGREES.items():
        range_map = "rangeMap" + key[0].upper() + key[1:]
        look_at[range_map] = {
            "inputMaxValue": LOOK_AT_INPUT_MAX_DEGREES,
            # bone: output is the eye's rotation in degrees; expression: the morph weight.
            "outputScale": degrees if bones else 1.0,
        }
    return look_at


def _tail_node(writer: GltfWriter, avatar: Avatar, indices: AvatarIndices, chain: list[int]) -> int:
    """An empty node continuing the chain past its last joint, by the last segment's length.

    In VRM 1.0 the last joint of a spring only serves as the tail of the joint
    before it and never rotates (VRM 0.x gives it a virtual tail instead); when
    vertices hang on it, this node lets it swing too.
    """
    positions = avatar.skeleton.positions
    last = chain[-1]
    step = positions[last] - positions[chain[-2]] if len(chain) > 1 else np.array([0.0, -0.07, 0.0])
    writer.gltf.nodes.append(
        gl.Node(name=f"{avatar.skeleton.names[last]}_tail", translation=[float(c) for c in step])
    )
    tail = len(writer.gltf.nodes) - 1
    writer.gltf.nodes[indices.joint_nodes[last]].children.append(tail)
    return tail


def _spring_bone(
    writer: GltfWriter, avatar: Avatar, indices: AvatarIndices
) -> dict[str, Any] | None:
    if not avatar.spring_chains:
        return None
    weighted_joints = set(np.unique(avatar.joints[avatar.weights > 0]).tolist())
    extension: dict[str, Any] = {"specVersion": "1.0"}
    if avatar.colliders:
        extension["colliders"] = [
            {
                "node": indices.joint_nodes[c.joint],
                "shape": {
                    "sphere": {"offset": [float(x) for x in c.offset], "radius": float(c.radius)}
                },
            }
            for c in avatar.colliders
        ]
    groups: dict[tuple[int, ...], int] = {}  # collider set -> group index
    springs = []
    for chain in avatar.spring_chains:
        nodes = [indices.joint_nodes[joint] for joint in chain.joints]
        if chain.joints[-1] in weighted_joints:
            nodes.append(_tail_node(writer, avatar, indices, chain.joints))
        spring: dict[str, Any] = {
            "name": chain.name,
            "joints": [
                {
                    "node": node,
                    "hitRadius": float(chain.hit_radius),
                    "stiffness": float(chain.stiffness),
                    "gravityPower": float(chain.gravity_power),
                    "gravityDir": [0.0, -1.0, 0.0],
                    "dragForce": float(chain.drag),
                }
                for node in nodes
            ],
        }
        if chain.colliders:
            key = tuple(sorted(set(chain.colliders)))
            spring["colliderGroups"] = [groups.setdefault(key, len(groups))]
        springs.append(spring)
    if groups:
        extension["colliderGroups"] = [
            {"name": f"colliders{i}", "colliders": list(key)} for key, i in groups.items()
        ]
    extension["springs"] = springs
    return extension


def vrm1_meta(avatar: Avatar, thumbnail_image: int | None) -> dict[str, Any]:
    """Restrictive licence defaults: the avatar depicts a real person, who may loosen them."""
    meta: dict[str, Any] = {
        "name": display_name(avatar),
        "version": "1.0",
        "authors": [AUTHOR],
        "licenseUrl": LICENSE_URL,
        "avatarPermission": "onlyAuthor",
        "allowExcessivelyViolentUsage": False,
        "allowExcessivelySexualUsage": False,
        "commercialUsage": "personalNonProfit",
        "allowPoliticalOrReligiousUsage": False,
        "allowAntisocialOrHateUsage": False,
        "creditNotation": "required",
        "allowRedistribution": False,
        "modification": "prohibited",
    }
    if thumbnail_image is not None:
        meta["thumbnailImage"] = thumbnail_image
    return meta


def export_vrm1(avatar: Avatar, thumbnail_png: bytes | Callable[[], bytes] | None = None) -> bytes:
    """The avatar as VRM 1.0 bytes; `thumbnail_png` (PNG bytes, or a callable returning
    them, called last) becomes meta.thumbnailImage."""
    writer = GltfWriter()
    indices = write_avatar(writer, avatar)
    gltf = writer.gltf
    for material, index in zip(avatar.materials, indices.materials, strict=True):
        texture = None if material.texture is None else indices.textures[material.texture]
        gltf.materials[index].extensions["VRMC_materials_mtoon"] = _mtoon(material, texture)
    writer.use_extension("VRMC_materials_mtoon")

    thumbnail = writer.add_png_image(thumbnail_png, "thumbnail") if thumbnail_png else None
    gltf.extensions["VRMC_vrm"] = {
        "specVersion": "1.0",
        "meta": vrm1_meta(avatar, thumbnail),
        "humanoid": {
            "humanBones": {b: {"node": n} for b, n in humanoid_nodes(avatar, indices).items()}
        },
        "firstPerson": {"meshAnnotations": [{"node": indices.mesh_node, "type": "auto"}]},
        "lookAt": _look_at(avatar),
        "expressions": _expressions(avatar, indices),
    }
    writer.use_extension("VRMC_vrm")
    spring_bone = _spring_bone(writer, avatar, indices)
    if spring_bone is not None:
        gltf.extensions["VRMC_springBone"] = spring_bone
        writer.use_extension("VRMC_springBone")
    return writer.to_glb()
