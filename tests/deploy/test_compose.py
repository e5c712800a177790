"""The compose stack: validated by docker-compose's own schema (Debian's docker-compose package,
which validates without a Docker daemon), and wired together: the scrape target, the mounts, the
profiles, the drain time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.files import COMPOSE, DEPLOY, PROMETHEUS_CONFIG

COMPOSE_DIR = COMPOSE.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_docker_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: scripts/setup.sh installs Debian's package"
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=COMPOSE_DIR,
    )
    assert done.returncode == 0, done.stderr
    # docker-compose 1.29 lists every service whatever the profile; the profiles are checked below.
    assert set(done.stdout.split()) == {"ponder", "ponder-gpu", "prometheus", "grafana"}


def test_cpu_is_the_default_and_gpu_a_profile() -> None:
    services = compose()["services"]
    assert "COMPOSE_PROFILES=cpu" in (COMPOSE_DIR / ".env").read_text().splitlines()
    assert services["ponder"]["profiles"] == ["cpu"]
    assert services["ponder-gpu"]["profiles"] == ["gpu"]
    (device,) = services["ponder-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    # Prometheus scrapes `ponder:8000`: the CPU service's name, the GPU service's alias.
    assert "ponder" in services["ponder-gpu"]["networks"]["default"]["aliases"]
    assert "ponder:8000" in PROMETHEUS_CONFIG.read_text()
    for name in ("ponder", "ponder-gpu"):
        service = services[name]
        assert service["ports"] == ["8000:8000"]
        assert (
            COMPOSE_DIR / service["build"]["context"] / service["build"]["dockerfile"]
        ).is_file()
        # The drain (30 s by default) plus the engine's shutdown fits before Docker kills it.
        assert int(service["stop_grace_period"].removesuffix("s")) >= 35
        assert "PONDER_API_KEY" in service["environment"]


def test_prometheus_and_grafana_mount_the_shipped_files() -> None:
    services = compose()["services"]
    mounts: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).is_dir(), volume
                mounts[target] = str((COMPOSE_DIR / source).resolve())
    assert mounts["/etc/prometheus"] == str(PROMETHEUS_CONFIG.parent)
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert mounts["/etc/grafana/provisioning"] == str(DEPLOY / "grafana" / "provisioning")
    dashboards = Path(mounts["/var/lib/grafana/dashboards"])
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).name).is_file()
    assert home.startswith("/var/lib/grafana/dashboards/")
