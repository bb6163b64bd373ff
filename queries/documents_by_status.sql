-- How many documents each table received per day, by what happened to them.
SELECT table_name, dt, status, COUNT(*) AS documents, SUM(size_bytes) AS bytes
FROM documents
GROUP BY table_name, dt, status
ORDER BY table_name, dt, status
