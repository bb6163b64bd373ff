//! The crash sweep of erasure, in the style of the commit's ([`crate::commit::testsuite`]): the
//! same documents are ingested by a [`CrashDriver`], then erased by an [`EraseDriver`] over
//! stores that die after N mutating calls, for every N an undisturbed run makes; a healthy run
//! follows. Every run must end in the same state: the erased documents' rows, objects,
//! quarantine copies and landed objects gone, their `documents` rows and status records
//! `erased` (one row each), the other documents untouched, no job or unfinished record left,
//! and, after the vacuum, no replaced file left. A second healthy run changes nothing.

use super::{EraseReport, Erasure, Selector, status};
use crate::commit::testsuite::{CrashDriver, column, dying, keys, land_all, status as doc_status};
use crate::compact::{Compaction, JOBS_PREFIX, TOMBSTONES_PREFIX};
use crate::lake::Lake;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tarn_core::Status;

/// A driver of erasure, as the sweep runs it: the ingestion of a [`CrashDriver`], and an
/// erasure run over `lake` (whose stores may die).
#[async_trait]
pub trait EraseDriver: CrashDriver {
    /// Runs the erasure of `selector` with a grace period of zero.
    async fn erase(&self, lake: &Lake, selector: Selector) -> Result<EraseReport, String> {
        Erasure::new(lake.clone(), selector)
            .reason("crash sweep")
            .by("tester")
            .grace_period(std::time::Duration::ZERO)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }
}

/// The erasures of one sweep run: a JSON document (rows), a PNG (object) and a rejected one
/// (quarantine copy).
async fn erase_all(d: &dyn EraseDriver, lake: &Lake, ids: &[String]) -> Result<(), String> {
    for id in ids {
        d.erase(lake, Selector::Id { id: id.clone() }).await?;
    }
    Ok(())
}

/// Runs the sweep on `d`; returns how many crash points it tried.
pub async fn erase_crash_sweep(d: &dyn EraseDriver) -> usize {
    let prepare = || async {
        let lake = d.fresh().await;
        let landed = land_all(d, &lake).await;
        d.run(&lake, &landed.all()).await.expect("ingestion");
        (lake, landed)
    };
    let total = {
        let (lake, landed) = prepare().await;
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        let erased = vec![
            landed.valid[0].clone(),
            landed.png.clone(),
            landed.rejected.clone(),
        ];
        erase_all(d, &dying(&lake, &budget), &erased)
            .await
            .expect("an undisturbed erasure gets through");
        usize::MAX - budget.load(Ordering::SeqCst)
    };
    assert!(total > 10, "an erasure makes many calls: {total}");
    for crash_after in 0..total {
        let (lake, landed) = prepare().await;
        let erased = vec![
            landed.valid[0].clone(),
            landed.png.clone(),
            landed.rejected.clone(),
        ];
        let budget = Arc::new(AtomicUsize::new(crash_after));
        assert!(
            erase_all(d, &dying(&lake, &budget), &erased).await.is_err(),
            "a crash after {crash_after} calls is noticed"
        );
        erase_all(d, &lake, &erased)
            .await
            .unwrap_or_else(|e| panic!("the run after a crash at call {crash_after}: {e}"));
        let context = format!("after a crash at call {crash_after}");
        Compaction::new(lake.clone())
            .vacuum()
            .await
            .expect("the vacuum");
        assert_erased(&lake, &landed.all(), &erased, &landed.valid[1..], &context).await;

        // the same erasures again change nothing
        let still = Arc::new(AtomicUsize::new(usize::MAX));
        erase_all(d, &dying(&lake, &still), &erased)
            .await
            .expect("a second run");
        assert_eq!(
            usize::MAX - still.load(Ordering::SeqCst),
            0,
            "a second run writes nothing {context}"
        );
    }
    total
}

/// The end state of the sweep (see the module docs).
async fn assert_erased(
    lake: &Lake,
    all: &[String],
    erased: &[String],
    kept_events: &[String],
    context: &str,
) {
    let mut events: Vec<String> = kept_events
        .iter()
        .flat_map(|i| [i.clone(), i.clone()])
        .collect();
    events.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        events,
        "events rows {context}"
    );
    let mut ids = all.to_vec();
    ids.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "id").await,
        ids,
        "one documents row each {context}"
    );
    let statuses = column(lake.lake.as_ref(), "tables/documents/", "status").await;
    assert_eq!(
        statuses.iter().filter(|s| *s == "erased").count(),
        erased.len(),
        "erased rows {context}: {statuses:?}"
    );
    for id in all {
        let want = if erased.contains(id) {
            Status::Erased
        } else {
            doc_status(lake, id).await.status
        };
        assert_eq!(doc_status(lake, id).await.status, want, "{id} {context}");
        if erased.contains(id) {
            let row = doc_status(lake, id).await;
            assert_eq!(row.reason.as_deref(), Some("erased by tester: crash sweep"));
            assert_eq!((row.producer.as_str(), row.sha256), ("", None), "{context}");
        }
    }
    for (store, prefix) in [
        (&lake.lake, "objects/"),
        (&lake.quarantine, ""),
        (&lake.ingress, ""),
        (&lake.state, JOBS_PREFIX),
        (&lake.state, TOMBSTONES_PREFIX),
        (&lake.state, "batches/"),
    ] {
        assert_eq!(
            keys(store.as_ref(), prefix).await,
            Vec::<String>::new(),
            "{prefix} left over {context}"
        );
    }
    let st = status(lake.state.as_ref()).await.unwrap();
    assert_eq!(st.len(), erased.len(), "one record per erasure {context}");
    assert!(
        st.iter().all(|s| s.state == "gone"),
        "every erasure's bytes are gone after the vacuum {context}: {st:?}"
    );
}
