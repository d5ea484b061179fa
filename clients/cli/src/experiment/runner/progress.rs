//! Progress of a batch on stderr: a bar when stderr is a terminal, else (with
//! progress on) one line per output.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::experiment::results::OutputRecord;

/// The progress bar of a batch (hidden when `visible` is false or stderr is not a
/// terminal).
pub(super) fn progress_bar(len: u64, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} outputs, ETA {eta}\n  {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Progress reporting of a batch.
pub(super) struct Progress<'a> {
    pub(super) bar: &'a ProgressBar,
    /// Print one line per output on stderr (when the bar cannot be drawn).
    pub(super) log_lines: bool,
    /// Outputs to generate in this invocation.
    pub(super) total: usize,
    pub(super) started: Instant,
}

impl Progress<'_> {
    /// Counts one output done.
    pub(super) fn output_done(&self, r: &OutputRecord) {
        self.bar.inc(1);
        if self.log_lines {
            let done = self.bar.position() as usize;
            let elapsed = self.started.elapsed().as_secs_f64();
            let eta = elapsed / done as f64 * self.total.saturating_sub(done) as f64;
            eprintln!(
                "[{done}/{}] {} / {} / {}: {} tokens ({}), {} in context, TTFT {:.0} ms, {:.1} tok/s; elapsed {elapsed:.0} s, ETA {eta:.0} s",
                self.total,
                r.example_id,
                r.condition,
                r.output,
                r.generated_tokens,
                r.finish_reason,
                r.cache_tokens,
                r.ttft_ms,
                r.tok_s,
            );
        }
    }
}
