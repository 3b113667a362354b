"""The database resource every asset, check and sensor uses."""

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from pipelines.db import SchemaNotCurrentError, ensure_schema_current, get_engine
from pipelines.settings import Settings


class DatabaseResource(dg.ConfigurableResource):
    """zizhi's SQL database. Empty `url` means DATABASE_URL, else the SQLite file under data/."""

    url: str = Field(
        default="", description="SQLAlchemy URL; empty: DATABASE_URL or data/zizhi.sqlite"
    )

    def resolved_url(self) -> str:
        return self.url or Settings.from_env().database_url

    def get_engine(self) -> Engine:
        """The engine, after checking the schema is at the head migration."""
        engine = get_engine(self.resolved_url())
        try:
            ensure_schema_current(engine)
        except SchemaNotCurrentError as error:
            # Retrying cannot help; the message names the command that does.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        return engine
