//! The status and content routes as a Lambda function (API Gateway Lambda proxy integration).

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_documents().await
}
