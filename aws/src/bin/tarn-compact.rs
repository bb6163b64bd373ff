//! Compaction as a Lambda function (an EventBridge schedule, or a direct invocation).

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_compaction().await
}
