-- How many documents each table received per day, by what happened to them (each document's
-- current outcome: the row with its latest processed_at).
WITH current_outcome AS (
  SELECT table_name, dt, status, size_bytes,
         ROW_NUMBER() OVER (PARTITION BY id ORDER BY processed_at DESC) AS outcome_rank
  FROM documents
)
SELECT table_name, dt, status, COUNT(*) AS documents, SUM(size_bytes) AS bytes
FROM current_outcome
WHERE outcome_rank = 1
GROUP BY table_name, dt, status
ORDER BY table_name, dt, status
