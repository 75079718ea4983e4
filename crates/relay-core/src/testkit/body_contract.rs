//! The rules every `BodyStore` adapter keeps (memory, files in the data dir, S3): each adapter's
//! tests call `body_store_contract` on a fresh store.

use bytes::Bytes;

use crate::ports::BodyStore;
use crate::ports::bodies::{body_key, sha256_hex};

/// Runs every rule against `store`, which must hold no body under the keys used (`bodies/evt_c*`).
pub async fn body_store_contract(store: &dyn BodyStore) {
    let key = body_key("evt_contract_1");
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "a key never written has no body"
    );

    // A body of every byte value, larger than the inline limit, comes back byte for byte.
    let body: Vec<u8> = (0..crate::ports::bodies::INLINE_BODY_MAX_BYTES + 4096)
        .map(|i| (i % 251) as u8)
        .collect();
    let body = Bytes::from(body);
    store
        .put(&key, body.clone(), &sha256_hex(&body))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&body[..]));

    // An empty body is a body, not a missing one.
    let empty = body_key("evt_contract_2");
    store
        .put(&empty, Bytes::new(), &sha256_hex(b""))
        .await
        .unwrap();
    assert_eq!(store.get(&empty).await.unwrap().as_deref(), Some(&b""[..]));

    // Writing a key again replaces its body.
    let other = Bytes::from_static(b"{\"replaced\":true}");
    store
        .put(&key, other.clone(), &sha256_hex(&other))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(other));

    // A deleted body is gone; deleting it again, or a key never written, is not an error.
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.delete(&key).await.unwrap();
    store.delete(&body_key("evt_contract_never")).await.unwrap();
    assert_eq!(
        store.get(&empty).await.unwrap().as_deref(),
        Some(&b""[..]),
        "other keys stay"
    );
    store.delete(&empty).await.unwrap();
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        super::body_store_contract(&super::super::MemoryBodies::default()).await;
    }
}
