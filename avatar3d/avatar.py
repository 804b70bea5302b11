"""`Avatar`: the format-neutral result of building an avatar.

Units and conventions: metres, Y up, the avatar faces +Z (VRM 1.0 / glTF
convention; the character's left is +X), T-pose, feet on Y = 0. Exporters
convert from this (e.g. VRM 0.x turns it to face -Z) and never reach into the
builder's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .params import AvatarParams

# VRM humanoid bones the avatar always has, in parent-before-child order.
# Names are the VRM 1.0 humanoid names (VRM 0.x uses the same ones).
REQUIRED_HUMANOID_BONES: tuple[str, ...] = (
    "hips", "spine", "head",
    "leftUpperArm", "leftLowerArm", "leftHand",
    "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot",
    "rightUpperLeg", "rightLowerLeg", "rightFoot",
)  # fmt: skip
# VRM 0.x also requires chest and neck; we always build them.
VRM0_REQUIRED_HUMANOID_BONES: tuple[str, ...] = REQUIRED_HUMANOID_BONES + ("chest", "neck")

VRM_EXPRESSION_PRESETS: tuple[str, ...] = (
    "happy", "angry", "sad", "relaxed", "surprised",
    "aa", "ih", "ou", "ee", "oh",
    "blink", "blinkLeft", "blinkRight",
    "lookUp", "lookDown", "lookLeft", "lookRight",
)  # fmt: skip

ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip

OCULUS_VISEMES: tuple[str, ...] = tuple(
    f"viseme_{v}"
    for v in ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
)

# Every morph target the base model carries, in this order.
MORPH_TARGET_NAMES: tuple[str, ...] = VRM_EXPRESSION_PRESETS + ARKIT_BLENDSHAPES + OCULUS_VISEMES


@dataclass
class Skeleton:
    """Joints in rest pose (T-pose).

    names: (B,) bone names; humanoid bones use VRM names, others (hair) any unique name.
    parents: (B,) int, index of the parent joint, -1 for the root (hips).
    positions: (B, 3) float64, world-space rest positions in metres.
    Joints carry no rotation in rest pose; parents come before children.
    """

    names: list[str]
    parents: np.ndarray
    positions: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)

    def local_offsets(self) -> np.ndarray:
        """(B, 3) translation of each joint relative to its parent (the root's is its position)."""
        offsets = self.positions.copy()
        has_parent = self.parents >= 0
        offsets[has_parent] -= self.positions[self.parents[has_parent]]
        return offsets


@dataclass
class Material:
    """A toon material; colours are linear RGBA factors multiplied with the texture.

    texture: index into `Avatar.textures` for the base colour, or None.
    shade_color: linear RGB of the shaded side (MToon's shadeColorFactor).
    outline_width: metres (0 disables the outline).
    """

    name: str
    base_color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    texture: int | None = 0
    shade_color: tuple[float, float, float] = (0.8, 0.72, 0.72)
    alpha_mode: str = "OPAQUE"  # OPAQUE | MASK | BLEND
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    outline_width: float = 0.0


@dataclass
class Submesh:
    """Triangles drawn with one material: faces (F, 3) uint32 indexing the avatar's vertices."""

    faces: np.ndarray
    material: int


@dataclass
class SpringChain:
    """A chain of joints (indices into the skeleton, root first) driven by spring physics.

    stiffness, drag: VRM springBone units (stiffness ~0..4, drag 0..1);
    hit_radius: metres; gravity_power: 0..; colliders: indices into `Avatar.colliders`.
    """

    name: str
    joints: list[int]
    stiffness: float = 1.0
    drag: float = 0.4
    gravity_power: float = 0.2
    hit_radius: float = 0.02
    colliders: list[int] = field(default_factory=list)


@dataclass
class SphereCollider:
    """A sphere attached to a joint: offset (3,) in metres relative to the joint, radius metres."""

    joint: int
    offset: tuple[float, float, float]
    radius: float


@dataclass
class Avatar:
    """A rigged, skinned chibi avatar with morph targets, ready for any exporter.

    vertices: (V, 3) float32 metres; normals: (V, 3) float32 unit; uvs: (V, 2) float32
      with glTF's convention (origin top-left of the image).
    joints: (V, 4) uint16 skeleton indices; weights: (V, 4) float32, rows sum to 1.
    morph_targets: name -> (V, 3) float32 position deltas in metres, in
      `MORPH_TARGET_NAMES` order (dicts keep insertion order).
    textures: list of (H, W, 4) uint8 sRGB RGBA images.
    eye_offset: (3,) metres, the point between the eyes relative to the head joint
      (VRM lookAt offsetFromHeadBone).
    """

    name: str
    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    submeshes: list[Submesh]
    joints: np.ndarray
    weights: np.ndarray
    skeleton: Skeleton
    morph_targets: dict[str, np.ndarray]
    materials: list[Material]
    textures: list[np.ndarray]
    spring_chains: list[SpringChain] = field(default_factory=list)
    colliders: list[SphereCollider] = field(default_factory=list)
    eye_offset: tuple[float, float, float] = (0.0, 0.06, 0.08)
    params: AvatarParams | None = None

    @property
    def triangle_count(self) -> int:
        return int(sum(len(s.faces) for s in self.submeshes))

    @property
    def height(self) -> float:
        return float(self.vertices[:, 1].max() - self.vertices[:, 1].min())
