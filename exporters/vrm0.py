"""Avatar -> VRM 0.x (.vrm: a GLB with the `VRM` extension, specVersion "0.0").

UniVRM 0.x expects the model to face -Z in glTF space, so the whole avatar is
turned 180 degrees about Y (x and z negated for positions, normals, morph
deltas, joints and inverse binds; a rotation, so triangle winding stays). The
character's left is then at -X. Values the 0.x extension stores in Unity's
left-handed space (collider offsets, the first-person offset) are converted
from the avatar's own frame with `_to_unity`.

The concepts (humanoid bones, licence choices, MToon numbers, gaze) come from
`vrm1`; this module only translates them to the 0.x layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avatar3d.avatar import Avatar, Material

from . import vrm1
from .gltf_writer import GENERATOR, AvatarIndices, GltfWriter, write_avatar

# VRM 0.x blend shape presets: (group name, presetName, morph target it binds).
BLEND_SHAPE_PRESETS: tuple[tuple[str, str, str | None], ...] = (
    ("Neutral", "neutral", None),
    ("A", "a", "aa"), ("I", "i", "ih"), ("U", "u", "ou"), ("E", "e", "ee"), ("O", "o", "oh"),
    ("Blink", "blink", "blink"), ("Blink_L", "blink_l", "blinkLeft"),
    ("Blink_R", "blink_r", "blinkRight"),
    ("Joy", "joy", "happy"), ("Angry", "angry", "angry"), ("Sorrow", "sorrow", "sad"),
    ("Fun", "fun", "relaxed"),
    ("LookUp", "lookup", "lookUp"), ("LookDown", "lookdown", "lookDown"),
    ("LookLeft", "lookleft", "lookLeft"), ("LookRight", "lookright", "lookRight"),
    # 0.x has no surprised preset; UniVRM migrates 1.0's "surprised" to this custom group.
    ("Surprised", "unknown", "surprised"),
)  # fmt: skip

# The 0.x thumb has Proximal/Intermediate/Distal where 1.0 has Metacarpal/Proximal/Distal.
_THUMB_RENAMES = {
    f"{side}Thumb{v1}": f"{side}Thumb{v0}"
    for side in ("left", "right")
    for v1, v0 in (("Metacarpal", "Proximal"), ("Proximal", "Intermediate"))
}
# Unity AnimationCurve keys (time, value, inTangent, outTangent): a straight line 0 -> 1.
_LINEAR_CURVE = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
MTOON_VERSION = 38


def _to_unity(offset: Any) -> dict[str, float]:
    """An offset in the avatar's frame -> VRM 0.x JSON in Unity's frame.

    The file faces -Z (glTF: (-x, y, -z)) and Unity reads glTF with z negated,
    so Unity's value is (-x, y, z).
    """
    x, y, z = (float(c) for c in offset)
    return {"x": 0.0 - x, "y": y, "z": z}  # 0.0 - x: no "-0.0" in the JSON


def _srgb(linear: Any) -> list[float]:
    """Linear colour components -> sRGB (MToon 0.x stores Unity's gamma-space colours)."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return srgb.tolist()


def mtoon0_shading(shift: float, toony: float) -> tuple[float, float]:
    """MToon 1.0's (shadingShiftFactor, shadingToonyFactor) as 0.x's (_ShadeShift,
    _ShadeToony) that shade the same: 1.0 ramps from shade to lit as N.L + shift runs
    from toony - 1 to 1 - toony, 0.x as N.L runs from _ShadeShift to
    lerp(1, _ShadeShift, _ShadeToony). The inverse of the 0.x -> 1.0 migration of UniVRM
    and three-vrm's v0compat, so both load a 0.x file shaded as its 1.0 twin."""
    shift0 = -shift - (1.0 - toony)
    carry = 0.5 + 0.5 * shift0  # the migration's lerp(toony0, 1, carry)
    # rounded, so float residue such as -4e-17 does not reach the file
    return round(shift0, 9) + 0.0, round((toony - carry) / (1.0 - carry), 9)


def _material_properties(material: Material, texture: int | None) -> dict[str, Any]:
    """MToon 0.x properties as UniVRM writes them (Unity shader properties, gamma colours)."""
    blend_mode, render_type, queue, keywords = {
        "OPAQUE": (0, "Opaque", 2000, {}),
        "MASK": (1, "TransparentCutout", 2450, {"_ALPHATEST_ON": True}),
        "BLEND": (2, "Transparent", 3000, {"_ALPHABLEND_ON": True}),
    }[material.alpha_mode]
    outline = material.outline_width > 0
    if outline:
        keywords = {
            **keywords,
            "MTOON_OUTLINE_WIDTH_WORLD": True,
            "MTOON_OUTLINE_COLOR_MIXED": True,
        }
    whole = [0.0, 0.0, 1.0, 1.0]  # texture offset x, y and scale x, y
    vectors: dict[str, list[float]] = {
        name: whole
        for name in ("_MainTex", "_ShadeTexture", "_BumpMap", "_ReceiveShadowTexture",
                     "_ShadingGradeTexture", "_RimTexture", "_SphereAdd", "_EmissionMap",
                     "_OutlineWidthTexture", "_UvAnimMaskTexture")
    }  # fmt: skip
    vectors.update({
        "_Color": _srgb(material.base_color[:3]) + [float(material.base_color[3])],
        "_ShadeColor": _srgb(material.shade_color) + [1.0],
        "_RimColor": [0.0, 0.0, 0.0, 1.0],
        "_EmissionColor": [0.0, 0.0, 0.0, 1.0],
        "_OutlineColor": _srgb(vrm1.outline_color(material)) + [1.0],
    })  # fmt: skip
    shade_shift, shade_toony = mtoon0_shading(vrm1.MTOON_SHADING_SHIFT, vrm1.MTOON_SHADING_TOONY)
    floats = {
        "_Cutoff": float(material.alpha_cutoff), "_BumpScale": 1.0,
        "_ReceiveShadowRate": 1.0, "_ShadingGradeRate": 1.0,
        "_ShadeShift": shade_shift, "_ShadeToony": shade_toony,
        "_LightColorAttenuation": 0.0, "_IndirectLightIntensity": 1.0 - vrm1.MTOON_GI_EQUALIZATION,
        "_RimLightingMix": 0.0, "_RimFresnelPower": 1.0, "_RimLift": 0.0,
        "_OutlineWidth": float(material.outline_width) * 100.0,  # centimetres in 0.x
        "_OutlineScaledMaxDistance": 1.0, "_OutlineLightingMix": 1.0,
        "_UvAnimScrollX": 0.0, "_UvAnimScrollY": 0.0, "_UvAnimRotation": 0.0,
        "_MToonVersion": float(MTOON_VERSION), "_DebugMode": 0.0,
        "_BlendMode": float(blend_mode), "_OutlineWidthMode": 1.0 if outline else 0.0,
        "_OutlineColorMode": 1.0, "_CullMode": 0.0 if material.double_sided else 2.0,
        "_OutlineCullMode": 1.0,
        "_SrcBlend": 5.0 if blend_mode == 2 else 1.0, "_DstBlend": 10.0 if blend_mode == 2 else 0.0,
        "_ZWrite": 0.0 if blend_mode == 2 else 1.0, "_AlphaToMask": 1.0 if blend_mode == 1 else 0.0,
    }  # fmt: skip
    textures = {} if texture is None else {"_MainTex": texture, "_ShadeTexture": texture}
    return {
        "name": material.name,
        "shader": "VRM/MToon",
        "renderQueue": queue,
        "floatProperties": floats,
        "vectorProperties": vectors,
        "textureProperties": textures,
        "keywordMap": keywords,
        "tagMap": {"RenderType": render_type},
    }


def _meta(avatar: Avatar, thumbnail_texture: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "title": vrm1.display_name(avatar),
        "version": "1.0",
        "author": vrm1.AUTHOR,
        "contactInformation": "",
        "reference": "",
        # The same restrictive defaults as the 1.0 file (see vrm1.vrm1_meta).
        "allowedUserName": "OnlyAuthor",
        "violentUssageName": "Disallow",
        "sexualUssageName": "Disallow",
        "commercialUssageName": "Disallow",
        "otherPermissionUrl": "",
        "licenseName": "Redistribution_Prohibited",
        "otherLicenseUrl": "",
    }
    if thumbnail_texture is not None:
        meta["texture"] = thumbnail_texture
    return meta


def _first_person(
    avatar: Avatar, indices: AvatarIndices, humanoid: dict[str, int]
) -> dict[str, Any]:
    bones = vrm1.look_at_uses_bones(avatar)
    first_person: dict[str, Any] = {
        "firstPersonBone": humanoid["head"],
        "firstPersonBoneOffset": _to_unity(avatar.eye_offset),
        "meshAnnotations": [{"mesh": indices.mesh, "firstPersonFlag": "Auto"}],
        "lookAtTypeName": "Bone" if bones else "BlendShape",
    }
    keys = {"horizontalInner": "lookAtHorizontalInner", "horizontalOuter": "lookAtHorizontalOuter",
            "verticalDown": "lookAtVerticalDown", "verticalUp": "lookAtVerticalUp"}  # fmt: skip
    for key, degrees in vrm1.LOOK_AT_DEGREES.items():
        first_person[keys[key]] = {
            "curve": _LINEAR_CURVE,
            "xRange": vrm1.LOOK_AT_INPUT_MAX_DEGREES,
            "yRange": degrees if bones else 1.0,
        }
    return first_person


def _blend_shape_master(indices: AvatarIndices) -> dict[str, Any]:
    groups = []
    for name, preset, target in BLEND_SHAPE_PRESETS:
        binds = []
        if target is not None and target in indices.morph_targets:
            binds = [
                {"mesh": indices.mesh, "index": indices.morph_targets[target], "weight": 100.0}
            ]
        elif target is not None:
            continue  # the avatar lacks this shape: leave the preset out
        groups.append(
            {
                "name": name,
                "presetName": preset,
                "binds": binds,
                "materialValues": [],
                "isBinary": False,
            }
        )
    return {"blendShapeGroups": groups}


def _secondary_animation(avatar: Avatar, indices: AvatarIndices) -> dict[str, Any]:
    # 0.x groups colliders by the node they hang on.
    group_of_joint: dict[int, int] = {}
    collider_groups: list[dict[str, Any]] = []
    group_of_collider = []
    for collider in avatar.colliders:
        if collider.joint not in group_of_joint:
            group_of_joint[collider.joint] = len(collider_groups)
            collider_groups.append({"node": indices.joint_nodes[collider.joint], "colliders": []})
        group = group_of_joint[collider.joint]
        collider_groups[group]["colliders"].append(
            {"offset": _to_unity(collider.offset), "radius": float(collider.radius)}
        )
        group_of_collider.append(group)
    bone_groups = [
        {
            "comment": chain.name,
            "stiffiness": float(chain.stiffness),  # sic: the 0.x spelling
            "gravityPower": float(chain.gravity_power),
            "gravityDir": {"x": 0.0, "y": -1.0, "z": 0.0},
            "dragForce": float(chain.drag),
            "center": -1,
            "hitRadius": float(chain.hit_radius),
            # 0.x lists the chain's root; every joint below it swings.
            "bones": [indices.joint_nodes[chain.joints[0]]],
            "colliderGroups": sorted({group_of_collider[c] for c in chain.colliders}),
        }
        for chain in avatar.spring_chains
    ]
    return {"boneGroups": bone_groups, "colliderGroups": collider_groups}


def export_vrm0(avatar: Avatar, thumbnail_png: bytes | Callable[[], bytes] | None = None) -> bytes:
    """The avatar as VRM 0.x bytes, facing -Z; `thumbnail_png` (PNG bytes, or a callable
    returning them, called last) becomes meta.texture."""
    writer = GltfWriter()
    indices = write_avatar(writer, avatar, rotate_y180=True)
    thumbnail = None
    if thumbnail_png:
        thumbnail = writer.add_texture(writer.add_png_image(thumbnail_png, "thumbnail"))
    humanoid = vrm1.humanoid_nodes(avatar, indices)
    textures = [
        None if m.texture is None else indices.textures[m.texture] for m in avatar.materials
    ]
    writer.gltf.extensions["VRM"] = {
        "exporterVersion": GENERATOR,
        "specVersion": "0.0",
        "meta": _meta(avatar, thumbnail),
        "humanoid": {
            "humanBones": [
                {"bone": _THUMB_RENAMES.get(bone, bone), "node": node, "useDefaultValues": True}
                for bone, node in humanoid.items()
            ],
            "armStretch": 0.05,
            "legStretch": 0.05,
            "upperArmTwist": 0.5,
            "lowerArmTwist": 0.5,
            "upperLegTwist": 0.5,
            "lowerLegTwist": 0.5,
            "feetSpacing": 0.0,
            "hasTranslationDoF": False,
        },  # fmt: skip
        "firstPerson": _first_person(avatar, indices, humanoid),
        "blendShapeMaster": _blend_shape_master(indices),
        "secondaryAnimation": _secondary_animation(avatar, indices),
        # One entry per glTF material, in material order (write_avatar keeps the avatar's order).
        "materialProperties": [
            _material_properties(m, t) for m, t in zip(avatar.materials, textures, strict=True)
        ],
    }
    writer.use_extension("VRM")
    return writer.to_glb()
