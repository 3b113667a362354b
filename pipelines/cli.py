"""Command line behind the Makefile: migrate, refresh, demo, dev, serve.

The console script `zizhi` (.venv/bin/zizhi, [project.scripts] in pyproject.toml) runs `main`;
`python -m pipelines.cli` does the same.

zizhi migrate            # alembic upgrade head on DATABASE_URL
zizhi refresh [--force]  # every shard, headless; exit 1 on failure
zizhi demo               # sandbox + full refresh into data/demo/ + summary
zizhi dev                # sandbox + Dagster UI and daemon on 127.0.0.1:3000
zizhi serve              # Dagster UI and daemon on your settings, 127.0.0.1:3000

`demo` and `dev` never touch a deployment: whatever DATABASE_URL, ROSTER_PATH, JUHE_BASE_URL or
JUHE_API_KEY say, they use their own folder (database, Dagster home, charts), the bundled sandbox
and its sample roster, so exported production settings can neither receive sandbox data nor
spend real calls.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipelines.db import (
    PROJECT_ROOT,
    SchemaNotCurrentError,
    create_private_files,
    ensure_schema_current,
    get_engine,
    private_folder,
    upgrade,
)
from pipelines.settings import (
    DEFAULT_SQLITE_NAME,
    Settings,
    SettingsError,
    hide_password,
    is_loopback,
)

SAMPLE_ROSTER = PROJECT_ROOT / "juhe_sandbox" / "data" / "sample_roster.csv"
DEMO_HOME = PROJECT_ROOT / "data" / "demo"
# Deployment settings a user may have exported; demo and dev say which ones they ignore.
DEPLOYMENT_VARIABLES = (
    "DATABASE_URL",
    "ROSTER_PATH",
    "JUHE_BASE_URL",
    "JUHE_API_KEY",
    "JUHE_QPS",
    "JUHE_DAILY_BUDGET",
)


def load_settings() -> Settings:
    """The settings, with a warning on stderr at every run when the key travels unencrypted."""
    settings = Settings.from_env()
    if settings.juhe_insecure_http_warning:
        print(f"WARNING: {settings.juhe_insecure_http_warning}", file=sys.stderr)
    return settings


def migrate() -> str:
    url = load_settings().database_url
    upgrade(url)
    print(f"database at head: {hide_password(url)}")
    return url


def refresh(*, force: bool = False, quiet: bool = False) -> bool:
    """Run refresh_job over every shard in this process; True when the run succeeded."""
    from pipelines.definitions import defs
    from pipelines.instance import prepare_instance
    from pipelines.partitions import range_tags

    ensure_schema_current(get_engine(load_settings().database_url))
    run_config: dict = {"ops": {"qualification_responses": {"config": {"force": force}}}}
    run_config["loggers"] = {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}
    with prepare_instance() as instance:
        result = defs.resolve_job_def("refresh_job").execute_in_process(
            instance=instance,
            run_config=run_config,
            tags={**range_tags(), "zizhi/trigger": "cli"},
            raise_on_error=False,
        )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data is not None:
                error = event.step_failure_data.user_failure_data or event.step_failure_data.error
                message = getattr(error, "description", None) or getattr(error, "message", "")
                print(f"refresh failed in {event.step_key}: {message}", file=sys.stderr)
    return result.success


@contextlib.contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables until the block ends."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def sandbox_day(home: Path, *, advance: bool) -> int:
    """The sandbox's day for this demo; each `make demo` advances it, so a second one shows
    changes. `make dev` shows the current day."""
    marker = home / "demo_day"
    day = int(marker.read_text()) if marker.exists() else -1
    day = day + 1 if advance or day < 0 else day
    marker.write_text(str(day))
    return day


@contextlib.contextmanager
def sandbox_environment(
    command: str, port: int, home: Path = DEMO_HOME, *, advance_day: bool = False
) -> Iterator[int]:
    """The bundled sandbox on 127.0.0.1:port, and zizhi pointed at it and at `home` whatever the
    environment says, until the block ends; yields the sandbox's day."""
    from juhe_sandbox.server import SandboxConfig, SandboxServer

    ignored = [name for name in DEPLOYMENT_VARIABLES if os.environ.get(name, "").strip()]
    home = private_folder(home.resolve())
    config = SandboxConfig(
        latency_ms=15.0, qps_limit=50, day=sandbox_day(home, advance=advance_day)
    )
    with SandboxServer(config, port=port) as sandbox:
        own = {
            "ZIZHI_DATA_DIR": str(home),
            "DATABASE_URL": f"sqlite:///{home / DEFAULT_SQLITE_NAME}",
            "DAGSTER_HOME": str(home / "dagster_home"),
            "ROSTER_PATH": str(SAMPLE_ROSTER),
            "JUHE_BASE_URL": sandbox.url,
            "JUHE_API_KEY": config.api_key,
            "JUHE_QPS": "40",
            "JUHE_DAILY_BUDGET": None,
            "JUHE_PRICE_PER_CALL": None,
            "JUHE_ALLOW_INSECURE_HTTP": None,
        }
        with environment(own):
            print(
                f"{command}: own database and Dagster home in {home}, the juhe sandbox at "
                f"{sandbox.base_url} and its sample roster"
                + (f"; ignoring {', '.join(ignored)} from your environment" if ignored else "")
            )
            yield config.day


