"""The database resource every asset, check and sensor uses, and the launch rule of all resources.

Anyone who reaches the Dagster UI (or its GraphQL API) can launch a run with any resource config.
So deployment settings — where the data goes, where the key goes, how much may be spent — come
from the environment only (`pipelines.settings`). A resource field that names a destination (the
database URL, the juhe endpoint) shows the value the code location loaded, and a run whose config
sets it to anything else is refused before it opens a connection; so is a field fixed in the code
whose change would waste paid calls (the juhe timeouts). A field that bounds spending may only be
narrowed. A run always uses the environment's destinations, whatever its config says.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from pipelines.db import SchemaNotCurrentError, ensure_schema_current, get_engine
from pipelines.settings import Settings


class LaunchConfigError(ValueError):
    """A run's config tried to change a deployment setting; the message names the field and the
    environment variable that decides it."""


@dataclass(frozen=True)
class LaunchConfig:
    """What a run's own config (Launchpad, GraphQL, a schedule's request) says for a resource, as
    written — not the values Dagster filled in from defaults."""

    key: str
    fields: Mapping[str, Any]

    def asks(self, name: str) -> bool:
        return name in self.fields

    def path(self, name: str) -> str:
        return f"resources.{self.key}.config.{name}"


def launch_config(context: dg.InitResourceContext) -> LaunchConfig:
    """The run config's entries for the resource being initialized (none outside a run)."""
    definition, run = context.resource_def, context.run
    keys = [key for key, value in context.all_resource_defs.items() if value is definition]
    if definition is None or run is None or not keys:
        return LaunchConfig(keys[0] if keys else "?", {})
    resources = run.run_config.get("resources")
    entry = resources.get(keys[0]) if isinstance(resources, Mapping) else None
    config = entry.get("config") if isinstance(entry, Mapping) else None
    return LaunchConfig(keys[0], config if isinstance(config, Mapping) else {})


def from_environment(variable: str) -> str:
    return f"{variable} in the deployment's environment"


def refuse_launch_changes(
    resource: dg.ConfigurableResource,
    launch: LaunchConfig,
    pinned: Mapping[str, tuple[str, Collection[object]]],
) -> None:
    """Refuse a run whose config sets a `pinned` field (field → (where its value comes from, the
    values it may have: the environment's as written and as shown, or the code's)) to anything
    else. An equal value changes nothing. The message never repeats the value asked for."""
    changed = [
        f"{launch.path(name)} cannot be set when a run is launched: it comes only from {origin}"
        for name, (origin, values) in pinned.items()
        if launch.asks(name) and getattr(resource, name) not in values
    ]
    if changed:
        raise LaunchConfigError("; ".join(changed))


class DatabaseResource(dg.ConfigurableResource):
    """zizhi's SQL database: DATABASE_URL, else the SQLite file under data/.

    `url` shows the database the code location loaded (password hidden); a run always uses
    DATABASE_URL, and a run config that sets `url` is refused."""

    url: str = Field(
        default="",
        description="DATABASE_URL when the code location loaded, password hidden (read-only: "
        "a run always uses DATABASE_URL; setting it at launch is refused)",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = Settings.from_env()
        allowed = (settings.database_url, settings.shown_database_url)
        pinned = {"url": (from_environment("DATABASE_URL"), allowed)}
        refuse_launch_changes(self, launch_config(context), pinned)

    def resolved_url(self) -> str:
        return Settings.from_env().database_url

    def get_engine(self) -> Engine:
        """The engine, after checking the schema is at the head migration."""
        engine = get_engine(self.resolved_url())
        try:
            ensure_schema_current(engine)
        except SchemaNotCurrentError as error:
            # Retrying cannot help; the message names the command that does.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        return engine
