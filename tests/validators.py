"""Checks of glTF / VRM files shared by the test suites.

    report = gltf_validate(data, "avatar.vrm")        # Khronos glTF-Validator, via node
    assert validator_problems(report, parse_glb(data)[0]) == []
    validate_vrm_schema(parse_glb(data)[0])           # jsonschema, ../shared/vrm-schema
    assert structure_problems(data, DEFAULT_BUDGET) == []
    assert_valid_file(data, "avatar.vrm", DEFAULT_BUDGET)   # all three at once

Paths are relative to this file: CI checks the repo out elsewhere with shared/ beside it.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from glb import parse_glb, read_accessor
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SCHEMA_DIR = SHARED_DIR / "vrm-schema"
VALIDATE_SCRIPT = REPO_ROOT / "tests" / "js" / "validate.mjs"

# -- glTF-Validator ---------------------------------------------------------------


def gltf_validate_many(files: dict[str, bytes]) -> dict[str, dict]:
    """Validate several files in one node process; name -> the validator's report dict.

    The bytes go over stdin (see tests/js/validate.mjs), so nothing is written to disk.
    """
    frames = bytearray()
    for name, data in files.items():
        encoded = name.encode()
        frames += struct.pack("<I", len(encoded)) + encoded + struct.pack("<I", len(data)) + data
    run = subprocess.run(
        ["node", str(VALIDATE_SCRIPT)],
        input=bytes(frames),
        capture_output=True,
        cwd=REPO_ROOT,  # node resolves `gltf-validator` from the repo's node_modules
        timeout=300,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"gltf-validator failed: {run.stderr.decode(errors='replace')}")
    return json.loads(run.stdout)


def gltf_validate(data: bytes, name: str) -> dict:
    """The Khronos glTF-Validator's report for one file (see `gltf_validate_many`)."""
    return gltf_validate_many({name: data})[name]


def validator_problems(report: dict, gltf_json: dict | None = None) -> list[str]:
    """Errors and warnings of a validator report, minus the two that VRM makes unavoidable.

    - MULTIPLE_EXTENSIONS on `KHR_materials_unlit` of a material that also has
      `VRMC_materials_mtoon`: the validator treats KHR_materials_unlit as exclusive
      and warns whenever a material carries any other extension beside it (the
      reference MToon sample from the VRM spec gets it too). The unlit fallback is
      what plain glTF viewers show, so VRM 1.0 files keep it.
    - INVALID_EXTENSION_NAME_FORMAT on the `VRM` entry of extensionsUsed: the VRM 0.x
      spec names its extension "VRM" (no vendor prefix) and three-vrm only loads a
      0.x file whose extensionsUsed lists it.
    Infos and hints (e.g. UNSUPPORTED_EXTENSION for the VRM extensions) are not problems.
    """
    if "fatal" in report:
        return [f"validator could not read the file: {report['fatal']}"]
    problems = []
    for message in report["issues"]["messages"]:
        if message["severity"] > 1:
            continue
        if gltf_json is not None and _unavoidable(message, gltf_json):
            continue
        problems.append(f"{message['code']} at {message.get('pointer')}: {message['message']}")
    return problems


def _unavoidable(message: dict, gltf_json: dict) -> bool:
    pointer = message.get("pointer", "")
    parts = pointer.strip("/").split("/")
    if message["code"] == "MULTIPLE_EXTENSIONS":
        if (
            len(parts) == 4
            and parts[0] == "materials"
            and parts[2:] == ["extensions", "KHR_materials_unlit"]
        ):
            extensions = gltf_json["materials"][int(parts[1])].get("extensions", {})
            return set(extensions) == {"KHR_materials_unlit", "VRMC_materials_mtoon"}
    if message["code"] == "INVALID_EXTENSION_NAME_FORMAT" and parts[0] == "extensionsUsed":
        return gltf_json["extensionsUsed"][int(parts[1])] == "VRM"
    return False


# -- VRM JSON schemas -------------------------------------------------------------


