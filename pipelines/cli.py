"""Command line behind the Makefile: migrate, refresh, demo, dev.

python -m pipelines.cli migrate          # alembic upgrade head on DATABASE_URL
python -m pipelines.cli refresh [--force] # every shard, headless; exit 1 on failure
python -m pipelines.cli demo             # sandbox + full refresh into SQLite + summary
python -m pipelines.cli dev              # sandbox + Dagster UI and daemon on 127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

from pipelines.db import PROJECT_ROOT, SchemaNotCurrentError, get_engine, upgrade
from pipelines.settings import Settings

SAMPLE_ROSTER = PROJECT_ROOT / "juhe_sandbox" / "data" / "sample_roster.csv"


def migrate() -> str:
    url = Settings.from_env().database_url
    upgrade(url)
    print(f"database at head: {get_engine(url).url.render_as_string(hide_password=True)}")
    return url


def refresh(*, force: bool = False, quiet: bool = False) -> bool:
    """Run refresh_job over every shard in this process; True when the run succeeded."""
    from pipelines.db import ensure_schema_current
    from pipelines.definitions import defs
    from pipelines.instance import prepare_instance
    from pipelines.partitions import range_tags

    ensure_schema_current(get_engine(Settings.from_env().database_url))
    instance = prepare_instance()
    run_config: dict = {"ops": {"qualification_responses": {"config": {"force": force}}}}
    run_config["loggers"] = {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}
    result = defs.resolve_job_def("refresh_job").execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={**range_tags(), "zizhi/trigger": "cli"},
        raise_on_error=False,
    )
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_failure_data is not None:
                error = event.step_failure_data.user_failure_data or event.step_failure_data.error
                message = getattr(error, "description", None) or getattr(error, "message", "")
                print(f"refresh failed in {event.step_key}: {message}", file=sys.stderr)
    return result.success


@contextlib.contextmanager
def demo_environment(port: int, day: int = 0) -> Iterator[None]:
    """The bundled sandbox on 127.0.0.1:port and the environment that points zizhi at it."""
    from juhe_sandbox.server import SandboxConfig, SandboxServer

    config = SandboxConfig(latency_ms=15.0, qps_limit=50, day=day)
    with SandboxServer(config, port=port) as sandbox:
        defaults = {
            "JUHE_BASE_URL": sandbox.url,
            "JUHE_API_KEY": config.api_key,
            "JUHE_QPS": "40",
            "ROSTER_PATH": str(SAMPLE_ROSTER),
        }
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
        print(f"juhe sandbox listening at {sandbox.base_url}")
        yield


def next_demo_day() -> int:
    """Each `make demo` shows the sandbox one day later, so a second demo shows changes."""
    from pipelines.settings import data_dir

    marker = data_dir() / "demo_day"
    day = int(marker.read_text()) + 1 if marker.exists() else 0
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(day))
    return day


def demo(port: int) -> int:
    from pipelines.summary import print_summary

    url = migrate()
    day = next_demo_day()
    with demo_environment(port, day):
        print(f"sandbox day {day}: " + ("first load" if day == 0 else "re-fetching every company"))
        ok = refresh(force=day > 0, quiet=True)
    print_summary(get_engine(url))
    return 0 if ok else 1


def dev(port: int) -> int:
    from pipelines.devserver import dagster_services
    from pipelines.instance import prepare_instance

    migrate()
    prepare_instance()
    # SIGTERM (a supervisor, `kill`) stops the UI, daemon and sandbox as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with demo_environment(port), dagster_services(port=3000) as url:
        print(f"Dagster UI at {url} — Ctrl-C stops the UI, the daemon and the sandbox")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zizhi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring DATABASE_URL to the head migration")
    refresh_parser = commands.add_parser("refresh", help="refresh every shard, headless")
    refresh_parser.add_argument("--force", action="store_true", help="ignore the due policy")
    for name in ("demo", "dev"):
        sub = commands.add_parser(name)
        sub.add_argument("--port", type=int, default=8765, help="port of the juhe sandbox")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        migrate()
        return 0
    if args.command == "refresh":
        try:
            return 0 if refresh(force=args.force) else 1
        except SchemaNotCurrentError as error:
            print(error, file=sys.stderr)
            return 1
    if args.command == "demo":
        return demo(args.port)
    return dev(args.port)


if __name__ == "__main__":
    sys.exit(main())
