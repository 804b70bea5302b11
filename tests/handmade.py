"""A hand-built avatar: boxes on a humanoid skeleton.

It pins the exporters' own contract on paths the builder may not take: an all-zero
morph target, a MASK double-sided material, two joint influences, a hair chain.
"""

from __future__ import annotations

import numpy as np

from avatar3d.avatar import (
    MORPH_TARGET_NAMES,
    Avatar,
    Material,
    Skeleton,
    SphereCollider,
    SpringChain,
    Submesh,
)

_JOINTS = (  # name, parent, position (metres; faces +Z, the character's left is +X)
    ("hips", None, (0.0, 0.45, 0.0)), ("spine", "hips", (0.0, 0.52, 0.0)),
    ("chest", "spine", (0.0, 0.60, 0.0)), ("upperChest", "chest", (0.0, 0.66, 0.0)),
    ("neck", "upperChest", (0.0, 0.72, 0.0)), ("head", "neck", (0.0, 0.76, 0.0)),
    ("leftEye", "head", (0.06, 0.92, 0.14)), ("rightEye", "head", (-0.06, 0.92, 0.14)),
    ("leftShoulder", "upperChest", (0.04, 0.70, 0.0)),
    ("leftUpperArm", "leftShoulder", (0.10, 0.70, 0.0)),
    ("leftLowerArm", "leftUpperArm", (0.22, 0.70, 0.0)),
    ("leftHand", "leftLowerArm", (0.33, 0.70, 0.0)),
    ("rightShoulder", "upperChest", (-0.04, 0.70, 0.0)),
    ("rightUpperArm", "rightShoulder", (-0.10, 0.70, 0.0)),
    ("rightLowerArm", "rightUpperArm", (-0.22, 0.70, 0.0)),
    ("rightHand", "rightLowerArm", (-0.33, 0.70, 0.0)),
    ("leftUpperLeg", "hips", (0.06, 0.42, 0.0)),
    ("leftLowerLeg", "leftUpperLeg", (0.06, 0.22, 0.0)),
    ("leftFoot", "leftLowerLeg", (0.06, 0.05, 0.0)), ("leftToes", "leftFoot", (0.06, 0.01, 0.06)),
    ("rightUpperLeg", "hips", (-0.06, 0.42, 0.0)),
    ("rightLowerLeg", "rightUpperLeg", (-0.06, 0.22, 0.0)),
    ("rightFoot", "rightLowerLeg", (-0.06, 0.05, 0.0)),
    ("rightToes", "rightFoot", (-0.06, 0.01, 0.06)),
    ("hair1", "head", (0.0, 1.02, -0.16)), ("hair2", "hair1", (0.0, 0.92, -0.19)),
    ("hair3", "hair2", (0.0, 0.82, -0.20)),
)  # fmt: skip
_CUBE = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
_CUBE_FACES = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.uint32,
)  # fmt: skip
ZERO_TARGET = "tongueOut"


def handmade_avatar() -> Avatar:
    """A 1 m box figure with every humanoid bone, every morph target and a hair chain."""
    names = [j[0] for j in _JOINTS]
    parents = np.array([names.index(p) if p else -1 for _, p, _ in _JOINTS])
    positions = np.array([j[2] for j in _JOINTS], dtype=np.float64)
    head = names.index("head")
    centres = positions + np.where(np.arange(len(names))[:, None] == head, [0.0, 0.14, 0.0], 0.0)
    half = np.where(np.arange(len(names))[:, None] == head, [0.16, 0.16, 0.15], 0.025)
    vertices = (centres[:, None, :] + _CUBE[None] * half[:, None, :]).reshape(-1, 3)
    normals = vertices - np.repeat(centres, 8, axis=0)
    joints = np.zeros((len(vertices), 4), dtype=np.uint16)
    weights = np.zeros((len(vertices), 4), dtype=np.float32)
    joints[:, 0] = np.repeat(np.arange(len(names)), 8)
    weights[:, 0] = 1.0
    # The lower corners of limb boxes also follow the parent joint.
    blended = np.flatnonzero((np.arange(len(vertices)) % 8 < 4) & (parents[joints[:, 0]] >= 0))
    blended = blended[joints[blended, 0] != head]
    joints[blended, 1] = parents[joints[blended, 0]]
    weights[blended, :2] = (0.75, 0.25)
    is_hair = np.array([n.startswith("hair") for n in names])
    faces = (_CUBE_FACES[None] + 8 * np.arange(len(names))[:, None, None]).astype(np.uint32)
    rng = np.random.default_rng(7)
    morph_targets = {}
    for name in MORPH_TARGET_NAMES:
        delta = np.zeros_like(vertices, dtype=np.float32)
        if name != ZERO_TARGET:  # three front corners of the head box (the "face")
            moved = 8 * head + rng.choice([1, 3, 5, 7], size=3, replace=False)
            delta[moved] = rng.normal(0.0, 0.01, size=(3, 3))
        morph_targets[name] = delta
    texture = np.full((256, 256, 4), 200, dtype=np.uint8)
    texture[200:, 200:, 3] = 0  # a cut-out corner for the MASK material
    hair = [names.index(n) for n in ("hair1", "hair2", "hair3")]
    return Avatar(
        name="Handmade",
        vertices=vertices.astype(np.float32),
        normals=(normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32),
        uvs=rng.uniform(0.05, 0.7, size=(len(vertices), 2)).astype(np.float32),
        submeshes=[
            Submesh(faces[~is_hair].reshape(-1, 3), 0),
            Submesh(faces[is_hair].reshape(-1, 3), 1),
        ],
        joints=joints,
        weights=weights,
        skeleton=Skeleton(names=names, parents=parents, positions=positions),
        morph_targets=morph_targets,
        materials=[
            Material(name="body", base_color=(1.0, 0.9, 0.85, 1.0), outline_width=0.002),
            Material(
                name="hair", alpha_mode="MASK", double_sided=True, shade_color=(0.3, 0.2, 0.2)
            ),
        ],
        textures=[texture],
        spring_chains=[SpringChain(name="hair_back", joints=hair, colliders=[0])],
        colliders=[SphereCollider(joint=head, offset=(0.0, 0.14, 0.0), radius=0.15)],
        eye_offset=(0.0, 0.16, 0.14),
    )
