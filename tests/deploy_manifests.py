"""Reading deploy/: the Kubernetes kustomization's objects and the Dockerfile's stages, with
PyYAML and plain text, no kubectl or Docker needed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S = DEPLOY / "k8s"
# An image reference that names its bytes: ...@sha256:<64 lowercase hex>.
PINNED = re.compile(r"^[a-z0-9][a-z0-9.\-/:_]*@sha256:[0-9a-f]{64}$")


def kustomization() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return parsed


def k8s_objects() -> list[dict[str, Any]]:
    """Every object the kustomization's resources list (generated ConfigMaps not included)."""
    objects = []
    for name in kustomization()["resources"]:
        objects += [o for o in yaml.safe_load_all((K8S / name).read_text()) if o]
    return objects


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for workload in by_kind("StatefulSet"):
        yield workload["metadata"]["name"], workload["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield name, container


def images_in(value: object) -> Iterator[str]:
    """Every `image:` value anywhere inside a parsed YAML document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "image" and isinstance(item, str):
                yield item
            else:
                yield from images_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from images_in(item)


@dataclass
class Stage:
    """One `FROM ... AS name` stage of a Dockerfile and its instructions (continuations joined)."""

    base: str
    name: str
    instructions: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.instructions)


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[Stage]:
    lines = path.read_text().splitlines()
    joined: list[str] = []
    pending = ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            joined.append(pending.strip())
            pending = ""
    stages: list[Stage] = []
    for instruction in joined:
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", instruction, re.IGNORECASE)
        if match:
            stages.append(Stage(match[1], match[2] or ""))
        else:
            stages[-1].instructions.append(instruction)
    return stages
