//! How many sends run at once: a global bound, and a smaller one per tenant, so that one
//! tenant's Esup-Pod that accepts connections and never answers holds at most its own share
//! of the slots (each of its sends lasts a whole read timeout) while other tenants are still
//! notified at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lock;

/// Why a send cannot start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The tenant has its cap in flight; other tenants may still start.
    Tenant,
    /// Every slot is taken.
    Global,
}

/// The slots of the sends in flight.
#[derive(Debug)]
pub struct Slots {
    global: Arc<Semaphore>,
    per_tenant: usize,
    busy: Arc<Mutex<HashMap<String, usize>>>,
}

/// One send's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _global: OwnedSemaphorePermit,
    tenant: String,
    busy: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = lock(&self.busy);
        if let Some(n) = busy.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.tenant);
            }
        }
    }
}

impl Slots {
    pub fn new(global: usize, per_tenant: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(global)),
            per_tenant,
            busy: Arc::default(),
        }
    }

    /// A slot for a send of `tenant`. A tenant at its cap is refused without taking a global
    /// slot, so its waiting sends never hold anyone else's.
    pub fn try_take(&self, tenant: &str) -> Result<Slot, Full> {
        let mut busy = lock(&self.busy);
        if busy.get(tenant).copied().unwrap_or(0) >= self.per_tenant {
            return Err(Full::Tenant);
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Global)?;
        *busy.entry(tenant.to_owned()).or_default() += 1;
        Ok(Slot {
            _global: permit,
            tenant: tenant.to_owned(),
            busy: self.busy.clone(),
        })
    }

    /// Sends of `tenant` in flight.
    pub fn in_flight(&self, tenant: &str) -> usize {
        lock(&self.busy).get(tenant).copied().unwrap_or(0)
    }
}

/// Starts the due items in order as slots allow: a tenant at its cap is passed over (its
/// items wait), and the pass stops when no slot is left at all. Returns the items that wait.
pub fn start_due<T>(
    due: impl IntoIterator<Item = T>,
    tenant: impl Fn(&T) -> &str,
    slots: &Slots,
    mut start: impl FnMut(T, Slot),
) -> Vec<T> {
    let mut waiting = Vec::new();
    let mut due = due.into_iter();
    while let Some(item) = due.next() {
        match slots.try_take(tenant(&item)) {
            Ok(slot) => start(item, slot),
            Err(Full::Tenant) => waiting.push(item),
            Err(Full::Global) => {
                waiting.push(item);
                waiting.extend(due);
                break;
            }
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::{SendOutcome, Sender};
    use crate::url_policy::UrlPolicy;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use tokio::io::AsyncReadExt;
    use warp::Filter;

    #[test]
    fn a_tenant_at_its_cap_waits_without_taking_a_global_slot() {
        let slots = Slots::new(6, 2);
        let a1 = slots.try_take("a").expect("a 1");
        let a2 = slots.try_take("a").expect("a 2");
        assert_eq!(slots.try_take("a").map(drop), Err(Full::Tenant));
        assert_eq!(slots.in_flight("a"), 2);
        let b: Vec<Slot> = (0..2).map(|_| slots.try_take("b").expect("b")).collect();
        let c1 = slots.try_take("c").expect("c 1");
        let c2 = slots.try_take("c").expect("c 2");
        // Six taken: a refusal for the cap still says Tenant, others are out of global slots.
        assert_eq!(slots.try_take("a").map(drop), Err(Full::Tenant));
        assert_eq!(slots.try_take("d").map(drop), Err(Full::Global));
        drop(a1);
        assert_eq!(slots.in_flight("a"), 1);
        let d = slots.try_take("d").expect("the freed slot goes to anyone");
        assert_eq!(slots.try_take("a").map(drop), Err(Full::Global));
        drop((a2, b, c1, c2, d));
        assert_eq!(slots.in_flight("a"), 0);
        assert!(lock(&slots.busy).is_empty(), "no tenant left behind");
        let all: Vec<Slot> = ["a", "a", "b", "b", "c", "c"]
            .iter()
            .map(|t| slots.try_take(t).expect("all six free again"))
            .collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn a_pass_skips_capped_tenants_and_stops_when_full() {
        let slots = Slots::new(5, 2);
        let due = ["a1", "a2", "a3", "a4", "b1", "c1", "c2", "c3", "d1", "d2"];
        let mut started = Vec::new();
        let mut held = Vec::new();
        let waiting = start_due(
            due,
            |t| &t[..1],
            &slots,
            |t, slot| {
                started.push(t);
                held.push(slot);
            },
        );
        assert_eq!(started, ["a1", "a2", "b1", "c1", "c2"]);
        assert_eq!(waiting, ["a3", "a4", "c3", "d1", "d2"]);
    }

    /// An Esup-Pod that accepts every connection and reads the request, and never answers.
    async fn stalling_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        (addr, accepted)
    }

    async fn answering_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let notify = warp::post().map(|| warp::reply::json(&serde_json::json!({"status": "OK"})));
        tokio::spawn(warp::serve(notify).incoming(listener).run());
        addr
    }

    /// Tenant A's Esup-Pod stalls every notify for the whole read timeout; 40 of its tasks
    /// end at once, then one of tenant B's. B must be notified at once, not after A's sends
    /// time out. The loop below is the notifier's: each pass starts what the slots allow,
    /// and a finished send wakes the next pass.
    #[tokio::test]
    async fn a_stalled_tenant_does_not_delay_another_tenants_notification() {
        let (stalled, accepted) = stalling_server().await;
        let answering = answering_server().await;
        let read_timeout = Duration::from_secs(8);
        let sender = Sender::new(Duration::from_secs(1), read_timeout);
        let policy = Arc::new(UrlPolicy {
            private_networks: vec!["127.0.0.1/32".parse().expect("network")],
            ..UrlPolicy::default()
        });
        let slots = Slots::new(16, 4);
        let mut due: Vec<(String, String)> = (0..40)
            .map(|i| {
                (
                    format!("a-{i}"),
                    format!("http://{stalled}/a/notify_task_end/"),
                )
            })
            .collect();
        due.push((
            "b-0".into(),
            format!("http://{answering}/b/notify_task_end/"),
        ));

        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let mut b_outcome = None;
        while started.elapsed() < read_timeout {
            due = start_due(
                due,
                |(task, _)| &task[..1],
                &slots,
                |(task, url), slot| {
                    let (sender, policy, done) = (sender.clone(), policy.clone(), done.clone());
                    tokio::spawn(async move {
                        let body = Bytes::from_static(b"{}");
                        let outcome = sender.deliver(&policy, &url, "tok", body).await;
                        drop(slot);
                        let _ = done.send((task, outcome));
                    });
                },
            );
            if let Ok(Some((task, outcome))) =
                tokio::time::timeout(Duration::from_millis(50), finished.recv()).await
                && task == "b-0"
            {
                b_outcome = Some((outcome, started.elapsed()));
                break;
            }
        }
        let (outcome, took) = b_outcome.expect("B was notified before A's sends timed out");
        assert_eq!(outcome, SendOutcome::Accepted("200 OK".into()));
        assert!(took < Duration::from_secs(2), "B waited {took:?}");
        assert_eq!(slots.in_flight("a"), 4, "A holds its cap, no more");
        for _ in 0..100 {
            if accepted.load(Ordering::SeqCst) >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            4,
            "A's Esup-Pod got 4 connections"
        );
        assert_eq!(due.len(), 36, "A's other tasks wait for A's slots");
    }
}
