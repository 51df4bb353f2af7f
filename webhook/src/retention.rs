//! Result files follow their task: when a task is deleted (by the operator after its
//! retention, or by hand), a periodic sweep removes its files from the result store. A sweep
//! rather than a finalizer, so that a webhook that is down never blocks a deletion; files
//! outlive their task by at most one period.
//!
//! Deleting results is the one irreversible thing the webhook does, so the sweep runs only in
//! the replica that holds the notifier's Lease, and never on the caches' word alone: a cache
//! can lag (a relist after a watch error, a task created on another replica's request). A
//! task missing from the cache is confirmed gone by a fresh metadata LIST of both kinds before
//! its files go. A LIST rather than a GET per task because the store is keyed by uid, which no
//! GET can look up; it runs only when the cache suggests an orphan, and lists metadata only.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use esup_api::{EncodingTask, TranscriptionTask};
use esup_kube_common::leader::Leadership;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::store::ResultStore;
use crate::tasks::Tasks;

/// Page size of the confirming LIST.
const PAGE: u32 = 500;

/// The task uids in the store that no cached task has and `confirm_gone` confirms deleted.
/// Pure: `confirm_gone` answers from a fresh read made by the caller.
pub fn orphaned(
    stored: &[String],
    cached_live: &BTreeSet<String>,
    mut confirm_gone: impl FnMut(&str) -> bool,
) -> Vec<String> {
    stored
        .iter()
        .filter(|uid| !cached_live.contains(*uid) && confirm_gone(uid))
        .cloned()
        .collect()
}

/// Why a sweep did nothing or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot list the result store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot confirm with the API server: {0}")]
    Confirm(#[source] kube::Error),
}

impl SweepError {
    /// Stable label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Store(e) => e.category(),
            Self::Confirm(_) => "ApiServerUnavailable",
        }
    }
}

/// One sweep: removes the files of tasks that the cache lacks and `fresh_uids` (the uids of
/// every task, read from the API server when called) confirms gone. Does nothing unless
/// `leading`. Returns the uids whose files were removed.
pub async fn sweep<F, Fut>(
    store: &ResultStore,
    leading: bool,
    cached_live: impl FnOnce() -> BTreeSet<String>,
    fresh_uids: F,
) -> Result<Vec<String>, SweepError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<BTreeSet<String>, kube::Error>>,
{
    if !leading {
        return Ok(Vec::new());
    }
    let stored = store.task_ids().await?;
    // Read the live uids after listing the store: a task created in between has no files
    // yet, so it cannot be mistaken for a deleted one.
    let live = cached_live();
    let candidates = orphaned(&stored, &live, |_| true);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let fresh = fresh_uids().await.map_err(SweepError::Confirm)?;
    let gone = orphaned(&candidates, &live, |uid| !fresh.contains(uid));
    let mut removed = Vec::with_capacity(gone.len());
    for uid in gone {
        match store.delete_task(&uid).await {
            Ok(n) => {
                tracing::info!(task_uid = %uid, files = n, "removed the results of a deleted task");
                removed.push(uid);
            }
            Err(e) => {
                tracing::warn!(task_uid = %uid, error = %e, "cannot remove the results of a deleted task")
            }
        }
    }
    Ok(removed)
}

/// The uid of every task of `K`, from a paged metadata LIST.
async fn list_uids<K>(client: &Client, out: &mut BTreeSet<String>) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await?;
        out.extend(page.items.into_iter().filter_map(|t| t.metadata.uid));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => params = params.continue_token(&next),
            None => return Ok(()),
        }
    }
}

/// The uid of every task of either kind, as the API server has them now.
pub async fn fresh_uids(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let mut uids = BTreeSet::new();
    list_uids::<EncodingTask>(client, &mut uids).await?;
    list_uids::<TranscriptionTask>(client, &mut uids).await?;
    Ok(uids)
}

/// Sweeps every `period` while `leadership` holds. Start it once the task caches have listed.
pub async fn run(tasks: Tasks, store: ResultStore, period: Duration, leadership: Leadership) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let client = tasks.client().clone();
        let outcome = sweep(
            &store,
            leadership.is_leader(),
            || tasks.uids(),
            || async move { fresh_uids(&client).await },
        )
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, category = e.category(), "result sweep skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn only_uids_without_a_task_are_orphaned() {
        let stored = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let live: BTreeSet<String> = ["b".to_owned()].into();
        assert_eq!(orphaned(&stored, &live, |_| true), ["a", "c"]);
        assert!(orphaned(&[], &live, |_| true).is_empty());
    }

    #[test]
    fn a_task_the_cache_lacks_but_the_api_has_is_not_orphaned() {
        let stored = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let cached: BTreeSet<String> = ["b".to_owned()].into();
        // "a" exists (the cache lags behind); "c" is really gone.
        let api: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        let mut asked = Vec::new();
        let gone = orphaned(&stored, &cached, |uid| {
            asked.push(uid.to_owned());
            !api.contains(uid)
        });
        assert_eq!(gone, ["c"]);
        // Only what the cache lacks is confirmed.
        assert_eq!(asked, ["a", "c"]);
    }

    const A: &str = "0d02bb60-e5e1";
    const B: &str = "49522ebd-86c7";

    async fn store_with_two_tasks() -> (tempfile::TempDir, ResultStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::new(&crate::store::StoreConfig::Filesystem {
            root: dir.path().to_owned(),
        })
        .unwrap();
        for uid in [A, B] {
            let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
            store
                .put(crate::store::Attempt::launch(uid, 1), "a.vtt", body, 10)
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn sweep_keeps_files_of_tasks_a_stale_cache_lacks() {
        let (_dir, store) = store_with_two_tasks().await;
        // The cache is empty (a relist in progress); the API server has A, not B.
        let removed = sweep(&store, true, BTreeSet::new, || async {
            Ok([A.to_owned()].into())
        })
        .await
        .unwrap();
        assert_eq!(removed, [B]);
        assert_eq!(store.task_ids().await.unwrap(), [A]);
        // A failed confirmation removes nothing.
        let failed = sweep(&store, true, BTreeSet::new, || async {
            Err(kube::Error::LinesCodecMaxLineLengthExceeded)
        })
        .await;
        assert_eq!(failed.unwrap_err().category(), "ApiServerUnavailable");
        assert_eq!(store.task_ids().await.unwrap(), [A]);
    }

    #[tokio::test]
    async fn a_replica_that_does_not_lead_never_sweeps() {
        let (_dir, store) = store_with_two_tasks().await;
        let removed = sweep(&store, false, BTreeSet::new, || async {
            Ok(BTreeSet::new())
        })
        .await
        .unwrap();
        assert!(removed.is_empty());
        assert_eq!(store.task_ids().await.unwrap(), [A, B]);
        // The leader, with both confirmed gone, removes both.
        let removed = sweep(&store, true, BTreeSet::new, || async {
            Ok(BTreeSet::new())
        })
        .await
        .unwrap();
        assert_eq!(removed, [A, B]);
        assert!(store.task_ids().await.unwrap().is_empty());
    }
}
