-- Documents that did not make it into the lake, newest first, with the reason (each document's
-- current outcome: one replayed or released since is left out).
WITH current_outcome AS (
  SELECT id, table_name, producer, received_at, status, reason,
         ROW_NUMBER() OVER (PARTITION BY id ORDER BY processed_at DESC) AS outcome_rank
  FROM documents
)
SELECT id, table_name, producer, received_at, status, reason
FROM current_outcome
WHERE outcome_rank = 1 AND status IN ('rejected', 'quarantined')
ORDER BY received_at DESC, id
LIMIT 100
