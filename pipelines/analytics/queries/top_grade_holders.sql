-- Which companies hold a 特级 or 甲级 qualification on a current (not removed) licence,
-- with how many qualification names of each grade they hold.
SELECT
    c.id AS company_id,
    c.name AS company_name,
    c.uscc,
    SUM(CASE WHEN n.grade = '特级' THEN 1 ELSE 0 END) AS special_grade_names,
    SUM(CASE WHEN n.grade = '甲级' THEN 1 ELSE 0 END) AS grade_a_names
FROM companies AS c
JOIN licenses AS l ON l.company_id = c.id
JOIN license_names AS n ON n.license_id = l.id
WHERE l.removed_at IS NULL
  AND n.grade IN ('特级', '甲级')
GROUP BY c.id, c.name, c.uscc
ORDER BY c.id
