-- Failed and denied requests, newest first: refusals at the ingress (errorcode is the API's
-- error code: missing_token, token_expired, forbidden, unknown_table, too_large,
-- unsupported_content_type...) and store calls that failed. Lookups of keys that do not exist
-- (NoSuchKey) and lost conditional writes (PreconditionFailed) are how tarn probes for objects,
-- so they are left out. Runs unchanged on Athena and locally (tarn query --file).
SELECT eventtime,
       coalesce(useridentity.username, useridentity.principalid, useridentity.invokedby) AS who,
       useridentity.type AS identity_type,
       eventname,
       json_extract_scalar(requestparameters, '$.bucketName') AS bucket,
       json_extract_scalar(requestparameters, '$.key') AS object_key,
       errorcode,
       errormessage,
       sourceipaddress,
       useragent
FROM cloudtrail_logs
WHERE errorcode IS NOT NULL
  AND errorcode NOT IN ('NoSuchKey', 'PreconditionFailed')
ORDER BY eventtime DESC, eventid
