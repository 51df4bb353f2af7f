//! Bound on finished tasks kept per tenant. Retention alone (60 days by default) lets a busy
//! tenant keep hundreds of thousands of finished tasks in etcd and in every watch cache; past
//! the bound, the oldest finished tasks go first, before their retention ends.

use std::collections::HashMap;

use esup_api::task::TaskKey;

use crate::model::Task;

/// The finished tasks to delete so that each tenant keeps at most `max_per_tenant`: the
/// oldest first (by completion time, then name). Tenants are counted per namespace, so that
/// tasks created in another namespace under a tenant's name cannot push its tasks out.
/// `finished` must hold terminal tasks only; those not being deleted already.
pub fn over_bound<'a>(
    finished: impl IntoIterator<Item = &'a Task>,
    max_per_tenant: usize,
) -> Vec<TaskKey> {
    let mut by_tenant: HashMap<(&str, &str), Vec<&Task>> = HashMap::new();
    for task in finished {
        by_tenant
            .entry((task.key.namespace.as_str(), task.tenant()))
            .or_default()
            .push(task);
    }
    let mut out = Vec::new();
    for tasks in by_tenant.values_mut() {
        if tasks.len() <= max_per_tenant {
            continue;
        }
        // A task without a completion time counts as the oldest: it cannot be placed.
        tasks.sort_by(|a, b| {
            let at = |t: &Task| t.status.completion_time.as_ref().map(|c| c.0);
            (at(a), &a.key.name).cmp(&(at(b), &b.key.name))
        });
        let excess = tasks.len() - max_per_tenant;
        out.extend(tasks.iter().take(excess).map(|t| t.key.clone()));
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use esup_api::TranscriptionTask;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn task(namespace: &str, name: &str, tenant: &str, done_at: Option<i64>) -> Task {
        let mut t: TranscriptionTask = serde_yaml::from_str(include_str!(
            "../../../api/tests/fixtures/transcriptiontask-full.yaml"
        ))
        .unwrap();
        t.metadata.name = Some(name.into());
        t.metadata.namespace = Some(namespace.into());
        t.metadata.uid = Some(format!("uid-{namespace}-{name}"));
        t.spec.common.requester.tenant = tenant.into();
        let status = t.status.get_or_insert_with(Default::default);
        status.phase = esup_api::TaskPhase::Succeeded;
        status.completion_time = done_at.map(|s| Time(Timestamp::from_second(s).unwrap()));
        Task::from_resource(&t).unwrap()
    }

    fn names(keys: &[TaskKey]) -> Vec<&str> {
        keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn oldest_finished_tasks_past_the_bound_go_first_per_tenant() {
        let tasks = [
            task("ns", "a3", "a", Some(300)),
            task("ns", "a1", "a", Some(100)),
            task("ns", "a2", "a", Some(200)),
            task("ns", "a0", "a", None),
            task("ns", "b1", "b", Some(50)),
            // Same tenant name, other namespace: counted apart.
            task("other", "x1", "a", Some(10)),
        ];
        assert_eq!(names(&over_bound(&tasks, 2)), ["a0", "a1"]);
        assert_eq!(names(&over_bound(&tasks, 1)), ["a0", "a1", "a2"]);
        assert!(over_bound(&tasks, 4).is_empty());
        assert_eq!(names(&over_bound(&tasks, 0)).len(), tasks.len());
        // Ties on time are broken by name, so every replica and pass picks the same.
        let tied = [
            task("ns", "t2", "a", Some(5)),
            task("ns", "t1", "a", Some(5)),
        ];
        assert_eq!(names(&over_bound(&tied, 1)), ["t1"]);
    }

    #[test]
    fn a_pass_deletes_the_finished_tasks_past_the_bound() {
        let tasks = [
            task("ns", "a1", "a", Some(100)),
            task("ns", "a2", "a", Some(200)),
            task("ns", "b1", "b", Some(100)),
        ];
        let (jobs, pods, errors) = (HashMap::new(), HashMap::new(), HashMap::new());
        let snapshot = crate::schedule::Snapshot {
            tasks: tasks.iter().collect(),
            pools: vec![],
            nodes: vec![],
            jobs: &jobs,
            pods: &pods,
            launch_errors: &errors,
            policed_namespaces: Default::default(),
        };
        let settings = crate::schedule::Settings {
            max_finished_per_tenant: 1,
            ..crate::schedule::Settings::default()
        };
        let plan =
            crate::schedule::plan(&snapshot, Timestamp::from_second(300).unwrap(), &settings);
        assert_eq!(names(&plan.expired), ["a1"]);
    }
}
