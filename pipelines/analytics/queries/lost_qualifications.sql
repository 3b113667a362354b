-- Who lost a qualification: licences the source stopped listing (change_type 'removed')
-- detected at or after the bound time. For "this week", bind `since` to now minus 7 days.
-- Parameters   since   timestamp with time zone
SELECT
    detected_at,
    company_id,
    company_name,
    uscc,
    category,
    lic_no,
    names
FROM license_change_log
WHERE change_type = 'removed'
  AND detected_at >= :since
ORDER BY detected_at DESC, change_id DESC
