//! The S3 body store (`S3Bodies`) on a moto server (`MOTO_ENDPOINT`) keeps the rules every body
//! store keeps (`relay_core::testkit::body_contract`). (Its writes carry the body's SHA-256,
//! which S3 checks; moto does not, so that is not tested here: the fanout checks the hash of
//! every body it reads, `relay_core::ports::bodies::read_body`.) Without `MOTO_ENDPOINT` the tests
//! fail saying so.

mod common;

use bytes::Bytes;
use common::{OPERATION_TIMEOUT, moto_endpoint, sdk_config, unique};
use relay_aws::provision::create_bodies_bucket;
use relay_core::ports::BodyStore;

#[tokio::test]
async fn s3_keeps_the_body_store_contract() {
    let sdk = sdk_config(&moto_endpoint("the S3 body store"), OPERATION_TIMEOUT).await;
    let bodies = create_bodies_bucket(&sdk, &unique("bodies"))
        .await
        .expect("bucket");
    relay_core::testkit::body_contract::body_store_contract(&bodies).await;
}

#[tokio::test]
async fn a_missing_bucket_is_unavailable_not_missing() {
    let sdk = sdk_config(&moto_endpoint("the S3 body store"), OPERATION_TIMEOUT).await;
    let bodies = relay_aws::S3Bodies::new(relay_aws::S3Bodies::client(&sdk), unique("absent"));
    let key = relay_core::ports::bodies::body_key("evt_1");
    assert!(bodies.get(&key).await.is_err());
    assert!(bodies.put(&key, Bytes::new(), "").await.is_err());
}
