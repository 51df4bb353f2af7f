//! Result files follow their task: when a task is deleted (by the operator after its
//! retention, or by hand), a periodic sweep removes its files from the result store. A sweep
//! rather than a finalizer, so that a webhook that is down never blocks a deletion; files
//! outlive their task by at most one period.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::store::ResultStore;
use crate::tasks::Tasks;

/// The task uids in the store that no task resource has any more.
pub fn orphaned(stored: &[String], live: &BTreeSet<String>) -> Vec<String> {
    stored
        .iter()
        .filter(|uid| !live.contains(*uid))
        .cloned()
        .collect()
}

/// Sweeps every `period`. Start it once the task caches have listed, or it would take every
/// task for deleted.
pub async fn run(tasks: Tasks, store: ResultStore, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let stored = match store.task_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the result store");
                continue;
            }
        };
        // Read the live uids after listing the store: a task created in between has no files
        // yet, so it cannot be mistaken for a deleted one.
        let live = tasks.uids();
        for uid in orphaned(&stored, &live) {
            match store.delete_task(&uid).await {
                Ok(n) => {
                    tracing::info!(task_uid = %uid, files = n, "removed the results of a deleted task")
                }
                Err(e) => {
                    tracing::warn!(task_uid = %uid, error = %e, "cannot remove the results of a deleted task")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uids_without_a_task_are_orphaned() {
        let stored = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let live: BTreeSet<String> = ["b".to_owned()].into();
        assert_eq!(orphaned(&stored, &live), ["a", "c"]);
        assert!(orphaned(&[], &live).is_empty());
    }
}
