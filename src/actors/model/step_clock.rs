//! What model steps really cost, in the scheduler's units.
//!
//! The scheduler prices a prefill chunk at its token count, but a chunk's time grows
//! with the context it attends to: at 20K tokens of context a 128-token chunk of the
//! 270M model takes as long as dozens of decode steps. With
//! [`StepCharge::Time`](crate::scheduler::StepCharge) the model actor times every
//! step and charges a prefill chunk what it took, in decode steps (one decode step
//! per row of a batched pass is the unit), so a cluster prefilling a huge prompt gets
//! the same share of model *time* as a cluster decoding, not the same share of tokens.

use std::time::Duration;

/// Weight of the newest decode step in the running mean of decode-step time.
const SMOOTHING: f64 = 0.2;

/// A running mean of how long one decode step takes.
#[derive(Debug, Default)]
pub(super) struct StepClock {
    /// Seconds per decode step per row (None until a decode step was timed).
    decode_row_secs: Option<f64>,
}

impl StepClock {
    /// Notes a decode step of `rows` jobs (one forward pass) that took `elapsed`.
    pub(super) fn decode_step(&mut self, elapsed: Duration, rows: usize) {
        let per_row = elapsed.as_secs_f64() / rows.max(1) as f64;
        self.decode_row_secs = Some(match self.decode_row_secs {
            None => per_row,
            Some(mean) => mean + SMOOTHING * (per_row - mean),
        });
    }

    /// What a step that took `elapsed` is worth when one decode step is worth
    /// `decode_cost` (None until a decode step was timed: no unit yet).
    pub(super) fn price(&self, elapsed: Duration, decode_cost: u32) -> Option<i64> {
        let unit = self.decode_row_secs.filter(|u| *u > 0.0)?;
        let steps = elapsed.as_secs_f64() / unit;
        Some((steps * f64::from(decode_cost)).round().max(1.0) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_decode_steps_per_row() {
        let mut clock = StepClock::default();
        assert_eq!(clock.price(Duration::from_millis(50), 32), None);
        // A 4-row pass of 40 ms: 10 ms per row and decode step.
        clock.decode_step(Duration::from_millis(40), 4);
        assert_eq!(clock.price(Duration::from_millis(50), 32), Some(160));
        assert_eq!(clock.price(Duration::ZERO, 32), Some(1));
    }

    #[test]
    fn follows_the_recent_decode_time() {
        let mut clock = StepClock::default();
        clock.decode_step(Duration::from_millis(10), 1);
        for _ in 0..50 {
            clock.decode_step(Duration::from_millis(20), 1);
        }
        // 100 ms is five 20 ms steps now.
        assert_eq!(clock.price(Duration::from_millis(100), 1), Some(5));
    }
}
