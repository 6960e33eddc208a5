"""The deploy files a person copies: complete, consistent with parley's settings, hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bots.config import setting_classes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FIELDS = [field for cls in setting_classes() for field in cls.model_fields.values()]
ALIASES = {field.alias for field in FIELDS}
SECRETS = {f.alias for f in FIELDS if "SecretStr" in str(f.annotation)}
MODEL_SERVER = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_MODEL"}


def keys(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text, flags=re.MULTILINE))


def test_the_kubernetes_secret_has_every_secret_and_the_model_server() -> None:
    secret = (DEPLOY / "kubernetes" / "secret.yaml").read_text()
    found = keys(secret, r"^\s+([A-Z_]+):")
    assert found >= SECRETS | MODEL_SERVER and found <= ALIASES


def test_the_kubernetes_image_is_a_pinned_tag_with_a_pull_policy() -> None:
    deployment = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    image = re.search(r"^\s+image: (\S+)$", deployment, re.MULTILINE)
    assert image is not None and not image[1].endswith(":latest") and ":" in image[1]
    assert re.search(r"^\s+imagePullPolicy: IfNotPresent$", deployment, re.MULTILINE)


def test_the_env_example_names_only_real_settings() -> None:
    example = (DEPLOY / "parley.env.example").read_text()
    named = keys(example, r"^#?\s*([A-Z_]+)=")
    assert named >= MODEL_SERVER and named <= ALIASES


def test_the_systemd_unit_does_not_restart_a_configuration_error() -> None:
    unit = (DEPLOY / "systemd" / "parley.service").read_text()
    assert "RestartPreventExitStatus=2" in unit and "Restart=on-failure" in unit
    assert "LimitNOFILE=" in unit and "CapabilityBoundingSet=\n" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_rates_below_4_in_systemd_analyze_security() -> None:
    done = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            str(DEPLOY / "systemd" / "parley.service"),
        ],
        capture_output=True,
        text=True,
    )
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert overall is not None, done.stdout + done.stderr
    assert float(overall[1]) < 4.0


def test_compose_says_which_version_it_needs() -> None:
    compose = (DEPLOY / "docker-compose.yml").read_text()
    assert "Compose 2.24" in compose and "required: false" in compose
