"""Pin every image prod runs to its registry digest, or check that it is.

    python scripts/pin_images.py            # resolve each prod image's tag, write manifests/envs/prod/images.yaml
    python scripts/pin_images.py --check    # exit 1 listing every image prod renders without a digest

Run it at release, after the teacherlm images are pushed and `version.yaml` names their tag, on a
machine that reaches the registries; commit `images.yaml` and tag that commit (docs/operations.md,
"Image digests"). A tag resolves to its multi-arch index digest with `crane digest IMAGE:TAG`
(go-containerregistry); TEACHERLM_DIGEST_CMD names another command that prints `sha256:...` for
the image reference given as its last argument. Needs kubectl (`bash scripts/ci-tools.sh`).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
HEADER = """\
# Every image prod runs, pinned to its registry digest: a tag can be pushed again, a digest cannot.
# Written by `python scripts/pin_images.py` (resolves each image's tag to its multi-arch index
# digest with `crane digest`); `python scripts/pin_images.py --check` fails while prod renders an
# image without one. teacherlm's own images are pinned at release, after they are pushed
# (docs/operations.md, "Image digests"). Applied after version.yaml, so an entry keeps its tag.
"""


def rendered_images(manifests: Path) -> set[str]:
    """Every container image of `kubectl kustomize manifests/envs/prod`."""
    out = subprocess.run(["kubectl", "kustomize", str(manifests / "envs" / "prod")], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    images: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    images.update(c["image"] for c in value if isinstance(c, dict) and "image" in c)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for doc in yaml.safe_load_all(out):
        walk(doc)
    return images


def split(image: str) -> tuple[str, str]:
    """(name, tag) of ``name:tag`` or ``name:tag@sha256:...`` (a registry port is part of the name)."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise SystemExit(f"{image}: no tag to resolve (pin a release tag first)")
    return name, tag


def resolve(ref: str) -> str:
    cmd = shlex.split(os.environ.get("TEACHERLM_DIGEST_CMD", "crane digest"))
    proc = subprocess.run([*cmd, ref], capture_output=True, text=True)
    digest = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise SystemExit(f"{ref}: could not resolve its digest with {' '.join(cmd)}: {proc.stderr.strip()}")
    return digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    parser.add_argument("--manifests", type=Path, default=REPO / "manifests", help=argparse.SUPPRESS)
    args = parser.parse_args()
    images = rendered_images(args.manifests)
    if args.check:
        unpinned = sorted(i for i in images if not DIGEST.search(i))
        for image in unpinned:
            print(f"not pinned by digest: {image}", file=sys.stderr)
        return 1 if unpinned else 0
    docs = []
    for image in sorted(images):
        name, tag = split(image)
        short = name.rsplit("/", 1)[-1]
        docs.append({"apiVersion": "builtin", "kind": "ImageTagTransformer", "metadata": {"name": f"pin-{short}"},
                     "imageTag": {"name": name, "newTag": tag, "digest": resolve(f"{name}:{tag}")}})  # fmt: skip
    target = args.manifests / "envs" / "prod" / "images.yaml"
    target.write_text(
        HEADER + yaml.safe_dump_all(docs, sort_keys=False, explicit_start=False).replace("\n...\n", "\n")
    )
    print(f"{target}: {len(docs)} images pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
