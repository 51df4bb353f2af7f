//! Weighted fair share between the tenants of a pool. A tenant's share is its running slots
//! plus its recent usage, decayed with the pool's half-life, divided by its weight: a burst
//! from one institution raises its share, so the others' tasks go first until it decays.
//! Derived from the tasks' attempt records alone, so a restarted operator computes the same.

use k8s_openapi::jiff::Timestamp;

/// Slot-seconds of a slot held from `start` to `end` (or still held when `end` is None),
/// each second weighted by 2^(-age / half_life).
pub fn decayed_slot_seconds(
    start: Timestamp,
    end: Option<Timestamp>,
    now: Timestamp,
    half_life_secs: f64,
) -> f64 {
    let age = |t: Timestamp| seconds_between(t, now).max(0.0);
    let newest = end.map_or(0.0, age);
    let oldest = age(start);
    if oldest <= newest || half_life_secs <= 0.0 {
        return 0.0;
    }
    // ∫ 2^(-a/h) da from `newest` to `oldest` = h/ln2 · (2^(-newest/h) − 2^(-oldest/h))
    let h = half_life_secs;
    h / std::f64::consts::LN_2 * ((-newest / h).exp2() - (-oldest / h).exp2())
}

/// The fair-share score that orders tenants in a queue: lower goes first.
pub fn score(
    running_slots: f64,
    decayed_slot_seconds: f64,
    half_life_secs: f64,
    weight: u32,
) -> f64 {
    let recent = if half_life_secs > 0.0 {
        decayed_slot_seconds / half_life_secs
    } else {
        0.0
    };
    (running_slots + recent) / f64::from(weight.max(1))
}

pub fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn decay_halves_usage_every_half_life() {
        let h = 3600.0;
        // One hour of slot use that ended just now, versus the same hour one half-life ago.
        let fresh = decayed_slot_seconds(ts(0), Some(ts(3600)), ts(3600), h);
        let older = decayed_slot_seconds(ts(0), Some(ts(3600)), ts(7200), h);
        assert!((older / fresh - 0.5).abs() < 1e-9, "{fresh} {older}");
        // A slot used for one second just now is worth about one slot-second.
        let one = decayed_slot_seconds(ts(99), Some(ts(100)), ts(100), h);
        assert!((one - 1.0).abs() < 1e-3, "{one}");
    }

    #[test]
    fn running_attempts_accrue_until_now() {
        let running = decayed_slot_seconds(ts(0), None, ts(60), 3600.0);
        let ended = decayed_slot_seconds(ts(0), Some(ts(60)), ts(60), 3600.0);
        assert!((running - ended).abs() < 1e-9);
        assert_eq!(decayed_slot_seconds(ts(10), None, ts(5), 3600.0), 0.0);
    }

    #[test]
    fn weight_divides_the_score() {
        let table = [
            // running, usage, weight, expected
            (2.0, 0.0, 1, 2.0),
            (2.0, 0.0, 2, 1.0),
            (0.0, 3600.0, 1, 1.0),
            (1.0, 7200.0, 3, 1.0),
        ];
        for (running, usage, weight, expected) in table {
            let got = score(running, usage, 3600.0, weight);
            assert!(
                (got - expected).abs() < 1e-9,
                "{running} {usage} {weight}: {got}"
            );
        }
    }
}
