//! Which pools a task may use, when it may overflow to the next one, and the order in which a
//! pool admits its queue: home tasks before overflowed ones, then Esup-Pod's priority, then
//! the tenants' fair-share scores, then age.

use std::collections::BTreeMap;

use esup_api::TaskPriority;
use k8s_openapi::jiff::Timestamp;

use crate::model::{Pool, Task};

/// Whether `pool` may run `task` at all: task type, tenant, and for encoding on a GPU pool,
/// an NVENC engine.
pub fn eligible(pool: &Pool, task: &Task) -> bool {
    pool.spec.takes(
        &pool.name,
        task.task_type(),
        task.tenant(),
        &task.common().pools,
    )
}

/// The pools a task may use, in its order of preference: the order of `spec.pools` when the
/// task names pools, else pool priority (then name). `pools` must be in priority order.
pub fn candidates<'p>(task: &Task, pools: &[&'p Pool]) -> Vec<&'p Pool> {
    let mut found: Vec<&Pool> = pools
        .iter()
        .copied()
        .filter(|p| eligible(p, task))
        .collect();
    let wanted = &task.common().pools;
    if !wanted.is_empty() {
        found.sort_by_key(|p| wanted.iter().position(|w| *w == p.name));
    }
    found
}

/// How many of the candidates a task that has waited `waited_secs` may use: the first, plus
/// the next one each time it has waited out the `overflowAfter` of every pool before it.
/// A pool without `overflowAfter` keeps its tasks.
pub fn reachable(candidates: &[&Pool], waited_secs: f64) -> usize {
    let mut allowed = candidates.len().min(1);
    let mut threshold = 0.0;
    for pool in candidates.iter().take(candidates.len().saturating_sub(1)) {
        let Some(after) = &pool.spec.overflow_after else {
            break;
        };
        threshold += std::time::Duration::from(*after).as_secs_f64();
        if waited_secs < threshold {
            break;
        }
        allowed += 1;
    }
    allowed
}

/// A queued task competing for one pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    /// Index of the task in the caller's list.
    pub index: usize,
    /// The pool is not the task's home: it borrows the slot and yields to home tasks.
    pub away: bool,
    pub priority: TaskPriority,
    pub tenant: &'a str,
    /// Start of the current queueing episode.
    pub since: Timestamp,
    /// Creation of the task: orders tasks whose episodes began in the same pass (the
    /// operator saw them together, e.g. after it was away) in submission order.
    pub created: Timestamp,
    pub name: &'a str,
}

impl Entry<'_> {
    fn rank(&self) -> (bool, TaskPriority, Timestamp, Timestamp, &str) {
        (
            self.away,
            self.priority,
            self.since,
            self.created,
            self.name,
        )
    }
}

/// Fair-share state of one tenant on one pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    pub score: f64,
    /// What one more slot adds to the score: 1 / weight.
    pub step: f64,
}

