-- Who read document X: every read of any object of one document (its landed upload `id=<id>`,
-- its sanitized content `objects/<table>/dt=.../<id>`, its status record `documents/<id>.json`,
-- a quarantined copy `<table>/<id>`), denied attempts included, oldest first.
-- Replace 00000000-0000-0000-0000-000000000000 with the document's id.
-- Runs unchanged on Athena (the CloudTrail table) and locally (tarn query --file).
SELECT eventtime,
       coalesce(useridentity.username, useridentity.principalid, useridentity.invokedby) AS who,
       useridentity.type AS identity_type,
       eventname,
       json_extract_scalar(requestparameters, '$.bucketName') AS bucket,
       json_extract_scalar(requestparameters, '$.key') AS object_key,
       sourceipaddress,
       errorcode
FROM cloudtrail_logs
WHERE eventsource = 's3.amazonaws.com'
  AND eventname IN ('GetObject', 'HeadObject')
  AND json_extract_scalar(requestparameters, '$.key') LIKE '%00000000-0000-0000-0000-000000000000%'
ORDER BY eventtime, eventid
