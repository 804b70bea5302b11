"""Photo -> AvatarParams -> Avatar: face analysis, the CNN regressor, the procedural base model."""

from .avatar import Avatar, Material, Skeleton, SphereCollider, SpringChain, Submesh
from .errors import ChibiError
from .params import AvatarParams, ParamsError

__all__ = [
    "Avatar",
    "AvatarParams",
    "ChibiError",
    "Material",
    "ParamsError",
    "Skeleton",
    "SphereCollider",
    "SpringChain",
    "Submesh",
]
