-- Documents that did not make it into the lake, newest first, with the reason.
SELECT id, table_name, producer, received_at, status, reason
FROM documents
WHERE status IN ('rejected', 'quarantined')
ORDER BY received_at DESC, id
LIMIT 100
