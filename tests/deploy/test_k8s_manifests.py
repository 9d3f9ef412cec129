"""Kubernetes manifests: each overlay renders with kustomize and passes strict schema validation.

Beyond the schemas: every workload is locked down and probed, every Secret and ConfigMap key it
reads exists, the network policies isolate what they should, RabbitMQ outlasts a conversion, and
KEDA's objects (custom resources with no schema in kubernetes-validate) have the right shape.
"""

from __future__ import annotations

import configparser
import copy
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import ROOT  # noqa: I001

OVERLAYS = ("dev", "prod")
# The oldest Kubernetes release still offered by the big managed services, and the newest.
KUBERNETES_VERSIONS = ("1.33", "1.37")
# Created out of band: the JWT signing keys (docs/DEPLOY.md).
UNMANAGED_SECRETS = {"video2mp3-jwt-keys"}
