//! Reconcile's provider credentials on AWS: an SSM Parameter Store SecureString (`ssm:NAME`),
//! a Secrets Manager secret (`secretsmanager:NAME`) or an environment variable (`env:NAME`).
//! Values are decrypted by the service and held only as `Credential`, which never prints.

use async_trait::async_trait;
use relay_core::reconcile::{
    Credential, CredentialError, CredentialReader, CredentialRef, env_credential,
};

use crate::describe_sdk_error;

#[derive(Debug, Clone)]
pub struct AwsCredentials {
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl AwsCredentials {
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            ssm: aws_sdk_ssm::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
        }
    }

    async fn parameter(&self, name: &str) -> Result<Credential, CredentialError> {
        let what = || format!("the SSM parameter {name}");
        let no_value = || CredentialError::NoValue {
            what: what(),
            value: "value",
        };
        let answer = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| CredentialError::Unreadable {
                what: what(),
                cause: describe_sdk_error("GetParameter", &e),
            })?;
        let parameter = answer.parameter.ok_or_else(no_value)?;
        if parameter.r#type != Some(aws_sdk_ssm::types::ParameterType::SecureString) {
            // A String parameter is stored in plain text: refuse it rather than use it.
            return Err(CredentialError::NotEncrypted(name.to_owned()));
        }
        parameter.value.map(Credential::new).ok_or_else(no_value)
    }

    async fn secret(&self, name: &str) -> Result<Credential, CredentialError> {
        let what = || format!("the secret {name}");
        let answer = self
            .secrets
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| CredentialError::Unreadable {
                what: what(),
                cause: describe_sdk_error("GetSecretValue", &e),
            })?;
        answer
            .secret_string
            .map(Credential::new)
            .ok_or_else(|| CredentialError::NoValue {
                what: what(),
                value: "string value",
            })
    }
}

#[async_trait]
impl CredentialReader for AwsCredentials {
    async fn read(&self, reference: &CredentialRef) -> Result<Credential, CredentialError> {
        match reference {
            CredentialRef::Env(name) => env_credential(name),
            CredentialRef::Ssm(name) => self.parameter(name).await,
            CredentialRef::SecretsManager(name) => self.secret(name).await,
            CredentialRef::File(_) => Err(CredentialError::FileOnAws),
        }
    }
}
