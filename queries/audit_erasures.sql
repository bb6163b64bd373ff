-- Every erasure, oldest first: who asked, what (the selector), why, how much went, and when the
-- last replaced files are vacuumed (after that no byte of the erased data is left). Each
-- erasure is one event of tarn-erase; its objects are listed in
-- additionaleventdata.tarnErasure.objects and each delete is a DeleteObject event of its own
-- (queries/audit_deletes.sql). `tarn erase --status` says whether the vacuum has run.
-- Runs unchanged on Athena (the CloudTrail table) and locally (tarn query --file).
SELECT eventtime,
       coalesce(useridentity.username, useridentity.principalid, useridentity.invokedby) AS who,
       json_extract_scalar(additionaleventdata, '$.tarnErasure.id') AS erasure,
       json_extract_scalar(additionaleventdata, '$.tarnErasure.selector') AS selector,
       json_extract_scalar(additionaleventdata, '$.tarnErasure.reason') AS reason,
       CAST(json_extract_scalar(additionaleventdata, '$.tarnErasure.documents') AS BIGINT) AS documents,
       CAST(json_extract_scalar(additionaleventdata, '$.tarnErasure.rows') AS BIGINT) AS erased_rows,
       CAST(json_extract_scalar(additionaleventdata, '$.tarnErasure.partitions') AS BIGINT) AS partitions,
       json_extract_scalar(additionaleventdata, '$.tarnErasure.bytes_gone_after') AS bytes_gone_after
FROM cloudtrail_logs
WHERE eventname = 'PutObject'
  AND json_extract_scalar(requestparameters, '$.key') LIKE 'erasures/%'
  AND json_extract_scalar(additionaleventdata, '$.tarnErasure.id') IS NOT NULL
ORDER BY eventtime, eventid
