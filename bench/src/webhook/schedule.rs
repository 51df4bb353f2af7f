//! Open-loop send schedule: `clients` clients share an aggregate rate, each on a fixed period,
//! their phases spread evenly, so that the offered load is smooth whatever the answers do.

use std::time::Duration;

/// When client `client` (of `clients`) sends its `k`-th request, from the start of the phase,
/// at an aggregate `rate` per second: client i's sends fall at (i + k·clients) / rate.
pub fn send_offset(client: usize, clients: usize, rate: f64, k: u64) -> Duration {
    let slot = client as f64 + k as f64 * clients as f64;
    Duration::from_secs_f64(slot / rate)
}

/// How many sends client `client` makes in a phase of `duration` (those scheduled before its
/// end).
pub fn sends_in(client: usize, clients: usize, rate: f64, duration: Duration) -> u64 {
    let first = send_offset(client, clients, rate, 0);
    if first >= duration {
        return 0;
    }
    let period = clients as f64 / rate;
    ((duration - first).as_secs_f64() / period).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_interleave_at_the_aggregate_rate() {
        // 4 clients at 8/s: one send every 125 ms overall, each client every 500 ms.
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|c| (0..3).map(move |k| send_offset(c, 4, 8.0, k)))
            .collect();
        all.sort();
        for (i, t) in all.iter().enumerate() {
            assert_eq!(*t, Duration::from_millis(125 * i as u64));
        }
        assert_eq!(send_offset(1, 4, 8.0, 2), Duration::from_millis(1125));
    }

    #[test]
    fn sends_stop_at_the_end_of_the_phase() {
        let d = Duration::from_secs(1);
        // Client 0 sends at 0 and 500 ms; client 3 at 375 and 875 ms.
        assert_eq!(sends_in(0, 4, 8.0, d), 2);
        assert_eq!(sends_in(3, 4, 8.0, d), 2);
        let total: u64 = (0..4).map(|c| sends_in(c, 4, 8.0, d)).sum();
        assert_eq!(total, 8);
        // More clients than sends in the phase: the late ones send nothing.
        assert_eq!(sends_in(9, 10, 5.0, d), 0);
        let total: u64 = (0..10).map(|c| sends_in(c, 10, 5.0, d)).sum();
        assert_eq!(total, 5);
    }
}
