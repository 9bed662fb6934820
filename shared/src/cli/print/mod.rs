//! The one way results leave the suite. Every command's result is a type that implements
//! [`Print`] (serializable for `-o json|yaml`, a table or text form for `-o table|wide`), and
//! goes out through [`Output::emit`] — so no command can skip `-o json`, dry-run plans
//! included. The per-noun printers live beside this module, one file per noun (as etcdctl's
//! printer): [`health`], [`members`], [`snapshot`], [`restore`], [`defrag`]; [`progress`] is the one
//! progress line on stderr. Results go to stdout; a closed stdout pipe is reported as
//! [`Error::Output`] with `BrokenPipe`, which the binaries turn into a quiet exit.

pub mod defrag;
pub mod doctor;
pub mod health;
pub mod jsonpath;
pub mod logs;
pub mod members;
pub mod restore;
pub mod snapshot;
pub mod upgrade;
pub mod usage;

use std::io::Write;

use serde::Serialize;

use crate::base::color;
use crate::error::{Error, Result};

/// The `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat {
    /// Borderless table, UPPERCASE headers.
    Table,
    /// Table with more columns.
    Wide,
    /// Pretty JSON of the documented schema.
    Json,
    /// YAML of the same schema.
    Yaml,
    /// `jsonpath=TEMPLATE`: the template over the JSON document (compiled once per process).
    JsonPath(&'static jsonpath::Template),
}

impl OutputFormat {
    /// Parses an `-o` value: `table`, `wide`, `json`, `yaml` or `jsonpath=TEMPLATE`.
    pub fn parse(s: &str) -> std::result::Result<OutputFormat, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "wide" => Ok(OutputFormat::Wide),
            "json" => Ok(OutputFormat::Json),
            "yaml" => Ok(OutputFormat::Yaml),
            s => match s.strip_prefix("jsonpath=") {
                Some(t) => jsonpath::Template::parse(t)
                    .map(|t| OutputFormat::JsonPath(Box::leak(Box::new(t))))
                    .map_err(|e| format!("invalid jsonpath template: {e}")),
                None => Err(format!("{s:?}: expected table, wide, json, yaml or jsonpath=TEMPLATE")),
            },
        }
    }
}

impl OutputFormat {
    /// True for json and yaml.
    pub fn is_structured(self) -> bool {
        matches!(self, OutputFormat::Json | OutputFormat::Yaml)
    }
}

/// A table: header and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column titles (printed UPPERCASE).
    pub header: Vec<String>,
    /// The rows; each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Appends a row.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    /// Formats the table kubectl-style: no borders, UPPERCASE headers, three spaces between
    /// columns, no trailing blanks, `-` for an empty cell. With `no_headers` no value holds a
    /// blank (a blank inside a value becomes `_`), so that `awk` splits rows into columns.
    pub fn format(&self, no_headers: bool) -> String {
        self.render(View { no_headers, ..Default::default() })
    }

    /// [`Table::format`] for a view: with `color`, a cell whose text has a [`color::Tone`]
    /// (healthy, unhealthy, ok, warn, fail, …) in its colour.
    pub fn render(&self, view: View) -> String {
        let no_headers = view.no_headers;
        let mut t = comfy_table::Table::new();
        if view.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.load_style(comfy_table::presets::NOTHING);
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        if !no_headers {
            t.set_header(self.header.iter().map(|h| h.to_uppercase()));
        }
        for r in &self.rows {
            t.add_row(r.iter().map(|c| {
                let text = match c.as_str() {
                    "" => "-".to_string(),
                    c if no_headers => c.split_whitespace().collect::<Vec<_>>().join("_"),
                    c => c.to_string(),
                };
                let cell = comfy_table::Cell::new(text);
                match color::Tone::of(c).filter(|_| view.color) {
                    Some(t) => cell.fg(t.table_color()),
                    None => cell,
                }
            }));
        }
        for col in t.column_iter_mut() {
            col.set_padding((0, 3));
        }
        let mut out = String::new();
        for line in t.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Serializes a document as pretty JSON or YAML.
pub fn document<T: Serialize>(format: OutputFormat, doc: &T) -> Result<String> {
    match format {
        OutputFormat::Yaml => {
            serde_saphyr::to_string(doc).map_err(|e| Error::Output(std::io::Error::other(e.to_string())))
        }
        OutputFormat::Json => serde_json::to_string_pretty(doc)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::Output(std::io::Error::other(e))),
        _ => Err(Error::Internal("document() needs json or yaml".into())),
    }
}

