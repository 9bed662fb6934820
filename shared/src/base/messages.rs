//! Everything the suite writes on stderr except a progress bar's own line: diagnostics, `-v`
//! lines, warnings, errors, step-by-step progress and prompts. One place, so that every message
//! steps around the progress bar on screen ([`aside`]: never appended to the bar's line) and
//! each kind has one shape (`warning: …`, `error: …`). Results go to stdout through the
//! printers' `emit`, which steps around the bar the same way.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::ProgressBar;

/// The progress bar on screen now (`base::progress`), with its number.
static BAR: Mutex<Option<(u64, ProgressBar)>> = Mutex::new(None);
/// Numbers the bars.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Makes `bar` the one the messages step around; its number, for [`release_bar`].
pub fn hold_bar(bar: ProgressBar) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut b) = BAR.lock() {
        *b = Some((id, bar));
    }
    id
}

/// The bar numbered `id` is finished (another may have been held since: it stays).
pub fn release_bar(id: u64) {
    if let Ok(mut b) = BAR.lock() {
        if b.as_ref().is_some_and(|(held, _)| *held == id) {
            *b = None;
        }
    }
}

/// Whether a bar is held.
pub fn holds_bar() -> bool {
    BAR.lock().map(|b| b.is_some()).unwrap_or(false)
}

/// Runs `write` (which writes on stderr) with the bar on screen, if any, cleared first and
/// drawn again after it (indicatif's `suspend`).
pub fn aside<R>(write: impl FnOnce() -> R) -> R {
    let bar = BAR.lock().ok().and_then(|b| b.as_ref().map(|(_, bar)| bar.clone()));
    match bar {
        Some(b) if !b.is_hidden() => b.suspend(write),
        _ => write(),
    }
}

/// One line on stderr.
pub fn message(text: &str) {
    aside(|| eprintln!("{text}"));
}

/// `warning: TEXT`.
pub fn warning(text: &str) {
    message(&format!("warning: {text}"));
}

/// `error: TEXT` (for the few errors printed before or outside the error path of `main`).
pub fn error(text: &str) {
    message(&format!("error: {text}"));
}

/// A question on stderr, the answer typed on the same line.
pub fn prompt(text: &str) {
    aside(|| {
        eprint!("{text}");
        let _ = std::io::stderr().flush();
    });
}