@cache
def _schemas() -> tuple[Registry, dict[str, dict]]:
    """A registry of every schema keyed by its file name (how they refer to each other)."""
    roots = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for version in ("0.0", "1.0")
        for path in sorted((SCHEMA_DIR / version).glob("*.json"))
    }
    resources = [(n, Resource.from_contents(s, DRAFT202012)) for n, s in roots.items()]
    return Registry().with_resources(resources), roots


def validate_vrm_schema(gltf_json: dict) -> list[str]:
    """Validate each VRM extension present against ../shared/vrm-schema; returns their names.

    Root-level VRM (0.x), VRMC_vrm and VRMC_springBone, and every material's
    VRMC_materials_mtoon. Raises jsonschema.ValidationError on the first mismatch.
    """
    registry, roots = _schemas()
    extensions = gltf_json.get("extensions", {})
    roots_of = {"VRM": "vrm.schema.json", "VRMC_vrm": "VRMC_vrm.schema.json",
                "VRMC_springBone": "VRMC_springBone.schema.json"}  # fmt: skip
    found = [(n, extensions[n], r) for n, r in roots_of.items() if n in extensions]
    for material in gltf_json.get("materials", []):
        if "VRMC_materials_mtoon" in material.get("extensions", {}):
            mtoon = material["extensions"]["VRMC_materials_mtoon"]
            found.append(("VRMC_materials_mtoon", mtoon, "VRMC_materials_mtoon.schema.json"))
    for _name, instance, root in found:
        jsonschema.Draft202012Validator(roots[root], registry=registry).validate(instance)
    return list(dict.fromkeys(name for name, _, _ in found))


# -- structure beyond the schemas -------------------------------------------------

# VRM 1.0 humanoid parent of each bone (humanoid.md, "Parent Bone"); fingers added below.
HUMANOID_PARENTS: dict[str, str] = {
    "spine": "hips", "chest": "spine", "upperChest": "chest", "neck": "upperChest",
    "head": "neck", "leftEye": "head", "rightEye": "head", "jaw": "head",
    "leftUpperLeg": "hips", "leftLowerLeg": "leftUpperLeg", "leftFoot": "leftLowerLeg",
    "leftToes": "leftFoot", "rightUpperLeg": "hips", "rightLowerLeg": "rightUpperLeg",
    "rightFoot": "rightLowerLeg", "rightToes": "rightFoot",
    "leftShoulder": "upperChest", "leftUpperArm": "leftShoulder", "leftLowerArm": "leftUpperArm",
    "leftHand": "leftLowerArm", "rightShoulder": "upperChest", "rightUpperArm": "rightShoulder",
    "rightLowerArm": "rightUpperArm", "rightHand": "rightLowerArm",
}  # fmt: skip
for _side in ("left", "right"):
    for _finger in ("Thumb", "Index", "Middle", "Ring", "Little"):
        _parent = f"{_side}Hand"
        _segments = ("Metacarpal", "Proximal", "Distal") if _finger == "Thumb" else (
            "Proximal", "Intermediate", "Distal")  # fmt: skip
        for _segment in _segments:
            HUMANOID_PARENTS[f"{_side}{_finger}{_segment}"] = _parent
            _parent = f"{_side}{_finger}{_segment}"

REQUIRED_BONES_VRM1 = (
    "hips", "spine", "head", "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg",
    "rightLowerLeg", "rightFoot", "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm",
    "rightLowerArm", "rightHand",
)  # fmt: skip
REQUIRED_BONES_VRM0 = REQUIRED_BONES_VRM1 + ("chest", "neck")
# VRM 0.x thumb names -> VRM 1.0 names (0.x Proximal/Intermediate = 1.0 Metacarpal/Proximal).
_THUMB_0_TO_1 = {
    f"{s}Thumb{a}": f"{s}Thumb{b}"
    for s in ("left", "right")
    for a, b in (("Proximal", "Metacarpal"), ("Intermediate", "Proximal"))
}

