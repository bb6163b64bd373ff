-- Every delete, oldest first: who (the component, e.g. tarn-pipeline or tarn-compaction, or a
-- user) removed which object, and whether it succeeded. Runs unchanged on Athena and locally
-- (tarn query --file).
SELECT eventtime,
       coalesce(useridentity.username, useridentity.principalid, useridentity.invokedby) AS who,
       json_extract_scalar(requestparameters, '$.bucketName') AS bucket,
       json_extract_scalar(requestparameters, '$.key') AS object_key,
       errorcode
FROM cloudtrail_logs
WHERE eventname IN ('DeleteObject', 'DeleteObjects')
ORDER BY eventtime, eventid
