//! The definitions updater as a Lambda function (an hourly EventBridge schedule): freshclam
//! refreshes the private mirror `TARN_AWS_CLAMAV_DEFINITIONS` the scan function loads from. The
//! only part of tarn that talks to ClamAV's mirrors.

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_updater().await
}