# Index fields of the VRM extensions -> the array they index ("*" walks a list or dict).
REFERENCES: tuple[tuple[str, str], ...] = (
    ("VRMC_vrm.humanoid.humanBones.*.node", "nodes"),
    ("VRMC_vrm.meta.thumbnailImage", "images"),
    ("VRMC_vrm.firstPerson.meshAnnotations.*.node", "nodes"),
    ("VRMC_vrm.expressions.*.*.morphTargetBinds.*.node", "nodes"),
    ("VRMC_springBone.colliders.*.node", "nodes"),
    ("VRMC_springBone.colliderGroups.*.colliders.*", "VRMC_springBone.colliders"),
    ("VRMC_springBone.springs.*.joints.*.node", "nodes"),
    ("VRMC_springBone.springs.*.colliderGroups.*", "VRMC_springBone.colliderGroups"),
    ("VRM.humanoid.humanBones.*.node", "nodes"),
    ("VRM.meta.texture", "textures"),
    ("VRM.firstPerson.firstPersonBone", "nodes"),
    ("VRM.firstPerson.meshAnnotations.*.mesh", "meshes"),
    ("VRM.blendShapeMaster.blendShapeGroups.*.binds.*.mesh", "meshes"),
    ("VRM.secondaryAnimation.colliderGroups.*.node", "nodes"),
    ("VRM.secondaryAnimation.boneGroups.*.bones.*", "nodes"),
    ("VRM.secondaryAnimation.boneGroups.*.colliderGroups.*",
     "VRM.secondaryAnimation.colliderGroups"),
)  # fmt: skip


def _walk(value: Any, keys: list[str]) -> list[Any]:
    if not keys:
        return [value]
    key, rest = keys[0], keys[1:]
    if key == "*":
        children = (
            value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        )
        return [found for child in children for found in _walk(child, rest)]
    return _walk(value[key], rest) if isinstance(value, dict) and key in value else []


def _lookup(gltf: dict, path: str) -> list:
    top = gltf if "." not in path else gltf.get("extensions", {})
    found = _walk(top, path.split("."))
    return found[0] if found else []


@dataclass(frozen=True)
class Budget:
    """Performance limits a file must meet (VRChat ranks; see DESIGN.md)."""

    max_triangles: int
    max_materials: int
    max_bones: int
    max_texture_size: int  # pixels along the longer side of any material texture
    max_skinned_meshes: int = 1


# Issue 3: default = VRChat Quest "Excellent" (7,500 triangles, 1-2 materials, 75 bones, one
# texture of at most 1024 x 1024); high = PC "Excellent" (32k triangles, 4 materials, 75 bones,
# 40 MB of texture memory, which a 2048 x 2048 RGBA atlas with mipmaps fits).
DEFAULT_BUDGET = Budget(max_triangles=7_500, max_materials=2, max_bones=75, max_texture_size=1024)
HIGH_BUDGET = Budget(max_triangles=32_000, max_materials=4, max_bones=75, max_texture_size=2048)


def node_parents(gltf: dict) -> tuple[dict[int, int], list[str]]:
    """child node -> parent node, and problems (a node with two parents, a cycle)."""
    parents: dict[int, int] = {}
    problems = []
    for index, node in enumerate(gltf.get("nodes", [])):
        for child in node.get("children", []):
            if child in parents:
                problems.append(f"node {child} has two parents")
            parents[child] = index
    for start in parents:
        if start in _ancestors(parents, start):
            problems.append(f"node {start} is in a cycle")
    return parents, problems


def _ancestors(parents: dict[int, int], node: int) -> list[int]:
    chain: list[int] = []
    while node in parents and len(chain) <= len(parents):
        node = parents[node]
        chain.append(node)
    return chain


