"""Reading rendered Kubernetes objects: find one by name, walk the workloads' containers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Doc = dict[str, Any]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    """The object of that kind whose name is `name`, or `name` plus a generator's hash."""
    (doc,) = [
        d
        for d in docs
        if d["kind"] == kind
        and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    return doc


def workloads(docs: list[Doc]) -> Iterator[tuple[str, Doc, Doc]]:
    """(name, pod spec, container) for every container of every Deployment and StatefulSet."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield doc["metadata"]["name"], pod, container
