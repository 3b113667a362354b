"""The install is reproducible and the project explains itself to its tools: uv.lock matches
pyproject.toml and requirements.lock is its export, the pins agree, `zizhi` is a console script,
and `dg` sees the code location `zizhi` without a warning."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from pipelines.db import PROJECT_ROOT

BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Exactly what `make lock` writes to requirements.lock.
EXPORT = ["export", "--locked", "--offline", "--extra", "dev", "--no-emit-project", "--no-header"]


def uv_environment() -> dict[str, str]:
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    return environment


def requirement_pins(requirements: list[str]) -> dict[str, str]:
    """{name: version} of the `name==version` requirements."""
    pins = {}
    for requirement in requirements:
        if match := re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^,;\s]+)", requirement):
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def locked_versions() -> dict[str, set[str]]:
    """{package: its versions} in uv.lock (a package may be locked per Python version)."""
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package.get("version", ""))
    return versions


def test_uv_lock_is_current_and_requirements_lock_is_its_export() -> None:
    if importlib.util.find_spec("uv") is None:
        pytest.skip("uv is not installed in this venv (`make install` installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "uv", *EXPORT],
        cwd=PROJECT_ROOT,
        env=uv_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"uv.lock does not match pyproject.toml: run `make lock` and commit uv.lock and "
        f"requirements.lock\n{done.stderr}"
    )
    assert done.stdout == (PROJECT_ROOT / "requirements.lock").read_text(encoding="utf-8"), (
        "requirements.lock is not the export of uv.lock: run `make lock` and commit both"
    )


def test_pins_agree() -> None:
    """The Dagster family is pinned exactly, the lock holds those versions, and the Makefile
    bootstraps the uv the dev extra pins."""
    project = PYPROJECT["project"]
    pins = requirement_pins(project["dependencies"])
    extras = project["optional-dependencies"]
    dev, production = requirement_pins(extras["dev"]), requirement_pins(extras["production"])
    family = {
        "dagster": "1.13.27",
        "dagster-webserver": "1.13.27",
        "dagster-graphql": "1.13.27",
        "dagster-postgres": "0.29.27",
    }
    assert {name: pins.get(name) for name in family} == family
    assert production.get("dagster-docker") == "0.29.27"
    assert dev.get("dagster-dg-cli") == "1.13.27"
    locked = locked_versions()
    for name, version in {**family, **production, **dev}.items():
        assert locked.get(name) == {version}, f"{name}: uv.lock has {locked.get(name)}"
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    bootstrap = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert bootstrap is not None and bootstrap[1] == dev["uv"]


def test_production_extra_installs_what_the_production_instance_loads() -> None:
    """Every `module:` of deploy/dagster.production.yaml comes from zizhi, Dagster or a
    dependency declared for production."""
    config = (PROJECT_ROOT / "deploy" / "dagster.production.yaml").read_text(encoding="utf-8")
    modules = set(re.findall(r"^\s*module:\s*(\S+)", config, re.MULTILINE))
    assert "dagster_docker" in modules
    project = PYPROJECT["project"]
    declared = set(requirement_pins(project["dependencies"])) | set(
        requirement_pins(project["optional-dependencies"]["production"])
    )
    for module in modules:
        top = module.split(".")[0]
        assert top in {"pipelines", "dagster"} or top.replace("_", "-") in declared, module


def test_zizhi_is_a_console_script() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="zizhi")
    assert script.value == "pipelines.cli:main"
    from pipelines import cli

    assert script.load() is cli.main
    executable = BIN / "zizhi"
    assert executable.exists(), f"{executable} is missing: run `make install`"
    done = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: zizhi")
    for command in ("migrate", "refresh", "demo", "dev", "serve"):
        assert command in done.stdout


def test_workspace_and_dg_name_the_same_code_location() -> None:
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    (location,) = workspace["load_from"]
    project = PYPROJECT["tool"]["dg"]["project"]
    assert location["python_module"]["location_name"] == project["code_location_name"] == "zizhi"
    assert location["python_module"]["module_name"] == project["code_location_target_module"]


@pytest.mark.slow
def test_dg_check_defs_loads_the_project_quietly(tmp_path: Path) -> None:
    """`dg check defs` with a Dagster home as `make defs` prepares it: loads, and says nothing
    but that (no warning, no telemetry banner)."""
    dg = BIN / "dg"
    if not dg.exists():
        pytest.skip("dg is not installed in this venv (the dev extra installs dagster-dg-cli)")
    home = tmp_path / "dagster_home"
    home.mkdir(mode=0o700)
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    environment = {**os.environ, "DAGSTER_HOME": str(home), "HOME": str(tmp_path)}
    environment.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(dg), "check", "defs"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "All definitions loaded successfully." in output
    assert not re.search(r"warning|telemetry", output, re.IGNORECASE), output
    assert not (tmp_path / ".dagster").exists(), "dg wrote to ~/.dagster"
