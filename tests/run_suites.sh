#!/usr/bin/env bash
# `make test`: the whole suite on SQLite, then on PostgreSQL when a server is reachable.
# Outside CI a missing PostgreSQL is reported as skipped; with CI=true it is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

pytest_bin=.venv/bin/pytest
workers=${ZIZHI_TEST_WORKERS:-2}
pg_url=${ZIZHI_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0

run_suite() {  # backend label
  echo
  echo "======== zizhi test suite on $2 ========"
  ZIZHI_TEST_DB=$1 "$pytest_bin" -n "$workers" --dist loadgroup --junitxml="$reports/$1.xml" "${@:3}" || status=1
}

run_suite sqlite SQLite "$@"

if .venv/bin/python - "$pg_url" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
then
  run_suite postgresql PostgreSQL "$@"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at $pg_url: in CI the PostgreSQL suite is required." >&2
  status=1
else
  echo
  echo "SKIPPED the PostgreSQL suite: no server reachable at $pg_url (set ZIZHI_TEST_PG_URL to run it)."
fi

.venv/bin/python - "$reports" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
totals = {"passed": 0, "failed": 0, "skipped": 0}
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        totals["passed"] += tests - skipped - failed
        totals["failed"] += failed
        totals["skipped"] += skipped
print(f"zizhi: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
PY
exit $status
