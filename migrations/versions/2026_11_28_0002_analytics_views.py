"""analytics views: current_licenses, expiring_licenses, license_change_log,
company_qualification_summary, fetch_health

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

The views are the documented SQL surface for analysts (docs/schema.md). Their SQL is written
here, frozen in time: a later change to a view is a new migration that replaces it.

Portable except where the engines differ, and there the migration branches on the dialect:
- ordered string aggregation: PostgreSQL has string_agg(... ORDER BY ...); SQLite (before 3.44)
  has group_concat only, which follows the order of an ordered subquery it reads from;
- day arithmetic: `date - date` on PostgreSQL, julianday() on SQLite;
- JSON arrays (changed_fields): jsonb_array_elements_text on PostgreSQL, json_each on SQLite.
Both sides give the same rows and the same text for the same data.

days_to_expiry counts from CURRENT_DATE: UTC on SQLite, the session time zone on PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Grade order, best first: 特级 > 一级 > 甲级 > 二级 > 乙级 > 三级 > 丙级 > 丁级 > 不分等级 > 暂定级.
# Unknown grades rank 99 (after every known one); NULL grades are not ranked at all.
_GRADE_RANK = """CASE {column}
        WHEN '特级' THEN 1 WHEN '一级' THEN 2 WHEN '甲级' THEN 3 WHEN '二级' THEN 4
        WHEN '乙级' THEN 5 WHEN '三级' THEN 6 WHEN '丙级' THEN 7 WHEN '丁级' THEN 8
        WHEN '不分等级' THEN 9 WHEN '暂定级' THEN 10 ELSE 99 END"""

_RANK_TO_GRADE = """CASE {column}
        WHEN 1 THEN '特级' WHEN 2 THEN '一级' WHEN 3 THEN '甲级' WHEN 4 THEN '二级'
        WHEN 5 THEN '乙级' WHEN 6 THEN '三级' WHEN 7 THEN '丙级' WHEN 8 THEN '丁级'
        WHEN 9 THEN '不分等级' WHEN 10 THEN '暂定级' END"""

# Per-dialect fragments; `l` is the licenses row, `ch` the license_changes row.
_FRAGMENTS = {
    "sqlite": {
        "names": """(SELECT group_concat(o.name, '、') FROM (
            SELECT n.name FROM license_names AS n
            WHERE n.license_id = l.id ORDER BY n.position, n.id) AS o)""",
        "grades": """(SELECT group_concat(g.grade, '、') FROM (
            SELECT n.grade FROM license_names AS n
            WHERE n.license_id = l.id AND n.grade IS NOT NULL
            GROUP BY n.grade ORDER BY """ + _GRADE_RANK.format(column="n.grade") + """, n.grade
            ) AS g)""",
        "days_to_expiry": "CAST(julianday(l.validity_end) - julianday(CURRENT_DATE) AS INTEGER)",
        "changed_fields": """(SELECT group_concat(f.value, ', ') FROM (
            SELECT e.value FROM json_each(CASE WHEN json_type(ch.changed_fields) = 'array'
                                          THEN ch.changed_fields ELSE '[]' END) AS e
            ORDER BY e.key) AS f)""",
    },
    "postgresql": {
        "names": """(SELECT string_agg(n.name, '、' ORDER BY n.position, n.id)
            FROM license_names AS n WHERE n.license_id = l.id)""",
        "grades": """(SELECT string_agg(g.grade, '、' ORDER BY g.grade_rank, g.grade) FROM (
            SELECT n.grade, """ + _GRADE_RANK.format(column="n.grade") + """ AS grade_rank
            FROM license_names AS n
            WHERE n.license_id = l.id AND n.grade IS NOT NULL
            GROUP BY n.grade) AS g)""",
        "days_to_expiry": "(l.validity_end - CURRENT_DATE)",
        "changed_fields": """(SELECT string_agg(f.value, ', ' ORDER BY f.ordinality)
            FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(ch.changed_fields) = 'array'
                     THEN ch.changed_fields ELSE CAST('[]' AS jsonb) END
            ) WITH ORDINALITY AS f(value, ordinality))""",
    },
}


def _views(dialect: str) -> dict[str, str]:
    """The SELECT of each view, in creation order (expiring_licenses reads current_licenses)."""
    sql = _FRAGMENTS[dialect]
    return {
        "current_licenses": f"""
