"""Writes the .meta files Unity needs for this package, with stable GUIDs.

Packages installed from git or a registry are read-only in a Unity project, so Unity
cannot generate .meta files for them and ignores assets that lack one. Run this after
adding a file or folder:  python3 unity_bridge/Tests~/make_meta.py
Existing .meta files are kept (their GUIDs must never change); folders ending in "~"
are skipped because Unity does not import them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
NAME = "com.chibiavatar.bridge"
TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
IMPORTERS = {
    ".cs": "MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n"
    "  executionOrder: 0\n  icon: {instanceID: 0}\n" + TAIL,
    ".asmdef": "AssemblyDefinitionImporter:\n  externalObjects: {}\n" + TAIL,
    ".md": "TextScriptImporter:\n  externalObjects: {}\n" + TAIL,
    ".json": "TextScriptImporter:\n  externalObjects: {}\n" + TAIL,
}
FOLDER = "folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n" + TAIL
MANIFEST = "PackageManifestImporter:\n  externalObjects: {}\n" + TAIL


def meta_text(path: Path) -> str:
    relative = path.relative_to(PACKAGE).as_posix()
    guid = hashlib.md5(f"{NAME}/{relative}".encode()).hexdigest()  # stable, unique per path
    if path.is_dir():
        body = FOLDER
    elif relative == "package.json":
        body = MANIFEST
    else:
        body = IMPORTERS[path.suffix]
    return f"fileFormatVersion: 2\nguid: {guid}\n{body}"


def main() -> None:
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE)
        hidden = any(part.endswith("~") or part.startswith(".") for part in relative.parts)
        if hidden or path.suffix == ".meta":
            continue
        meta = Path(f"{path}.meta")
        if not meta.exists():
            meta.write_text(meta_text(path))
            print(f"wrote {meta.relative_to(PACKAGE)}")


if __name__ == "__main__":
    main()
