//! Pieces of `webhook-bench` (`bench/webhook`): the open-loop schedule and the HTTP load
//! generator.

pub mod load;
pub mod schedule;
