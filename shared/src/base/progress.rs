//! The one progress line of the suite, on stderr and only when stderr is a terminal: a bar,
//! a percentage and a detail, redrawn at most every 100 ms. Snapshot saves and learner
//! catch-up both draw through it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::base::units::format_bytes;

const WIDTH: usize = 30;

/// True while a bar's line is on stderr, unfinished (the cursor at its end).
static ON_SCREEN: AtomicBool = AtomicBool::new(false);

/// What must come before the next message on stderr: a line end when a bar's line is
/// unfinished (the bar stays visible above the message), else nothing. The bar counts as
/// ended afterwards; its next draw starts a new line.
pub fn line_end() -> &'static str {
    if ON_SCREEN.swap(false, Ordering::SeqCst) {
        "\n"
    } else {
        ""
    }
}

/// A progress line.
#[derive(Debug)]
pub struct Bar {
    tty: bool,
    color: bool,
    start: Instant,
    last: Option<Instant>,
    drawn: bool,
    notes: Vec<String>,
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Bar {
    /// A bar that draws when stderr is a terminal.
    pub fn new() -> Bar {
        Bar {
            tty: std::io::stderr().is_terminal(),
            color: super::color::stderr(),
            start: Instant::now(),
            last: None,
            drawn: false,
            notes: Vec::new(),
        }
    }

    /// The bar text: `[####    ]  42.0%  detail`.
    pub fn format(percent: f64, detail: &str) -> String {
        let filled = (((percent / 100.0) * WIDTH as f64) as usize).min(WIDTH);
        format!("[{}{}] {:>5.1}%  {detail}", "#".repeat(filled), " ".repeat(WIDTH - filled), percent)
    }

    /// Redraws the line (throttled unless `force`).
    pub fn draw(&mut self, line: &str, force: bool) {
        if !self.tty {
            return;
        }
        if !force && self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        self.drawn = true;
        ON_SCREEN.store(true, Ordering::SeqCst);
        // The filled part of the bar in green (`--color`).
        let line = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((bar, rest)) if self.color => {
                let filled = bar.trim_end_matches(' ');
                let tone = Some(super::color::Tone::Good);
                format!("[{}{}]{rest}", super::color::paint(filled, tone, true), &bar[filled.len()..])
            }
            _ => line.to_string(),
        };
        eprint!("\r{line}\x1b[K");
    }

    /// A line of its own on stderr (always, terminal or not), printed once per distinct text.
    pub fn note(&mut self, text: &str) {
        if self.notes.iter().any(|n| n == text) {
            return;
        }
        self.notes.push(text.to_string());
        if ON_SCREEN.swap(false, Ordering::SeqCst) {
            // The note takes the bar's place; the next draw brings the bar back below it.
            eprint!("\r\x1b[K");
        }
        eprintln!("{text}");
    }

    /// Bytes of a stream: done of total, with the rate.
    pub fn bytes(&mut self, done: u64, total: u64) {
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let pct = if total > 0 { done as f64 / total as f64 * 100.0 } else { 0.0 };
        let detail = format!(
            "{} / {}  {}/s",
            format_bytes(done),
            format_bytes(total),
            format_bytes((done as f64 / secs) as u64)
        );
        self.draw(&Bar::format(pct, &detail), done >= total);
    }

    /// Ends the line, if the bar's is unfinished.
    pub fn finish(&self) {
        if self.tty && self.drawn {
            eprint!("{}", line_end());
        }
    }
}

impl Drop for Bar {
    /// A bar dropped on an early return ends its line too.
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_after_a_drawn_bar_starts_on_a_line_of_its_own() {
        let mut bar = Bar::new();
        bar.tty = true;
        assert_eq!(line_end(), "", "no bar yet");
        bar.draw(&Bar::format(40.0, "x"), true);
        assert_eq!(line_end(), "\n", "the bar's line is ended before the message");
        assert_eq!(line_end(), "", "once");
        bar.draw(&Bar::format(50.0, "x"), true);
        bar.note("a note takes the bar's place");
        assert_eq!(line_end(), "", "a note clears the bar's line itself");
        bar.draw(&Bar::format(60.0, "x"), true);
        bar.finish();
        assert_eq!(line_end(), "", "finish ended the line");
        drop(bar);
        assert_eq!(line_end(), "");
    }

    #[test]
    fn bar_fills_with_the_percentage() {
        assert_eq!(Bar::format(0.0, "x"), format!("[{}]   0.0%  x", " ".repeat(30)));
        assert_eq!(Bar::format(50.0, "x"), format!("[{}{}]  50.0%  x", "#".repeat(15), " ".repeat(15)));
        assert_eq!(Bar::format(130.0, ""), format!("[{}] 130.0%  ", "#".repeat(30)));
    }
}
