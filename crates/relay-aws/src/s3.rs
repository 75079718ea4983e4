//! The S3 adapter of `relay_core::ports::BodyStore`: bodies too large to travel inline, one
//! object per event under `bodies/` in the stack's bucket (encrypted by the bucket's default
//! SSE-S3, expired by its lifecycle rule after the event retention).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use bytes::Bytes;
use relay_core::ports::{BodyStore, BodyStoreError};

use crate::describe_sdk_error;

#[derive(Debug, Clone)]
pub struct S3Bodies {
    client: Client,
    bucket: String,
}

impl S3Bodies {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The client for `sdk`: path-style addressing when an endpoint is configured (a local
    /// S3 such as moto has no per-bucket host names), virtual-hosted on AWS.
    pub fn client(sdk: &aws_config::SdkConfig) -> Client {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Client::from_conf(config)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn unavailable(what: String) -> BodyStoreError {
    BodyStoreError::Unavailable(what)
}

#[async_trait]
impl BodyStore for S3Bodies {
    async fn put(&self, key: &str, body: Bytes, sha256: &str) -> Result<(), BodyStoreError> {
        // S3 checks the body against the hash and refuses a write that does not match.
        let checksum = hex::decode(sha256)
            .ok()
            .map(|digest| base64::engine::general_purpose::STANDARD.encode(digest));
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_checksum_sha256(checksum)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| unavailable(describe_sdk_error("PutObject", &e)))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BodyStoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(unavailable(describe_sdk_error("GetObject", &e))),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| unavailable(format!("GetObject: the body broke off: {e}")))?;
        Ok(Some(body.into_bytes()))
    }

    async fn delete(&self, key: &str) -> Result<(), BodyStoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| unavailable(describe_sdk_error("DeleteObject", &e)))?;
        Ok(())
    }
}
