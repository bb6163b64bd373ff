//! Conformance suites: one async function per port that any implementation must pass. The local
//! implementations run them in their unit tests; the AWS implementations run the same functions
//! against a moto server. They panic (assert) on the first broken guarantee.

use crate::error::ErrorKind;
use crate::kms::{EncryptionContext, Kms};
use crate::store::{Metadata, ObjectStore};
use bytes::Bytes;

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Object store guarantees; `store` should be empty (a fresh bucket or prefix).
pub async fn object_store(store: &dyn ObjectStore) {
    // put / get / head with metadata
    let m = meta(&[("table", "events"), ("content-type", "application/json")]);
    store
        .put("id=1", Bytes::from_static(b"one"), m.clone())
        .await
        .expect("put");
    let got = store.get("id=1").await.expect("get");
    assert_eq!(&got.body[..], b"one");
    assert_eq!(got.info.metadata, m, "metadata round-trips");
    assert_eq!(got.info.size, 3);
    let head = store
        .head("id=1")
        .await
        .expect("head")
        .expect("head finds the object");
    assert_eq!(head.metadata, m);
    assert_eq!(head.size, 3);

    // overwrite replaces body and metadata
    store
        .put(
            "id=1",
            Bytes::from_static(b"uno!"),
            meta(&[("table", "other")]),
        )
        .await
        .expect("overwrite");
    let got = store.get("id=1").await.expect("get after overwrite");
    assert_eq!(&got.body[..], b"uno!");
    assert_eq!(
        got.info.metadata.get("table").map(String::as_str),
        Some("other")
    );

    // missing keys
    assert_eq!(
        store.get("id=missing").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        store
            .head("id=missing")
            .await
            .expect("head of a missing key")
            .is_none()
    );

    // conditional writes
    assert!(
        store
            .put_if_absent("cond/a", Bytes::from_static(b"first"), Metadata::new())
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_if_absent("cond/a", Bytes::from_static(b"second"), Metadata::new())
            .await
            .unwrap()
    );
    assert_eq!(
        &store.get("cond/a").await.unwrap().body[..],
        b"first",
        "a failed conditional write changes nothing"
    );

    // listing: sorted, by prefix, nested, no metadata needed
    for k in [
        "tables/t/dt=2024-01-02/b.parquet",
        "tables/t/dt=2024-01-01/a.parquet",
        "tables/u/x",
        "tablesx",
    ] {
        store
            .put(k, Bytes::from_static(b"x"), Metadata::new())
            .await
            .unwrap();
    }
    let keys: Vec<String> = store
        .list("tables/t/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        [
            "tables/t/dt=2024-01-01/a.parquet",
            "tables/t/dt=2024-01-02/b.parquet"
        ]
    );
    let keys: Vec<String> = store
        .list("tables")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys.len(), 4, "a prefix need not end at a slash: {keys:?}");
    let keys: Vec<String> = store
        .list("id=")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["id=1"]);
    assert!(store.list("nothing/").await.unwrap().is_empty());

    // delete is idempotent
    store.delete("id=1").await.unwrap();
    store.delete("id=1").await.unwrap();
    assert!(store.head("id=1").await.unwrap().is_none());
    assert!(store.list("id=").await.unwrap().is_empty());

    // bad keys are refused
    for bad in ["../escape", "a//b", "/abs"] {
        assert_eq!(
            store
                .put(bad, Bytes::from_static(b"x"), Metadata::new())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }

    // concurrent conditional writes: exactly one winner
    let results = futures_join(store, "race/key").await;
    assert_eq!(
        results.iter().filter(|w| **w).count(),
        1,
        "exactly one put_if_absent wins"
    );

    // larger bodies survive byte for byte
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put("big/object", Bytes::from(big.clone()), Metadata::new())
        .await
        .unwrap();
    assert!(store.get("big/object").await.unwrap().body == big);
}

async fn futures_join(store: &dyn ObjectStore, key: &str) -> Vec<bool> {
    let futs = (0..8u8).map(|i| store.put_if_absent(key, Bytes::from(vec![i]), Metadata::new()));
    futures::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| r.expect("put_if_absent"))
        .collect()
}

/// KMS guarantees.
pub async fn kms(kms: &dyn Kms) {
    let ctx = EncryptionContext::document("events", "00000000-0000-0000-0000-000000000001");
    let a = kms
        .generate_data_key(&ctx)
        .await
        .expect("generate_data_key");
    let b = kms
        .generate_data_key(&ctx)
        .await
        .expect("generate_data_key");
    assert_eq!(a.plaintext.len(), 32, "data keys are 256-bit");
    assert_ne!(
        &a.plaintext[..],
        &b.plaintext[..],
        "every data key is fresh"
    );
    assert!(
        !a.ciphertext.windows(32).any(|w| w == &a.plaintext[..]),
        "the wrapped key does not contain the key"
    );
    let back = kms.decrypt(&a.ciphertext, &ctx).await.expect("decrypt");
    assert_eq!(&back[..], &a.plaintext[..]);

    let other = EncryptionContext::document("events", "00000000-0000-0000-0000-000000000002");
    assert_eq!(
        kms.decrypt(&a.ciphertext, &other).await.unwrap_err().kind(),
        ErrorKind::Crypto,
        "context is bound"
    );
    let empty = EncryptionContext::default();
    assert!(
        kms.decrypt(&a.ciphertext, &empty).await.is_err(),
        "an empty context does not open a bound key"
    );

    let mut tampered = a.ciphertext.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    assert!(
        kms.decrypt(&tampered, &ctx).await.is_err(),
        "altered ciphertext is refused"
    );

    // envelope encryption on top of this KMS
    let sealed = crate::envelope::seal(kms, &ctx, b"conformance plaintext")
        .await
        .expect("seal");
    assert_eq!(
        crate::envelope::open(kms, &ctx, &sealed)
            .await
            .expect("open"),
        b"conformance plaintext"
    );
    assert!(crate::envelope::open(kms, &other, &sealed).await.is_err());
}
