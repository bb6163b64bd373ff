-- Everything user U touched: every call made with U's identity (uploads, status reads, content
-- downloads, denied attempts), newest first. Replace 'alice' with the user name
-- (cognito:username). Runs unchanged on Athena and locally (tarn query --file).
SELECT eventtime,
       eventname,
       json_extract_scalar(requestparameters, '$.bucketName') AS bucket,
       json_extract_scalar(requestparameters, '$.key') AS object_key,
       readonly,
       sourceipaddress,
       useragent,
       errorcode,
       errormessage
FROM cloudtrail_logs
WHERE useridentity.username = 'alice'
ORDER BY eventtime DESC, eventid