SELECT
    l.id AS license_id,
    l.company_id,
    c.name AS company_name,
    c.uscc,
    l.category,
    l.lic_no,
    {sql["names"]} AS names,
    {sql["grades"]} AS grades,
    l.issue_org,
    l.validity_start,
    l.validity_end,
    l.validity_open_ended,
    CASE WHEN l.validity_open_ended OR l.validity_end IS NULL THEN NULL
         ELSE {sql["days_to_expiry"]} END AS days_to_expiry
FROM licenses AS l
JOIN companies AS c ON c.id = l.company_id
WHERE l.removed_at IS NULL""",
        "expiring_licenses": """
SELECT
    license_id, company_id, company_name, uscc, category, lic_no, names, grades, issue_org,
    validity_start, validity_end, validity_open_ended, days_to_expiry
FROM current_licenses
WHERE days_to_expiry BETWEEN 0 AND 90""",
        "license_change_log": f"""
SELECT
    ch.id AS change_id,
    ch.detected_at,
    ch.company_id,
    c.name AS company_name,
    c.uscc,
    ch.license_id,
    l.category,
    l.lic_no,
    {sql["names"]} AS names,
    ch.change_type,
    {sql["changed_fields"]} AS changed_fields,
    ch.source_updated_time,
    ch.run_id
FROM license_changes AS ch
JOIN companies AS c ON c.id = ch.company_id
JOIN licenses AS l ON l.id = ch.license_id""",
        "company_qualification_summary": """
WITH per_category AS (
    SELECT
        l.company_id,
        l.category,
        COUNT(DISTINCT l.id) AS licenses,
        COUNT(n.id) AS names,
        MIN(""" + _GRADE_RANK.format(column="n.grade") + """) AS best_rank
    FROM licenses AS l
    LEFT JOIN license_names AS n ON n.license_id = l.id
    WHERE l.removed_at IS NULL
    GROUP BY l.company_id, l.category
)
SELECT
    c.id AS company_id,
    c.name,
    c.uscc,
    (SELECT COUNT(*) FROM licenses AS x
     WHERE x.company_id = c.id AND x.removed_at IS NULL) AS license_count,
    p.category,
    COALESCE(p.licenses, 0) AS licenses,
    COALESCE(p.names, 0) AS names,
    """ + _RANK_TO_GRADE.format(column="p.best_rank") + """ AS highest_grade
FROM companies AS c
LEFT JOIN per_category AS p ON p.company_id = c.id""",
        "fetch_health": """
SELECT
    c.id AS company_id,
    c.name,
    c.uscc,
    c.active,
    c.fetch_status,
    c.last_error_code,
    c.last_attempt_at,
    c.last_fetched_at,
    c.consecutive_failures,
    COALESCE(a.calls_total, 0) AS calls_total,
    COALESCE(a.calls_failed, 0) AS calls_failed,
    COALESCE(a.calls_billable, 0) AS calls_billable
FROM companies AS c
LEFT JOIN (
    SELECT
        company_id,
        COUNT(*) AS calls_total,
        SUM(CASE WHEN outcome IN ('ok', 'not_found') THEN 0 ELSE 1 END) AS calls_failed,
        SUM(CASE WHEN billable THEN 1 ELSE 0 END) AS calls_billable
    FROM api_calls
    WHERE company_id IS NOT NULL
    GROUP BY company_id
) AS a ON a.company_id = c.id""",
    }


def upgrade() -> None:
    for name, select in _views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def downgrade() -> None:
    for name in reversed(list(_views(op.get_bind().dialect.name))):
        op.execute(f"DROP VIEW IF EXISTS {name}")
