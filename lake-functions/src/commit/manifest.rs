//! A batch's manifest (`batches/<batch>.json` in the state store): written before the batch
//! writes anything, marked committed once everything is written, removed once the batch is
//! finished or rolled back. What is pending or half-written is read from manifests alone.

use crate::error::{LakeError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tarn_core::{DocumentRow, ErrorKind, ObjectStore};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub batch: String,
    pub committed: bool,
    /// the batch's `documents` rows, sorted by id
    pub rows: Vec<DocumentRow>,
    /// lake keys of the Parquet files the batch writes
    pub files: Vec<String>,
    /// state keys the batch consumes, removed once it is committed (the Lambdas' hand-offs)
    #[serde(default, alias = "handoffs")]
    pub inputs: Vec<String>,
    /// state keys the batch holds, removed once it is committed or rolled back (the Lambdas'
    /// claims)
    #[serde(default)]
    pub claims: Vec<String>,
    /// the batch's revisions ([`super::Revision`]): what each moved document had before
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<super::Revision>,
}

/// The state-store key of batch `batch`'s manifest.
pub fn manifest_key(batch: &str) -> String {
    format!("batches/{batch}.json")
}

fn parse(key: &str, body: &[u8]) -> Result<Manifest> {
    serde_json::from_slice(body)
        .map_err(|e| LakeError::Pipeline(format!("manifest {key} is unreadable: {e}")))
}

/// Batch `batch`'s manifest, if it has one.
pub async fn read(state: &dyn ObjectStore, batch: &str) -> Result<Option<Manifest>> {
    let key = manifest_key(batch);
    match state.get(&key).await {
        Ok(o) => parse(&key, &o.body).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn put(state: &dyn ObjectStore, m: &Manifest) -> Result<()> {
    let body = serde_json::to_vec(m).expect("a manifest serializes");
    state
        .put(&manifest_key(&m.batch), body.into(), Default::default())
        .await?;
    Ok(())
}

/// Every manifest in the state store, with when it was last written (one removed while
/// listing is skipped).
pub async fn list(state: &dyn ObjectStore) -> Result<Vec<(Manifest, DateTime<Utc>)>> {
    let mut out = Vec::new();
    for obj in state.list("batches/").await? {
        match state.get(&obj.key).await {
            Ok(o) => out.push((parse(&obj.key, &o.body)?, o.info.last_modified)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_of_the_earlier_lambda_format_still_read() {
        let old = br#"{"batch":"b","committed":true,"rows":[],"files":["tables/x/dt=1/part-b.parquet"],"handoffs":["work/normalize/id=1"]}"#;
        let m = parse("batches/b.json", old).unwrap();
        assert_eq!(m.inputs, vec!["work/normalize/id=1".to_string()]);
        assert!(m.claims.is_empty());
        assert!(
            parse("batches/b.json", b"{")
                .unwrap_err()
                .to_string()
                .contains("unreadable")
        );
    }
}
