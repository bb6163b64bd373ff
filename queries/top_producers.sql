-- Who sends the most: documents, bytes and records per producer.
SELECT producer,
       COUNT(*) AS documents,
       SUM(size_bytes) AS bytes,
       SUM(COALESCE(records, 0)) AS records,
       SUM(CASE WHEN status = 'stored' THEN 0 ELSE 1 END) AS not_stored
FROM documents
GROUP BY producer
ORDER BY documents DESC, producer
LIMIT 10