/// One compact JSON line (for `--watch -o json`).
fn json_line<T: Serialize>(doc: &T) -> Result<String> {
    serde_json::to_string(doc)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Error::Output(std::io::Error::other(e)))
}

/// Writes to stdout and flushes.
pub fn write_stdout(s: &str) -> Result<()> {
    // A result printed while a progress bar is up (learner add's settings, a promotion) steps
    // around the bar as stderr's messages do, on a terminal showing both.
    crate::base::messages::aside(|| {
        let mut out = std::io::stdout().lock();
        out.write_all(s.as_bytes()).map_err(Error::Output)?;
        out.flush().map_err(Error::Output)
    })
}

/// One `--watch` frame for a terminal: home the cursor, draw, clear what is left of the
/// previous frame, so that each round redraws in place.
fn redraw_frame(body: &str) -> String {
    format!("\x1b[H{}\x1b[J", body.replace('\n', "\x1b[K\n"))
}

/// How a result reads in `-o table` and `-o wide`.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    /// `-o wide`: more columns.
    pub wide: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// Colour for a terminal (`--color`, `NO_COLOR`).
    pub color: bool,
}

/// A command's result: serializable for json/yaml, and a table or text for people.
pub trait Print: Serialize {
    /// The table or text form, ending with a newline.
    fn text(&self, view: View) -> String;

    /// The document's `kind` in JSON and YAML, part of the public schema: written out for each
    /// result (never derived from a Rust type's name, so a rename cannot change it) and listed
    /// in shared/docs/output.md.
    fn kind(&self) -> &'static str;
}

/// The schema version of every JSON and YAML document (`apiVersion`); documents of one
/// version only ever gain fields. shared/docs/output.md describes them, shared/docs/health.schema.json is the
/// health report's JSON Schema.
pub const API_VERSION: &str = "kubectl-etcd/v1";

/// Where and how results are printed: the `-o` format and `--no-headers`.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `-o`.
    pub format: OutputFormat,
    /// `--no-headers`.
    pub no_headers: bool,
    /// Tables and text in colour (resolved from `--color` for stdout).
    pub color: bool,
}

impl Output {
    /// An output in this format, without colour.
    pub fn new(format: OutputFormat, no_headers: bool) -> Output {
        Output { format, no_headers, color: false }
    }

    /// The same, coloured when `color`.
    pub fn colored(self, color: bool) -> Output {
        Output { color, ..self }
    }

    /// True for json and yaml.
    pub fn is_structured(&self) -> bool {
        self.format.is_structured()
    }

    fn view(&self) -> View {
        View { wide: self.format == OutputFormat::Wide, no_headers: self.no_headers, color: self.color }
    }

    /// The result as it will be printed.
    pub fn render<T: Print>(&self, doc: &T) -> Result<String> {
        match self.format {
            OutputFormat::Json | OutputFormat::Yaml => document(self.format, &versioned(doc)?),
            OutputFormat::JsonPath(t) => Ok(t.render(&versioned(doc)?)),
            OutputFormat::Table | OutputFormat::Wide => Ok(doc.text(self.view())),
        }
    }

    /// Prints a result on stdout.
    pub fn emit<T: Print>(&self, doc: &T) -> Result<()> {
        write_stdout(&self.render(doc)?)
    }

    /// Prints one round of `--watch`: one JSON line, or one YAML document after `---`, or the
    /// table under a header saying the interval, the round and its time, as watch(1)'s does:
    /// redrawn in place on a terminal, one after another (blank-line separated) when stdout is
    /// not a terminal.
    pub fn emit_round<T: Print>(&self, doc: &T, round: Round) -> Result<()> {
        let table = || format!("{}\n\n{}", round.header(), doc.text(self.view()));
        let text = match self.format {
            OutputFormat::Json => json_line(&versioned(doc)?)?,
            OutputFormat::Yaml => format!("---\n{}", document(self.format, &versioned(doc)?)?),
            OutputFormat::JsonPath(t) => format!("{}\n", t.render(&versioned(doc)?)),
            _ if std::io::IsTerminal::is_terminal(&std::io::stdout()) => redraw_frame(&table()),
            _ => format!("{}\n", table()),
        };
        write_stdout(&text)
    }
}

