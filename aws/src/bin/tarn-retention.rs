//! Retention as a Lambda function (an EventBridge schedule): erases what each table's
//! `x-tarn.retention` no longer keeps.

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::retention::run().await
}
