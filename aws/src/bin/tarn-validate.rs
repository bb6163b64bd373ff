//! The validate stage as a Lambda function (S3 notifications through SQS).

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_stage("validate").await
}
