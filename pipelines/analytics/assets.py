"""qualification_report: what expires soon and what changed, as markdown and PNG charts."""

import base64
from pathlib import Path

import dagster as dg

from pipelines.analytics.report import build_report
from pipelines.resources import DatabaseResource
from pipelines.settings import data_dir


def _inline_png(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"![{path.stem}](data:image/png;base64,{encoded})"


@dg.asset(
    deps=["licenses", "license_changes", "license_names"],
    group_name="analytics",
    kinds={"sql", "matplotlib"},
    code_version="1",
    description="The licences expiring soonest, this week's changes, and charts (expiries "
    "per month "
    "for the next 12 months; changes per week by type) written under data/reports/.",
)
def qualification_report(database: DatabaseResource) -> dg.MaterializeResult:
    report = build_report(database.get_engine(), data_dir() / "reports")
    charts = {path.stem: path for path in report.chart_paths}
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(report.markdown),
            **{f"chart_{name}": dg.MetadataValue.md(_inline_png(p)) for name, p in charts.items()},
            **{f"chart_{name}_path": dg.MetadataValue.path(str(p)) for name, p in charts.items()},
        }
    )
