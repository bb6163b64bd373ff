//! The normalize stage as a Lambda function: commits documents to the lake and the catalog.

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_normalize().await
}
