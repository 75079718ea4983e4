//! The store contract suite (`relay_core::testkit::contract`) on DynamoDB: a moto server
//! (`MOTO_ENDPOINT=http://127.0.0.1:5000`), one fresh table per test. Without `MOTO_ENDPOINT`
//! every test fails: a store rule must never pass unchecked.

use std::time::Duration;

use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use relay_aws::provision::create_table;
use relay_aws::{DynamoStore, sdk_config_loader};

async fn fresh_store() -> Box<DynamoStore> {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: the DynamoDB store contract needs a moto server")
    });
    let sdk = sdk_config_loader(Duration::from_secs(10))
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto-tests"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let id = relay_core::ids::new_event_id();
    let table = format!("relay-contract-{}", &id[id.len() - 12..]);
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table} on moto: {e}"));
    Box::new(DynamoStore::new(client, table))
}

relay_core::store_contract_tests!(fresh_store());
