//! Colour for people at a terminal: ok green, warn yellow, fail red, in tables, the checks and
//! the progress bar. `--color auto` (the default) decides per stream as `anstream` (clap's own
//! colour crate) does: never with `NO_COLOR` (<https://no-color.org>) or `CLICOLOR=0`, always
//! with `CLICOLOR_FORCE`, else only on a terminal whose `TERM` supports colour; `always` and
//! `never` decide alone. JSON, YAML and jsonpath output are never coloured. The escapes are
//! `anstyle`'s.

use std::sync::atomic::{AtomicU8, Ordering};

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether `stream` gets colour.
    pub fn enabled<S: anstream::stream::RawStream>(self, stream: &S) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never,
        }
    }

    /// For stdout.
    pub fn stdout(self) -> bool {
        self.enabled(&std::io::stdout())
    }
}

/// The choice for stderr (progress and notes), set once by the command line.
static STDERR: AtomicU8 = AtomicU8::new(0);

/// Records `--color` for what is drawn on stderr.
pub fn set_stderr(choice: ColorChoice) {
    STDERR.store(choice as u8 + 1, Ordering::Relaxed);
}

/// Whether stderr gets colour.
pub fn stderr() -> bool {
    let choice = match STDERR.load(Ordering::Relaxed) {
        2 => ColorChoice::Always,
        3 => ColorChoice::Never,
        _ => ColorChoice::Auto,
    };
    choice.enabled(&std::io::stderr())
}

/// What a word says, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// ok, healthy, valid.
    Good,
    /// warn, a learner catching up.
    Warn,
    /// fail, unhealthy, invalid, damaged.
    Bad,
}

impl Tone {
    /// The tone of a status word or a table cell, if it has one.
    pub fn of(word: &str) -> Option<Tone> {
        const GOOD: &[&str] = &["ok", "healthy", "valid", "verified", "in sync"];
        const WARN: &[&str] = &["warn", "catching up", "not started"];
        const BAD: &[&str] = &["fail", "unhealthy", "invalid", "damaged"];
        let is = |words: &[&str]| {
            words.iter().any(|w| word == *w || word.strip_prefix(w).is_some_and(|r| r.starts_with(" (")))
        };
        if is(GOOD) {
            Some(Tone::Good)
        } else if is(WARN) {
            Some(Tone::Warn)
        } else if is(BAD) {
            Some(Tone::Bad)
        } else {
            None
        }
    }

    /// The colour.
    fn style(self) -> anstyle::Style {
        let c = match self {
            Tone::Good => anstyle::AnsiColor::Green,
            Tone::Warn => anstyle::AnsiColor::Yellow,
            Tone::Bad => anstyle::AnsiColor::Red,
        };
        anstyle::Style::new().fg_color(Some(c.into()))
    }

    /// comfy-table's colour.
    pub fn table_color(self) -> comfy_table::Color {
        match self {
            Tone::Good => comfy_table::Color::DarkGreen,
            Tone::Warn => comfy_table::Color::DarkYellow,
            Tone::Bad => comfy_table::Color::DarkRed,
        }
    }
}

/// `text` in `tone`'s colour when `on`.
pub fn paint(text: &str, tone: Option<Tone>, on: bool) -> String {
    match tone {
        Some(t) if on && !text.is_empty() => format!("{}{text}{}", t.style().render(), t.style().render_reset()),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_and_tones() {
        // A pipe (stdout of cargo's test harness when captured) or any stream: the choice alone.
        let mut sink = std::io::sink();
        let stream: &mut dyn std::io::Write = &mut sink;
        assert!(ColorChoice::Always.enabled(&stream));
        assert!(!ColorChoice::Never.enabled(&stream));
        if std::env::var_os("CLICOLOR_FORCE").is_none() {
            assert!(!ColorChoice::Auto.enabled(&stream), "not a terminal");
        }
        assert_eq!(Tone::of("healthy"), Some(Tone::Good));
        assert_eq!(Tone::of("catching up (42%)"), Some(Tone::Warn));
        assert_eq!(Tone::of("unhealthy"), Some(Tone::Bad));
        assert_eq!(Tone::of("cp-1"), None);
        assert_eq!(paint("fail", Tone::of("fail"), true), "\x1b[31mfail\x1b[0m");
        assert_eq!(paint("fail", Tone::of("fail"), false), "fail");
    }
}