def demo(port: int, home: Path = DEMO_HOME) -> int:
    from pipelines.summary import print_summary

    with sandbox_environment("demo", port, home, advance_day=True) as day:
        url = migrate()
        print(f"sandbox day {day}: " + ("first load" if day == 0 else "re-fetching every company"))
        ok = refresh(force=day > 0, quiet=True)
        print_summary(get_engine(url))
    return 0 if ok else 1


def run_services(host: str, port: int, what: str) -> int:
    """Dagster's UI and daemon until Ctrl-C or SIGTERM."""
    from pipelines.devserver import dagster_services
    from pipelines.instance import prepare_instance

    with prepare_instance():
        pass
    # SIGTERM (a supervisor, `kill`) stops the UI and daemon as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with dagster_services(host=host, port=port) as url:
            print(f"Dagster UI at {url} — Ctrl-C stops the UI, the daemon{what}")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def dev(port: int, home: Path = DEMO_HOME) -> int:
    with sandbox_environment("dev", port, home):
        migrate()
        return run_services("127.0.0.1", 3000, " and the sandbox")


def serve(host: str, port: int) -> int:
    """The UI and daemon on this deployment's settings (no sandbox, no migration)."""
    ensure_schema_current(get_engine(load_settings().database_url))
    if not is_loopback(host):
        print(
            f"WARNING: the Dagster UI has no login; anyone who reaches {host}:{port} can launch "
            "runs that spend your juhe budget. Put it behind your own authentication.",
            file=sys.stderr,
        )
    return run_services(host, port, "")


def main(argv: list[str] | None = None) -> int:
    """The `zizhi` command: `argv` defaults to sys.argv[1:]; returns the exit status."""
    create_private_files()
    parser = argparse.ArgumentParser(prog="zizhi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring DATABASE_URL to the head migration")
    refresh_parser = commands.add_parser("refresh", help="refresh every shard, headless")
    refresh_parser.add_argument("--force", action="store_true", help="ignore the due policy")
    for name in ("demo", "dev"):
        sub = commands.add_parser(name, help="against the bundled sandbox, in data/demo/")
        sub.add_argument("--port", type=int, default=8765, help="port of the juhe sandbox")
    serve_parser = commands.add_parser("serve", help="Dagster UI and daemon on your settings")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address the UI listens on")
    serve_parser.add_argument("--port", type=int, default=3000, help="port of the UI")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            migrate()
            return 0
        if args.command == "refresh":
            return 0 if refresh(force=args.force) else 1
        if args.command == "demo":
            return demo(args.port)
        if args.command == "serve":
            return serve(args.host, args.port)
        return dev(args.port)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except SchemaNotCurrentError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
