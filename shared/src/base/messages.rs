//! Everything the suite writes on stderr except a progress bar's own line: diagnostics, `-v`
//! lines, warnings, errors, step-by-step progress and prompts. One place, so that no message is
//! appended to an unfinished progress bar ([`crate::base::progress::line_end`]) and each kind
//! has one shape (`warning: …`, `error: …`). Results go to stdout through the printers' `emit`.

use std::io::Write;

/// One line on stderr.
pub fn message(text: &str) {
    eprintln!("{}{text}", crate::base::progress::line_end());
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
    eprint!("{}{text}", crate::base::progress::line_end());
    let _ = std::io::stderr().flush();
}