/// One round of `--watch`.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// The round, from 1.
    pub number: u64,
    /// The interval between rounds.
    pub interval: std::time::Duration,
}

impl Round {
    /// `Every 2s: round 3, 2026-12-06 02:10:00 UTC`: watch(1)'s header, with the round.
    pub fn header(&self) -> String {
        let t = time::OffsetDateTime::now_utc();
        let at = format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        format!("Every {}: round {}, {at} UTC", crate::base::units::format_duration(self.interval), self.number)
    }
}

/// A document with its `apiVersion` and `kind` ahead of its own fields; a result that is a
/// list goes under `items`, as in a Kubernetes List.
fn versioned<T: Print>(doc: &T) -> Result<serde_json::Value> {
    let body = serde_json::to_value(doc).map_err(|e| Error::Output(std::io::Error::other(e)))?;
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), API_VERSION.into());
    out.insert("kind".into(), doc.kind().into());
    match body {
        serde_json::Value::Object(fields) => out.extend(fields),
        other => {
            out.insert("items".into(), other);
        }
    }
    Ok(serde_json::Value::Object(out))
}

/// A titled list of steps (`Next:`, `Done:`), each on its own `  - ` line.
pub fn steps(title: &str, items: &[String]) -> String {
    let mut s = format!("{title}\n");
    for i in items {
        s.push_str(&format!("  - {i}\n"));
    }
    s
}

/// A numbered plan (`  1. …`).
pub fn numbered(items: &[String]) -> String {
    items.iter().enumerate().map(|(i, s)| format!("  {}. {s}\n", i + 1)).collect()
}

/// A block of lines indented by two spaces.
pub fn indented(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Runs `round` every `interval` until a signal (SIGINT, SIGTERM, SIGHUP) ends it, in a round
/// or between two, as [`crate::Error::Interrupted`] (the process exits 128 + the signal's
/// number, as a shell reports it). A failed round is reported on stderr and the next one
/// follows; a closed stdout ends the loop.
pub async fn watch(
    interval: std::time::Duration,
    mut round: impl AsyncFnMut(Round) -> Result<crate::ExitCode>,
) -> Result<crate::ExitCode> {
    crate::base::signals::catch_signals();
    let stopped = || crate::Error::Interrupted(crate::base::signals::interrupting_signal().unwrap_or("a signal"));
    for number in 1.. {
        let done = tokio::select! {
            r = round(Round { number, interval }) => r,
            _ = crate::base::signals::until_interrupted() => return Err(stopped()),
        };
        match done {
            Err(e) if e.is_broken_pipe() => return Err(e),
            Err(e) => crate::base::messages::message(&format!("error: {}", e.report())),
            Ok(_) => {}
        }
        tokio::select! {
            _ = crate::base::signals::until_interrupted() => return Err(stopped()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
    unreachable!("a watch runs until a signal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_round_says_its_interval_number_and_time() {
        let h = Round { number: 3, interval: std::time::Duration::from_secs(2) }.header();
        assert!(h.starts_with("Every 2.0s: round 3, 20") && h.ends_with(" UTC"), "{h}");
        assert_eq!(h.len(), "Every 2.0s: round 3, 2026-12-06 02:10:00 UTC".len(), "{h}");
    }

    #[test]
    fn table_is_kubectl_style() {
        let mut t = Table::new(["name", "endpoint"]);
        t.push(["etcd-a", "https://127.0.0.1:2379"]);
        t.push(["b", ""]);
        let s = t.format(false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "NAME     ENDPOINT");
        assert_eq!(lines[1], "etcd-a   https://127.0.0.1:2379");
        assert_eq!(lines[2], "b        -");
        assert_eq!(t.format(true).lines().count(), 2);
    }
}
