"""Asset check on the roster: rejected rows are reported, never silently dropped."""

import dagster as dg

from pipelines.metadata import latest_metadata
from pipelines.roster.assets import company_roster


def rejects_result(rejected: int, reasons_md: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected_rows": rejected, "reasons": dg.MetadataValue.md(reasons_md or "none")},
        description=f"{rejected} roster rows rejected; see roster_rejects for each row and reason",
    )


@dg.asset_check(asset=company_roster, description="Warns when roster rows were rejected.")
def roster_rejects(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    metadata = latest_metadata(context, company_roster.key)
    return rejects_result(
        int(metadata.get("rejected") or 0), str(metadata.get("reject_reasons") or "")
    )
