//! API Gateway's Lambda authorizer: Cognito tokens and the table/group rules.

#[tokio::main]
async fn main() -> Result<(), tarn_aws::lambda::BoxError> {
    tarn_aws::lambda::run_authorizer().await
}
