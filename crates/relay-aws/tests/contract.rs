//! The store contract suite (`relay_core::testkit::contract`) on DynamoDB: a moto server
//! (`MOTO_ENDPOINT=http://127.0.0.1:5000`), one fresh table per test. Without `MOTO_ENDPOINT`
//! every test fails: a store rule must never pass unchecked.

mod common;

async fn fresh_store() -> Box<relay_aws::DynamoStore> {
    Box::new(common::fresh_store("the DynamoDB store contract", "relay-contract").await)
}

relay_core::store_contract_tests!(fresh_store());