def world_matrices(gltf: dict) -> list[np.ndarray]:
    """(4, 4) world transform of every node; the node hierarchy must be a forest."""
    parents, _ = node_parents(gltf)
    locals_ = []
    for node in gltf.get("nodes", []):
        if "matrix" in node:
            locals_.append(np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T)
            continue
        x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
        matrix = np.eye(4)
        matrix[:3, :3] = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]) * np.asarray(node.get("scale", (1.0, 1.0, 1.0)))  # fmt: skip
        matrix[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
        locals_.append(matrix)
    world = []
    for index, local in enumerate(locals_):
        for ancestor in _ancestors(parents, index):
            local = locals_[ancestor] @ local
        world.append(local)
    return world


def humanoid_bones(gltf: dict) -> dict[str, int]:
    """VRM humanoid bone (VRM 1.0 names) -> node, for a VRM 1.0 or 0.x file ({} otherwise)."""
    extensions = gltf.get("extensions", {})
    if "VRMC_vrm" in extensions:
        bones = extensions["VRMC_vrm"]["humanoid"]["humanBones"]
        return {name: bone["node"] for name, bone in bones.items()}
    if "VRM" in extensions:
        bones = extensions["VRM"]["humanoid"]["humanBones"]
        return {_THUMB_0_TO_1.get(b["bone"], b["bone"]): b["node"] for b in bones}
    return {}


def _target_counts(gltf: dict) -> list[int]:
    return [len(m["primitives"][0].get("targets", [])) for m in gltf.get("meshes", [])]


def _mesh_problems(gltf: dict, binary: bytes, skin_of_mesh: dict[int, int]) -> list[str]:
    problems = []
    for m, mesh in enumerate(gltf.get("meshes", [])):
        counts = {len(p.get("targets", [])) for p in mesh["primitives"]}
        count = max(counts)
        names = mesh.get("extras", {}).get("targetNames")
        if len(counts) > 1:
            problems.append(f"mesh {m}: primitives have different morph target counts {counts}")
        if count and (names is None or len(names) != count or len(set(names)) != count):
            problems.append(f"mesh {m}: extras.targetNames must name each of its {count} targets")
        if len(mesh.get("weights", [0] * count)) != count:
            problems.append(f"mesh {m}: default weights do not match its {count} targets")
        for p, primitive in enumerate(mesh["primitives"]):
            where = f"mesh {m} primitive {p}"
            if primitive.get("extras", {}).get("targetNames", names) != names:
                problems.append(f"{where}: targetNames differ from the mesh's")
            attributes = primitive["attributes"]
            vertex_count = gltf["accessors"][attributes["POSITION"]]["count"]
            if "indices" in primitive:
                if read_accessor(gltf, binary, primitive["indices"]).max(initial=0) >= vertex_count:
                    problems.append(f"{where}: index beyond the vertex count")
            if "WEIGHTS_0" not in attributes:
                continue
            weights = read_accessor(gltf, binary, attributes["WEIGHTS_0"]).astype(np.float64)
            joints = read_accessor(gltf, binary, attributes["JOINTS_0"])
            if (weights < 0).any() or np.abs(weights.sum(axis=1) - 1.0).max() > 2e-3:
                problems.append(f"{where}: skin weights must be >= 0 and sum to 1")
            if m not in skin_of_mesh:
                problems.append(f"{where}: skinned, but no node gives it a skin")
            elif joints.max(initial=0) >= len(gltf["skins"][skin_of_mesh[m]]["joints"]):
                problems.append(f"{where}: joint index beyond the skin's joints")
    return problems


def _skin_problems(gltf: dict, binary: bytes, parents: dict, humanoid: dict) -> list[str]:
    problems = []
    world = world_matrices(gltf)
    for s, skin in enumerate(gltf.get("skins", [])):
        joints = skin["joints"]
        if "inverseBindMatrices" in skin:
            ibm = read_accessor(gltf, binary, skin["inverseBindMatrices"]).astype(np.float64)
            if len(ibm) != len(joints):
                problems.append(f"skin {s}: {len(ibm)} inverse bind matrices, {len(joints)} joints")
            else:  # stored column-major: the transpose is the matrix
                bind = ibm.reshape(-1, 4, 4).transpose(0, 2, 1) @ np.stack(
                    [world[j] for j in joints]
                )
                error = float(np.abs(bind - np.eye(4)).max())
                if error > 1e-4:
                    problems.append(
                        f"skin {s}: inverse binds miss the joints' transforms by {error:.2g}"
                    )
        roots = [j for j in joints if parents.get(j) not in set(joints)]
        if len(roots) != 1 or len(set(joints)) != len(joints):
            problems.append(
                f"skin {s}: joints must be distinct and form one tree, not {len(roots)}"
            )
        elif "hips" in humanoid and roots[0] != humanoid["hips"]:
            problems.append(f"skin {s}: the joint tree is rooted at node {roots[0]}, not at hips")
    return problems


def _vrm_problems(gltf: dict, parents: dict[int, int], humanoid: dict[str, int]) -> list[str]:
    extensions, nodes = gltf["extensions"], gltf.get("nodes", [])
    vrm0 = "VRM" in extensions
    problems = [
        f"{field} = {index} is not one of the {len(_lookup(gltf, target))} {target}"
        for field, target in REFERENCES
        for index in _walk(extensions, field.split("."))
        if not 0 <= index < len(_lookup(gltf, target))
    ]
    if problems:
        return problems
    required = REQUIRED_BONES_VRM0 if vrm0 else REQUIRED_BONES_VRM1
    problems += [f"humanoid bone {b} is not mapped" for b in required if b not in humanoid]
    if vrm0 and len(extensions["VRM"]["humanoid"]["humanBones"]) != len(humanoid):
        problems.append("a humanoid bone is mapped twice")
    if len(set(humanoid.values())) != len(humanoid):
        problems.append("two humanoid bones share a node")
    for bone, node in humanoid.items():
        parent = HUMANOID_PARENTS.get(bone)
        while parent is not None and parent not in humanoid:
            parent = HUMANOID_PARENTS.get(parent)  # optional bones may be left out
        if parent is not None and humanoid[parent] not in _ancestors(parents, node):
            problems.append(f"humanoid bone {bone} is not below {parent} in the node tree")
    # Morph target binds: (mesh, index) pairs.
    counts = _target_counts(gltf)
    if vrm0:
        groups = extensions["VRM"]["blendShapeMaster"]["blendShapeGroups"]
        binds = [(b["mesh"], b["index"], g["name"]) for g in groups for b in g.get("binds", [])]
    else:
        binds = []
        for name, expression in _expressions(extensions["VRMC_vrm"]).items():
            for b in expression.get("morphTargetBinds", []):
                binds.append((nodes[b["node"]].get("mesh", -1), b["index"], name))
        annotated = [
            a["node"]
            for a in _walk(extensions, "VRMC_vrm.firstPerson.meshAnnotations.*".split("."))
        ]
        problems += [f"first-person annotation on node {n} without a mesh" for n in annotated
                     if "mesh" not in nodes[n]]  # fmt: skip
        if extensions["VRMC_vrm"].get("lookAt", {}).get("type") == "bone":
            problems += [
                f"lookAt type bone needs {e}" for e in ("leftEye", "rightEye") if e not in humanoid
            ]
    problems += [f"expression {name}: no morph target {i} on mesh {m}" for m, i, name in binds
                 if m < 0 or not 0 <= i < counts[m]]  # fmt: skip
    for spring in _walk(extensions, "VRMC_springBone.springs.*".split(".")):
        chain = [j["node"] for j in spring["joints"]]
        # Each joint is the head of a pair whose tail, the next joint, lies below it.
        if any(head not in _ancestors(parents, tail) for head, tail in zip(chain, chain[1:])):  # noqa: B905
            problems.append(f"spring {spring.get('name')}: a joint is not below the one before")
    if vrm0:
        names = [p.get("name") for p in extensions["VRM"].get("materialProperties", [])]
        if names != [m.get("name") for m in gltf.get("materials", [])]:
            problems.append("materialProperties must list every material once, in material order")
    return problems


def _expressions(vrm: dict) -> dict[str, dict]:
    groups = vrm.get("expressions", {})
    return {**groups.get("preset", {}), **groups.get("custom", {})}


def _budget_problems(gltf: dict, binary: bytes, budget: Budget) -> list[str]:
    triangles = sum(gltf["accessors"][p["indices"]]["count"] // 3
                    for mesh in gltf.get("meshes", []) for p in mesh["primitives"])  # fmt: skip
    checks = [
        ("triangles", triangles, budget.max_triangles),
        ("materials", len(gltf.get("materials", [])), budget.max_materials),
        ("bones", sum(len(s["joints"]) for s in gltf.get("skins", [])), budget.max_bones),
        (
            "skinned meshes",
            sum("skin" in n for n in gltf.get("nodes", [])),
            budget.max_skinned_meshes,
        ),
    ]
    # Images the materials sample (the VRM thumbnail is not one of them).
    textures = set()
    for material in gltf.get("materials", []):
        infos = [material.get("pbrMetallicRoughness", {}).get("baseColorTexture", {})]
        infos += list(material.get("extensions", {}).get("VRMC_materials_mtoon", {}).values())
        textures |= {i["index"] for i in infos if isinstance(i, dict) and "index" in i}
    for image in {gltf["textures"][t]["source"] for t in textures}:
        view = gltf["bufferViews"][gltf["images"][image]["bufferView"]]
        start = view.get("byteOffset", 0)
        size = Image.open(io.BytesIO(binary[start : start + view["byteLength"]])).size
        checks.append((f"image {image} size", max(size), budget.max_texture_size))
    return [f"{what}: {value} > budget {limit}" for what, value, limit in checks if value > limit]


def structure_problems(data: bytes, budget: Budget | None = None) -> list[str]:
    """Everything the schemas cannot see; [] when the file is sound.

    Float accessors finite; indices in range; skin weights >= 0 summing to 1; morph
    targets equal in number per primitive and named once each (extras.targetNames);
    inverse bind matrices inverse to the joints' world transforms; the node hierarchy a
    forest and the skin's joints one tree rooted at hips; every required humanoid bone
    (0.x: also chest and neck) on its own node, below its humanoid parent; every index
    in the VRM extensions pointing at something that exists (expressions at morph
    targets); each spring joint below the one before it; optionally a `Budget`.
    """
    gltf, binary = parse_glb(data)
    problems = [
        f"accessor {index} holds NaN or infinity"
        for index, accessor in enumerate(gltf.get("accessors", []))
        if accessor["componentType"] == 5126
        and not np.isfinite(read_accessor(gltf, binary, index)).all()
    ]
    parents, tree_problems = node_parents(gltf)
    if tree_problems:
        return problems + tree_problems
    humanoid = humanoid_bones(gltf)
    skin_of_mesh = {
        n["mesh"]: n["skin"] for n in gltf.get("nodes", []) if "mesh" in n and "skin" in n
    }
    problems += _mesh_problems(gltf, binary, skin_of_mesh)
    problems += _skin_problems(gltf, binary, parents, humanoid)
    if {"VRM", "VRMC_vrm"} & set(gltf.get("extensions", {})):
        problems += _vrm_problems(gltf, parents, humanoid)
    if budget is not None:
        problems += _budget_problems(gltf, binary, budget)
    return problems


def expression_targets(gltf: dict) -> dict[str, list[str]]:
    """Expression (1.0 name; 0.x presetName, or group name when "unknown") -> bound target names."""
    extensions, nodes = gltf.get("extensions", {}), gltf.get("nodes", [])
    names = [m.get("extras", {}).get("targetNames", []) for m in gltf.get("meshes", [])]
    if "VRMC_vrm" in extensions:
        return {
            name: [
                names[nodes[b["node"]]["mesh"]][b["index"]] for b in e.get("morphTargetBinds", [])
            ]
            for name, e in _expressions(extensions["VRMC_vrm"]).items()
        }
    if "VRM" in extensions:
        return {
            g["name"] if g["presetName"] == "unknown" else g["presetName"]: [
                names[b["mesh"]][b["index"]] for b in g.get("binds", [])
            ]
            for g in extensions["VRM"]["blendShapeMaster"]["blendShapeGroups"]
        }
    return {}


def assert_valid_file(
    data: bytes, name: str, budget: Budget | None = None, report: dict | None = None
) -> None:
    """glTF-Validator (0 errors / warnings but the unavoidable VRM ones), VRM schemas, structure.

    Pass `report` when the file was already validated (e.g. by `gltf_validate_many`).
    """
    gltf, _ = parse_glb(data)
    report = report if report is not None else gltf_validate(data, name)
    problems = validator_problems(report, gltf)
    validate_vrm_schema(gltf)
    problems += structure_problems(data, budget)
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