/// The order in which a pool admits `entries`. At each step the next task is the best head
/// among the tenants' own queues — by (away, priority), then the lowest fair-share score,
/// then age — and its tenant's score grows by one slot, so tenants interleave by weight.
pub fn order<'a>(entries: Vec<Entry<'a>>, shares: &BTreeMap<String, Share>) -> Vec<Entry<'a>> {
    let mut by_tenant: BTreeMap<&'a str, Vec<Entry<'a>>> = BTreeMap::new();
    let total = entries.len();
    for entry in entries {
        by_tenant.entry(entry.tenant).or_default().push(entry);
    }
    // Each tenant's queue, best last so that pop() takes it.
    let mut queues: Vec<(Share, Vec<Entry<'a>>)> = by_tenant
        .into_iter()
        .map(|(tenant, mut list)| {
            list.sort_by(|a, b| b.rank().cmp(&a.rank()));
            let share = shares.get(tenant).copied().unwrap_or(Share {
                score: 0.0,
                step: 1.0,
            });
            (share, list)
        })
        .collect();
    let mut out = Vec::with_capacity(total);
    while let Some(best) = queues
        .iter()
        .enumerate()
        .filter_map(|(i, (share, list))| list.last().map(|head| (i, share.score, head)))
        .min_by(|(_, sa, a), (_, sb, b)| {
            (a.away, a.priority)
                .cmp(&(b.away, b.priority))
                .then(sa.total_cmp(sb))
                .then(a.since.cmp(&b.since))
                .then(a.created.cmp(&b.created))
                .then(a.name.cmp(b.name))
        })
        .map(|(i, _, _)| i)
    {
        let (share, list) = &mut queues[best];
        if let Some(entry) = list.pop() {
            share.score += share.step;
            out.push(entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::model::test_pool as pool;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn entry<'a>(
        index: usize,
        tenant: &'a str,
        priority: TaskPriority,
        since: i64,
        name: &'a str,
    ) -> Entry<'a> {
        Entry {
            index,
            away: false,
            priority,
            tenant,
            since: ts(since),
            created: ts(since),
            name,
        }
    }

    fn names<'a>(ordered: &[Entry<'a>]) -> Vec<&'a str> {
        ordered.iter().map(|e| e.name).collect()
    }

    fn shares(list: &[(&'static str, f64, u32)]) -> BTreeMap<String, Share> {
        list.iter()
            .map(|(t, score, weight)| {
                (
                    (*t).to_owned(),
                    Share {
                        score: *score,
                        step: 1.0 / f64::from(*weight),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn priority_then_age_within_one_tenant() {
        use TaskPriority::*;
        let entries = vec![
            entry(0, "x", Normal, 1, "n1"),
            entry(1, "x", Low, 0, "l0"),
            entry(2, "x", High, 5, "h5"),
            entry(3, "x", Normal, 0, "n0"),
        ];
        assert_eq!(
            names(&order(entries, &BTreeMap::new())),
            ["h5", "n0", "n1", "l0"]
        );
    }

    #[test]
    fn a_burst_from_one_tenant_does_not_starve_the_others() {
        use TaskPriority::Normal;
        let mut entries: Vec<_> = (0..6)
            .map(|i| {
                entry(
                    i,
                    "burst",
                    Normal,
                    i as i64,
                    ["b0", "b1", "b2", "b3", "b4", "b5"][i],
                )
            })
            .collect();
        entries.push(entry(6, "quiet", Normal, 100, "q0"));
        entries.push(entry(7, "quiet", Normal, 101, "q1"));
        let ordered = order(entries, &shares(&[("burst", 0.0, 1), ("quiet", 0.0, 1)]));
        assert_eq!(
            names(&ordered),
            ["b0", "q0", "b1", "q1", "b2", "b3", "b4", "b5"]
        );
    }

    #[test]
    fn weights_and_past_usage_shape_the_interleaving() {
        use TaskPriority::Normal;
        let mk = |t: &'static str, n: &'static str, s: i64| entry(0, t, Normal, s, n);
        // Weight 2 gets two slots for each one of weight 1.
        let entries = vec![
            mk("a", "a0", 0),
            mk("a", "a1", 1),
            mk("a", "a2", 2),
            mk("a", "a3", 3),
            mk("b", "b0", 0),
            mk("b", "b1", 1),
        ];
        assert_eq!(
            names(&order(
                entries.clone(),
                &shares(&[("a", 0.0, 2), ("b", 0.0, 1)])
            )),
            ["a0", "b0", "a1", "b1", "a2", "a3"]
        );
        // A tenant that used the pool heavily waits until its score comes back down.
        assert_eq!(
            names(&order(entries, &shares(&[("a", 0.0, 1), ("b", 2.5, 1)]))),
            ["a0", "a1", "a2", "b0", "a3", "b1"]
        );
    }

    #[test]
    fn priority_beats_fair_share_and_home_beats_away() {
        use TaskPriority::*;
        let mut away = entry(2, "y", High, 0, "away-high");
        away.away = true;
        let entries = vec![
            entry(0, "x", Low, 0, "home-low"),
            entry(1, "y", High, 9, "home-high"),
            away,
        ];
        let ordered = order(entries, &shares(&[("x", 0.0, 1), ("y", 50.0, 1)]));
        assert_eq!(names(&ordered), ["home-high", "home-low", "away-high"]);
    }

    #[test]
    fn overflow_opens_the_next_pool_after_each_wait() {
        let a = pool(
            "a",
            "{taskTypes: [Encoding], maxConcurrency: 1, overflowAfter: 10m}",
        );
        let b = pool(
            "b",
            "{taskTypes: [Encoding], maxConcurrency: 1, overflowAfter: 5m}",
        );
        let c = pool("c", "{taskTypes: [Encoding], maxConcurrency: 1}");
        let d = pool("d", "{taskTypes: [Encoding], maxConcurrency: 1}");
        let chain = [&a, &b, &c];
        let table = [
            (0.0, 1),
            (599.0, 1),
            (600.0, 2),
            (899.0, 2),
            (900.0, 3),
            (1e9, 3),
        ];
        for (waited, expected) in table {
            assert_eq!(reachable(&chain, waited), expected, "waited {waited}");
        }
        // A pool without overflowAfter keeps its tasks, whatever follows it.
        assert_eq!(reachable(&[&c, &d], 1e9), 1);
        assert_eq!(reachable(&[], 1e9), 0);
    }
}
