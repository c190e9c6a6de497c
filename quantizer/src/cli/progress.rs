//! Progress bars on standard error, in one style. indicatif draws nothing when standard error is not
//! a terminal, so pipes and logs get no bar.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps drawn by `template` (indicatif's syntax) with the house's bar characters.
fn bar(len: usize, template: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(template).map_or_else(
        |_| ProgressStyle::default_bar(),
        |s| s.progress_chars("=> "),
    );
    ProgressBar::new(len as u64).with_style(style)
}

/// A bar over an epoch's `steps`, with the epoch as its prefix and the running loss as its message.
pub fn epoch(steps: usize) -> ProgressBar {
    bar(
        steps,
        "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, {eta} left",
    )
}

/// A bar over `batches` batches of samples, saying what is done to them (`running`, `calibrating`).
pub fn batches(batches: usize, what: &str) -> ProgressBar {
    let b = bar(
        batches,
        "{prefix} [{bar:30}] {pos}/{len} batches, {eta} left",
    );
    b.set_prefix(what.to_string());
    b
}

/// The bar of post-training quantization ([`crate::quantize::ptq::quantize_observed`]); [`ptq`]
/// moves it.
pub fn ptq_stages() -> ProgressBar {
    bar(1, "{prefix} [{bar:30}] {pos}/{len} {msg}, {elapsed}")
}

/// Shows `p` on a [`ptq_stages`] bar: the stage, and the nodes done in calibration and bias
/// correction (past the last stage: finished, cleared).
pub fn ptq(bar: &ProgressBar, p: crate::quantize::ptq::Progress) {
    use crate::quantize::ptq::STAGES;
    let Some(name) = STAGES.get(p.stage) else {
        bar.finish_and_clear();
        return;
    };
    bar.set_prefix(format!("stage {}/{}: {name}", p.stage + 1, STAGES.len()));
    if p.total == 0 {
        bar.set_length(1);
        bar.set_position(0);
        bar.set_message("");
    } else {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message("nodes");
    }
}
