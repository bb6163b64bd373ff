//! The scan stage as a Lambda function (S3 notifications through SQS): clamd at
//! `TARN_AWS_CLAMD_ADDR` (a sidecar or a container image that runs it).

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_stage("scan").await
}
