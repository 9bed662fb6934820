//! The one progress line of the suite, drawn by `indicatif` on stderr: a bar, a percentage and
//! a detail, redrawn at most 10 times a second, hidden when stderr is not a terminal (indicatif's
//! own test). Snapshot saves, usage's stream and learner catch-up draw through it.
//!
//! Every other line on stderr ([`crate::base::messages`]) steps around the bar on screen
//! ([`messages::aside`]): indicatif clears the bar, the line is written, the bar is drawn again
//! below it, so that no message runs into a bar's unfinished line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::base::messages;

const WIDTH: usize = 30;
/// Positions per 100%: a tenth of a percent.
const SCALE: u64 = 1000;

/// A progress line.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
    /// Its number as the messages' bar, from its first draw on.
    id: Option<u64>,
    color: bool,
    /// What the bar shows now: bytes, a percentage, or a line of text.
    shape: Option<Shape>,
    notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bytes,
    Percent,
    Text,
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Bar {
    /// A bar on stderr (drawn only when stderr is a terminal).
    pub fn new() -> Bar {
        Bar::with_target(ProgressDrawTarget::stderr_with_hz(10), super::color::stderr())
    }

    /// A bar on `target`; from its first draw until it is finished, the one the messages step
    /// around.
    fn with_target(target: ProgressDrawTarget, color: bool) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(SCALE), target);
        Bar { bar, id: None, color, shape: None, notes: Vec::new() }
    }

    fn shape(&mut self, shape: Shape) {
        if self.shape == Some(shape) {
            return;
        }
        self.shape = Some(shape);
        if self.id.is_none() {
            self.id = Some(messages::hold_bar(self.bar.clone()));
        }
        // The filled part of the bar in green (`--color`).
        let bar = if self.color { format!("{{bar:{WIDTH}.green}}") } else { format!("{{bar:{WIDTH}}}") };
        let template = match shape {
            Shape::Bytes => format!("[{bar}] {{percent:>3}}%  {{bytes}} / {{total_bytes}}  {{bytes_per_sec}}"),
            Shape::Percent => format!("[{bar}] {{msg}}"),
            Shape::Text => "{msg}".to_string(),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            self.bar.set_style(style.progress_chars("# "));
        }
    }

    /// A percentage (100 when done) and a detail after it: `[####    ]  42.0%  detail`.
    pub fn percent(&mut self, percent: f64, detail: &str) {
        self.shape(Shape::Percent);
        self.bar.set_length(SCALE);
        self.bar.set_position(((percent.clamp(0.0, 100.0) / 100.0) * SCALE as f64) as u64);
        self.bar.set_message(format!("{percent:>5.1}%  {detail}"));
    }

    /// A line of text in the bar's place (`waiting for … to start`).
    pub fn text(&mut self, line: &str) {
        self.shape(Shape::Text);
        self.bar.set_message(line.to_string());
    }

    /// A line of its own on stderr (always, terminal or not), printed once per distinct text;
    /// the bar is drawn again below it.
    pub fn note(&mut self, text: &str) {
        if self.notes.iter().any(|n| n == text) {
            return;
        }
        self.notes.push(text.to_string());
        messages::message(text);
    }

    /// Bytes of a stream: done of total, with the rate.
    pub fn bytes(&mut self, done: u64, total: u64) {
        self.shape(Shape::Bytes);
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Ends the bar: left on screen as it was last drawn, its line ended; the messages no
    /// longer step around it.
    pub fn finish(&self) {
        if let Some(id) = self.id {
            messages::release_bar(id);
        }
        if self.shape.is_none() {
            // Never drawn: nothing to leave on screen (indicatif would draw its default bar).
            self.bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if !self.bar.is_finished() {
            self.bar.abandon();
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
    use crate::base::messages::aside;
    use indicatif::{InMemoryTerm, TermLike};
    use std::sync::Mutex;

    /// One bar at a time: the messages step around the one bar on screen.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// What a terminal shows: its rows, trailing blanks dropped.
    fn screen(term: &InMemoryTerm) -> Vec<String> {
        let mut rows: Vec<String> = term.contents().lines().map(|l| l.trim_end().to_string()).collect();
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        rows
    }

    /// The bug this replaced: `[####] 100.0%  -  eta -Promoted m4 …`. A message written while a
    /// bar is on screen gets a line of its own above the bar, which is drawn again below it.
    #[test]
    fn a_message_while_a_bar_is_drawn_steps_around_it() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let term = InMemoryTerm::new(10, 100);
        let mut bar = Bar::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())), false);
        bar.percent(100.0, "-  eta -");
        bar.bar.force_draw();
        let drawn = format!("[{}] 100.0%  -  eta -", "#".repeat(WIDTH));
        assert_eq!(screen(&term), std::slice::from_ref(&drawn));
        aside(|| term.write_line("Promoted m4").unwrap());
        assert_eq!(screen(&term), ["Promoted m4".to_string(), drawn.clone()]);
        bar.percent(40.0, "x");
        bar.bar.force_draw();
        let half = format!("[{}{}]  40.0%  x", "#".repeat(12), " ".repeat(WIDTH - 12));
        assert_eq!(screen(&term), ["Promoted m4".to_string(), half.clone()]);
        // Finished, the bar stays where it was; the messages no longer step around it.
        bar.finish();
        assert!(!messages::holds_bar(), "released");
        drop(bar);
        assert_eq!(screen(&term), ["Promoted m4".to_string(), half]);
    }

    /// A bar that never had anything to show leaves nothing on screen (`learner remove`).
    #[test]
    fn a_bar_never_drawn_leaves_nothing() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let term = InMemoryTerm::new(10, 100);
        let bar = Bar::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())), false);
        aside(|| term.write_line("removed m3").unwrap());
        drop(bar);
        assert_eq!(screen(&term), ["removed m3"]);
    }

    #[test]
    fn hidden_when_stderr_is_no_terminal() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // cargo's test harness captures stderr: not a terminal.
        let bar = Bar::new();
        assert!(bar.bar.is_hidden());
        // A message is still written (through `aside`, which runs it at once).
        assert_eq!(aside(|| 7), 7);
    }
}
