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

/// A bar over `names.len()` stages; [`stage`] moves it to one.
pub fn stages(names: &[&str]) -> ProgressBar {
    bar(
        names.len(),
        "[{bar:30}] {pos}/{len} stages: {msg}, {elapsed}",
    )
}

/// Moves a [`stages`] bar to stage `i` of `names` (past the last: finished, cleared).
pub fn stage(bar: &ProgressBar, names: &[&str], i: usize) {
    match names.get(i) {
        Some(name) => {
            bar.set_message(name.to_string());
            bar.set_position(i as u64);
        }
        None => bar.finish_and_clear(),
    }
}
