-- The latest records of the events table.
SELECT _received_at, _producer, user_id, action, amount, occurred_at, tags
FROM events
ORDER BY _received_at DESC, occurred_at DESC, user_id
LIMIT 20
