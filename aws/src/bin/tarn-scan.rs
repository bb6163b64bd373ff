//! The scan stage as a Lambda function (S3 notifications through SQS): clamd at
//! `TARN_AWS_CLAMD_ADDR`, or, without it, a clamd it starts itself in `/tmp` on the definitions
//! fetched from the private mirror `TARN_AWS_CLAMAV_DEFINITIONS` (the container image of
//! aws/scan/Dockerfile installs ClamAV).

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_scan().await
}
