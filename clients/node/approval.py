"""Which ClientApps a platform's node runs: approved ones only, checked before any app code loads.

A run's FAB (Flower App Bundle: a zip with `pyproject.toml`, any code, `.info/CONTENT`) names its
ClientApp as `MODULE:OBJECT`. A platform approves either

- a component of the yinqi package installed on its node (`clients.app:app` by default), and
  only from a FAB that carries no code (so nothing in the bundle can shadow that module). The
  component is pinned when the node starts by its identity: sha256 over the reference, the
  yinqi version and the module's source, shown by `yinqi client status`; if the installed code
  changes under a running node, its runs are refused until it restarts; or
- a whole FAB by its sha256 (a bank app with code that the platform has reviewed).

Everything else is refused with a one-line reason, before Flower installs the FAB or imports
anything from it (the warm worker calls `refusal` on the task it acquired).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import tomllib
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from clients.policy import PrivacyPolicy

IDENTITIES_KEY = "yinqi-apps"  # node_config: {component: identity} pinned at node start
FAB_METADATA = frozenset({"pyproject.toml", ".info/CONTENT", ".info/CONTENT.jwt"})


@dataclass(frozen=True)
class AppIdentity:
    """A ClientApp component of the installed yinqi package, as a platform approves it."""

    component: str
    yinqi_version: str
    source_sha256: str

    @property
    def digest(self) -> str:
        text = json.dumps(
            {
                "component": self.component,
                "package": "yinqi",
                "version": self.yinqi_version,
                "source": self.source_sha256,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        return f"{self.component} @ yinqi {self.yinqi_version} (identity sha256 {self.digest[:16]}…)"


def installed_identity(component: str) -> AppIdentity:
    """The identity of an approved component as installed here (its module is imported: only
    ever called for components the platform approved)."""
    module_name = component.partition(":")[0]
    module = importlib.import_module(module_name)
    source = Path(str(module.__file__)).read_bytes()
    return AppIdentity(component, version("yinqi"), hashlib.sha256(source).hexdigest())


def pinned_identities(policy: PrivacyPolicy) -> dict[str, str]:
    """{component: identity digest} of the policy's approved components, for the node config."""
    return {component: installed_identity(component).digest for component in policy.components}


@dataclass(frozen=True)
class FabContents:
    """What a FAB asks a node to run (read from the zip, nothing imported)."""

    clientapp: str | None
    code_files: tuple[str, ...]

    @classmethod
    def read(cls, content: bytes) -> FabContents:
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as bundle:
                names = bundle.namelist()
                project = tomllib.loads(bundle.read("pyproject.toml").decode("utf-8"))
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return cls(None, ("<not a readable FAB>",))
        components = project.get("tool", {}).get("flwr", {}).get("app", {}).get("components", {})
        clientapp = components.get("clientapp") if isinstance(components, dict) else None
        code = tuple(sorted(n for n in names if n not in FAB_METADATA and not n.endswith("/")))
        return cls(str(clientapp) if clientapp is not None else None, code)


def refusal(platform: str, node_config: dict[str, Any], fab_hash: str, fab_content: bytes) -> str | None:
    """Why this platform refuses to run the FAB (one line), or None when its policy approves it."""
    policy = PrivacyPolicy.from_node_config(node_config)
    if fab_hash in policy.fab_hashes:
        return None
    fab = FabContents.read(fab_content)
    wanted = fab.clientapp or "<no clientapp>"
    short = fab_hash[:12]
    approved = ", ".join(policy.components) or "none"
    if fab.clientapp not in policy.components:
        return (
            f"platform {platform} refuses ClientApp {wanted} (FAB sha256 {short}…): not approved by its policy "
            f"({policy.source}; approved: {approved})"
        )
    if fab.code_files:
        shown = ", ".join(fab.code_files[:3]) + (" …" if len(fab.code_files) > 3 else "")
        return (
            f"platform {platform} refuses FAB sha256 {short}…: it carries code ({shown}) that could replace "
            f"the approved {wanted}; approve this exact FAB by its hash in the policy's fab_hashes to run it"
        )
    pinned = _pinned(node_config).get(wanted)
    current = installed_identity(wanted)
    if pinned is not None and pinned != current.digest:
        return (
            f"platform {platform} refuses {wanted}: the installed code is not the code approved when the node "
            f"started (identity {pinned[:12]}…, now {current.digest[:12]}…); restart the node to approve it"
        )
    return None


def _pinned(node_config: dict[str, Any]) -> dict[str, str]:
    raw = node_config.get(IDENTITIES_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(str(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
