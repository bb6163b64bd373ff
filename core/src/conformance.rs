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

    etags_and_conditional_writes(store).await;
    server_side_copy(store).await;
    ranged_reads(store).await;
    multipart_uploads(store).await;

    // larger bodies survive byte for byte, and are read in part at any offset
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put("big/object", Bytes::from(big.clone()), Metadata::new())
        .await
        .unwrap();
    assert!(store.get("big/object").await.unwrap().body == big);
    let n = big.len() as u64;
    for range in [n - 8..n, 0..4, 1_234_567..1_334_567, n - 65_536..n + 100] {
        let got = store.get_range("big/object", range.clone()).await.unwrap();
        let end = range.end.min(n) as usize;
        assert!(
            got[..] == big[range.start as usize..end],
            "the bytes {range:?} of a large object"
        );
    }
}

/// Multipart uploads: parts stored by number (a part sent again replaces it), listed with their
/// sizes, assembled in order with the upload's metadata, nothing visible before completion; the
/// completion's checks; conditional completion; aborts.
async fn multipart_uploads(store: &dyn ObjectStore) {
    use crate::store::{MIN_PART_SIZE, Part};
    let min = MIN_PART_SIZE as usize;
    let body: Vec<u8> = (0..2 * min + 1000).map(|i| (i * 13 % 251) as u8).collect();
    let m = meta(&[("table", "photos"), ("content-type", "image/jpeg")]);
    let key = "id=multi";
    let upload = store
        .create_multipart(key, m.clone())
        .await
        .expect("create");
    // part 2 first, part 1 twice: the second replaces the first
    let etag2 = store
        .upload_part(key, &upload, 2, Bytes::from(body[min..2 * min].to_vec()))
        .await
        .expect("part 2");
    store
        .upload_part(key, &upload, 1, Bytes::from(vec![0u8; min]))
        .await
        .expect("part 1, first try");
    let etag1 = store
        .upload_part(key, &upload, 1, Bytes::from(body[..min].to_vec()))
        .await
        .expect("part 1 again");
    let etag3 = store
        .upload_part(key, &upload, 3, Bytes::from(body[2 * min..].to_vec()))
        .await
        .expect("part 3");
    assert!(
        store.head(key).await.unwrap().is_none(),
        "nothing is visible before completion"
    );
    let parts = store.list_parts(key, &upload).await.expect("list parts");
    let listed: Vec<(u32, u64)> = parts.iter().map(|p| (p.number, p.size)).collect();
    assert_eq!(
        listed,
        [(1, min as u64), (2, min as u64), (3, 1000)],
        "parts by number, with their sizes"
    );
    for (p, etag) in parts.iter().zip([&etag1, &etag2, &etag3]) {
        assert_eq!(p.etag.trim_matches('"'), etag.trim_matches('"'));
    }
    let named = |list: &[(u32, &String)]| -> Vec<Part> {
        list.iter()
            .map(|(n, e)| Part {
                number: *n,
                etag: (*e).clone(),
                size: 0,
            })
            .collect()
    };
    // refused completions change nothing
    for bad in [
        named(&[]),
        named(&[(2, &etag2), (1, &etag1)]),
        named(&[(1, &etag2)]),
        // part 3 is too small to be followed by anything
        named(&[(1, &etag1), (3, &etag3), (4, &etag3)]),
    ] {
        let e = store
            .complete_multipart(key, &upload, &bad, false)
            .await
            .expect_err("a bad completion is refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
    assert!(store.head(key).await.unwrap().is_none());
    assert!(
        store
            .complete_multipart(
                key,
                &upload,
                &named(&[(1, &etag1), (2, &etag2), (3, &etag3)]),
                true,
            )
            .await
            .expect("complete")
    );
    let got = store.get(key).await.unwrap();
    assert!(got.body == body, "the parts in order, byte for byte");
    assert_eq!(got.info.metadata, m, "the metadata given at create");
    assert_eq!(got.info.size, body.len() as u64);
    assert!(
        store
            .list("id=")
            .await
            .unwrap()
            .iter()
            .any(|o| o.key == key),
        "a completed upload is listed"
    );
    // the upload is gone once completed
    assert_eq!(
        store.list_parts(key, &upload).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // a conditional completion over an existing object lands nothing
    let again = store.create_multipart(key, Metadata::new()).await.unwrap();
    let e = store
        .upload_part(key, &again, 1, Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert!(
        !store
            .complete_multipart(key, &again, &named(&[(1, &e)]), true)
            .await
            .unwrap(),
        "if_absent finds the object"
    );
    assert!(store.get(key).await.unwrap().body == body);
    // unconditional: replaces it
    assert!(
        store
            .complete_multipart(key, &again, &named(&[(1, &e)]), false)
            .await
            .unwrap()
    );
    let got = store.get(key).await.unwrap();
    assert_eq!(&got.body[..], b"other");
    assert!(got.info.metadata.is_empty());

    // abort drops the parts, twice is fine; an unknown upload is not found
    let dropped = store.create_multipart("id=dropped", m).await.unwrap();
    store
        .upload_part("id=dropped", &dropped, 1, Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.abort_multipart("id=dropped", &dropped).await.unwrap();
    store.abort_multipart("id=dropped", &dropped).await.unwrap();
    assert_eq!(
        store
            .list_parts("id=dropped", &dropped)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(store.head("id=dropped").await.unwrap().is_none());
    store.delete(key).await.unwrap();
}

/// `get_range` gives the bytes asked for, up to the object's end; refuses an empty range and one
/// that starts at or past the end; `NotFound` for a missing key.
async fn ranged_reads(store: &dyn ObjectStore) {
    store
        .put(
            "range/a",
            Bytes::from_static(b"0123456789"),
            meta(&[("table", "events")]),
        )
        .await
        .unwrap();
    for (range, want) in [
        (2..5, &b"234"[..]),
        (0..1, b"0"),
        (0..10, b"0123456789"),
        (7..10, b"789"),
        (9..10, b"9"),
        // past the end: up to the end
        (8..100, b"89"),
        (0..u64::MAX, b"0123456789"),
    ] {
        let got = store
            .get_range("range/a", range.clone())
            .await
            .unwrap_or_else(|e| panic!("get_range {range:?}: {e}"));
        assert_eq!(&got[..], want, "the bytes {range:?}");
    }
    for range in [
        10..11,
        10..100,
        50..60,
        3..3,
        std::ops::Range { start: 5, end: 2 },
    ] {
        assert_eq!(
            store
                .get_range("range/a", range.clone())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput,
            "{range:?}: empty, or starting at or past the end"
        );
    }
    assert_eq!(
        store
            .get_range("range/missing", 0..4)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.get_range("../escape", 0..4).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // an empty object has no byte to give
    store
        .put("range/empty", Bytes::new(), Metadata::new())
        .await
        .unwrap();
    assert_eq!(
        store
            .get_range("range/empty", 0..1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // a read after an overwrite sees the new body
    store
        .put("range/a", Bytes::from_static(b"abcdef"), Metadata::new())
        .await
        .unwrap();
    assert_eq!(&store.get_range("range/a", 4..10).await.unwrap()[..], b"ef");
    for k in ["range/a", "range/empty"] {
        store.delete(k).await.unwrap();
    }
}

/// ETags change with every write; `put_if_match` and `delete_if_match` act only on the ETag
/// given, and of racing writers holding one ETag exactly one wins.
async fn etags_and_conditional_writes(store: &dyn ObjectStore) {
    let m = meta(&[("table", "leases")]);
    assert!(
        store
            .put_if_absent("lease/a", Bytes::from_static(b"v1"), m.clone())
            .await
            .unwrap()
    );
    let got = store.get("lease/a").await.unwrap();
    let e1 = got.info.etag.clone();
    assert!(!e1.is_empty(), "every object has an etag");
    let head = store.head("lease/a").await.unwrap().unwrap();
    assert_eq!(head.etag, e1, "head and get agree");
    let listed = store.list("lease/").await.unwrap();
    assert_eq!(listed[0].etag, e1, "list gives the etag too");

    // a write with the current etag replaces body and metadata, and changes the etag
    assert!(
        store
            .put_if_match("lease/a", Bytes::from_static(b"v2"), m.clone(), &e1)
            .await
            .unwrap()
    );
    let got = store.get("lease/a").await.unwrap();
    assert_eq!(&got.body[..], b"v2");
    assert_eq!(got.info.metadata, m);
    let e2 = got.info.etag.clone();
    assert_ne!(e2, e1, "a write changes the etag");

    // a stale etag changes nothing, put or delete
    assert!(
        !store
            .put_if_match("lease/a", Bytes::from_static(b"v3"), Metadata::new(), &e1)
            .await
            .unwrap(),
        "a put with a stale etag is refused"
    );
    assert!(
        !store.delete_if_match("lease/a", &e1).await.unwrap(),
        "a delete with a stale etag is refused"
    );
    let got = store.get("lease/a").await.unwrap();
    assert_eq!(&got.body[..], b"v2", "refused writes change nothing");
    assert_eq!(got.info.etag, e2);

    // an unconditional put changes the etag too
    store
        .put("lease/a", Bytes::from_static(b"v4"), Metadata::new())
        .await
        .unwrap();
    let e4 = store.head("lease/a").await.unwrap().unwrap().etag;
    assert_ne!(e4, e2);
    assert!(
        !store
            .put_if_match("lease/a", Bytes::from_static(b"v5"), Metadata::new(), &e2)
            .await
            .unwrap()
    );

    // of racing writers with the same etag, exactly one wins
    let futs = (0..6u8).map(|i| {
        store.put_if_match(
            "lease/a",
            Bytes::from(vec![b'r', i]),
            Metadata::new(),
            e4.as_str(),
        )
    });
    let wins = futures::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| r.expect("put_if_match"))
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1, "exactly one put_if_match wins");
    let e5 = store.head("lease/a").await.unwrap().unwrap().etag;

    // a delete with the current etag removes it; then nothing matches any more
    assert!(store.delete_if_match("lease/a", &e5).await.unwrap());
    assert!(store.head("lease/a").await.unwrap().is_none());
    assert!(
        !store.delete_if_match("lease/a", &e5).await.unwrap(),
        "a conditional delete of a missing object is refused"
    );
    assert!(
        !store
            .put_if_match("lease/a", Bytes::from_static(b"v6"), Metadata::new(), &e5)
            .await
            .unwrap(),
        "a conditional put does not create"
    );
    assert!(store.head("lease/a").await.unwrap().is_none());
    for bad in ["../escape", "a//b"] {
        assert_eq!(
            store.delete_if_match(bad, &e5).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}

/// `copy` carries body and metadata, replaces the target, leaves the source, and refuses a
/// missing source.
async fn server_side_copy(store: &dyn ObjectStore) {
    let m = meta(&[("table", "events"), ("producer", "alice")]);
    store
        .put(
            "copy/src=1/a",
            Bytes::from_static(b"source body"),
            m.clone(),
        )
        .await
        .unwrap();
    store
        .put(
            "copy/dst/b",
            Bytes::from_static(b"old target"),
            Metadata::new(),
        )
        .await
        .unwrap();
    let old_target = store.head("copy/dst/b").await.unwrap().unwrap().etag;
    store
        .copy("copy/src=1/a", "copy/dst/b")
        .await
        .expect("copy");
    let got = store.get("copy/dst/b").await.unwrap();
    assert_eq!(&got.body[..], b"source body");
    assert_eq!(got.info.metadata, m, "metadata is copied with the body");
    assert_ne!(got.info.etag, old_target, "the target is a new version");
    // into a new key (and a new directory), leaving the source as it was
    store.copy("copy/src=1/a", "copy/new/deep/c").await.unwrap();
    assert_eq!(
        &store.get("copy/new/deep/c").await.unwrap().body[..],
        b"source body"
    );
    let src = store.get("copy/src=1/a").await.unwrap();
    assert_eq!(&src.body[..], b"source body");
    assert_eq!(src.info.metadata, m);
    // the copies are independent of the source from then on
    store
        .put(
            "copy/src=1/a",
            Bytes::from_static(b"changed"),
            Metadata::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        &store.get("copy/dst/b").await.unwrap().body[..],
        b"source body"
    );
    store.delete("copy/src=1/a").await.unwrap();
    assert_eq!(store.get("copy/new/deep/c").await.unwrap().info.metadata, m);
    // a conditional write on a copy works on the copy's own etag
    let e = store.head("copy/dst/b").await.unwrap().unwrap().etag;
    assert!(
        store
            .put_if_match("copy/dst/b", Bytes::from_static(b"x"), Metadata::new(), &e)
            .await
            .unwrap()
    );
    // onto itself: nothing changes
    let before = store.get("copy/new/deep/c").await.unwrap();
    store
        .copy("copy/new/deep/c", "copy/new/deep/c")
        .await
        .unwrap();
    let after = store.get("copy/new/deep/c").await.unwrap();
    assert_eq!(after.body, before.body);
    assert_eq!(after.info.metadata, before.info.metadata);
    // a missing source
    assert_eq!(
        store
            .copy("copy/missing", "copy/dst/z")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert!(store.head("copy/dst/z").await.unwrap().is_none());
    for k in ["copy/dst/b", "copy/new/deep/c"] {
        store.delete(k).await.unwrap();
    }
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
