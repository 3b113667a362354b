-- Whose licences expire in a date range, e.g. next calendar quarter: bind `start_date` to the
-- first day of the next quarter and `end_date` to the first day of the quarter after it
-- (exclusive). Open-ended licences (长期/永久) and those without a known end never match.
-- Parameters   start_date   date (inclusive)
--              end_date     date (exclusive)
SELECT
    company_id,
    company_name,
    uscc,
    category,
    lic_no,
    names,
    grades,
    validity_end
FROM current_licenses
WHERE validity_end >= :start_date
  AND validity_end < :end_date
ORDER BY validity_end, company_id, license_id
