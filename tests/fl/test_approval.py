"""Which ClientApps a platform's node runs: checked on the run's real FAB, before any code loads."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest

from clients.node.approval import IDENTITIES_KEY, FabContents, installed_identity, pinned_identities, refusal
from clients.policy import PrivacyPolicy


def fab(app_dir: Path) -> tuple[str, bytes]:
    """(sha256, bytes) of the FAB Flower builds from `app_dir` (what `flwr run` submits)."""
    from flwr.cli.build import build_fab_from_disk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        content = build_fab_from_disk(app_dir)
    return hashlib.sha256(content).hexdigest(), content


def app_dir(path: Path, clientapp: str, code: dict[str, str] | None = None) -> Path:
    from server.deploy.appdir import write_app_dir

    write_app_dir(path, {"rounds": 2}, clientapp=clientapp)
    for name, text in (code or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def node(policy: PrivacyPolicy) -> dict[str, str]:
    return {**policy.to_node_config(), IDENTITIES_KEY: json.dumps(pinned_identities(policy))}


def test_yinqis_own_app_bundle_is_approved_by_the_safe_defaults(tmp_path: Path) -> None:
    digest, content = fab(app_dir(tmp_path / "app", "clients.app:app"))
    assert FabContents.read(content) == FabContents("clients.app:app", ())
    assert refusal("acme", node(PrivacyPolicy()), digest, content) is None


def test_an_outsiders_clientapp_is_refused_by_name(tmp_path: Path) -> None:
    """Issue 10: an outsider's own app ran on a platform's SuperNode and read its node config."""
    code = {"evil.py": "import json\nLEAK = True\n"}
    digest, content = fab(app_dir(tmp_path / "app", "evil:app", code))
    reason = refusal("acme", node(PrivacyPolicy()), digest, content)
    assert reason == (
        f"platform acme refuses ClientApp evil:app (FAB sha256 {digest[:12]}…): not approved by its policy "
        "(<safe defaults>; approved: clients.app:app)"
    )


def test_a_bundle_with_code_cannot_pass_as_the_approved_app(tmp_path: Path) -> None:
    code = {"clients/__init__.py": "", "clients/app.py": "app = None  # shadows the installed ClientApp\n"}
    digest, content = fab(app_dir(tmp_path / "app", "clients.app:app", code))
    reason = str(refusal("acme", node(PrivacyPolicy()), digest, content))
    assert "it carries code (clients/__init__.py, clients/app.py)" in reason
    assert "approve this exact FAB by its hash in the policy's fab_hashes" in reason
    reviewed = PrivacyPolicy(fab_hashes=(digest,))
    assert refusal("acme", node(reviewed), digest, content) is None


def test_installed_code_that_changed_since_the_node_started_is_refused(tmp_path: Path) -> None:
    digest, content = fab(app_dir(tmp_path / "app", "clients.app:app"))
    config = {**PrivacyPolicy().to_node_config(), IDENTITIES_KEY: json.dumps({"clients.app:app": "0" * 64})}
    reason = str(refusal("acme", config, digest, content))
    assert "the installed code is not the code approved when the node started (identity 000000000000…" in reason


def test_the_identity_pins_component_version_and_source() -> None:
    identity = installed_identity("clients.app:app")
    source = Path(__import__("clients.app").app.__file__).read_bytes()
    assert identity.source_sha256 == hashlib.sha256(source).hexdigest()
    assert identity.digest != installed_identity("yinqi.harness.toyapp:clientapp").digest
    assert identity.describe().startswith("clients.app:app @ yinqi ")


@pytest.mark.parametrize("content", [b"", b"PK\x05\x06" + b"\x00" * 18, b"not a zip"])
def test_a_bundle_that_is_not_a_fab_is_refused(content: bytes) -> None:
    digest = hashlib.sha256(content).hexdigest()
    assert "refuses ClientApp <no clientapp>" in str(refusal("acme", node(PrivacyPolicy()), digest, content))
