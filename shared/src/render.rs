//! One renderer for every plugin: pure printers build a [`Table`] (header + rows) or a
//! serializable document; this module formats them as `table`, `wide`, `json` or `yaml`.
//! Results go to stdout; a closed stdout pipe is reported as [`Error::Output`] with
//! `BrokenPipe`, which the binaries turn into a quiet exit.

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Result};

/// The `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Borderless table, UPPERCASE headers.
    Table,
    /// Table with more columns.
    Wide,
    /// Pretty JSON of the documented schema.
    Json,
    /// YAML of the same schema.
    Yaml,
}

impl OutputFormat {
    /// Parses `table|wide|json|yaml`.
    pub fn parse(s: &str) -> Option<OutputFormat> {
        Some(match s {
            "table" => OutputFormat::Table,
            "wide" => OutputFormat::Wide,
            "json" => OutputFormat::Json,
            "yaml" => OutputFormat::Yaml,
            _ => return None,
        })
    }

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
    /// columns, no trailing blanks.
    pub fn format(&self, no_headers: bool) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::NOTHING);
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        if !no_headers {
            t.set_header(self.header.iter().map(|h| h.to_uppercase()));
        }
        for r in &self.rows {
            t.add_row(r.iter().map(|c| if c.is_empty() { "-".to_string() } else { c.clone() }));
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
        _ => Err(Error::Usage("internal: document() needs json or yaml".into())),
    }
}

/// One compact JSON line (for `--watch -o json`).
pub fn json_line<T: Serialize>(doc: &T) -> Result<String> {
    serde_json::to_string(doc)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Error::Output(std::io::Error::other(e)))
}

/// Writes to stdout and flushes.
pub fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).map_err(Error::Output)?;
    out.flush().map_err(Error::Output)
}

/// Serde helper: a `Duration` as a string with units (`"3.214ms"`, `"1.5s"`).
pub mod duration_ms {
    use std::time::Duration;

    /// Serializes a duration with units.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt(*d))
    }

    /// The text form used in JSON and YAML.
    pub fn fmt(d: Duration) -> String {
        let ms = d.as_secs_f64() * 1000.0;
        if ms < 1000.0 {
            format!("{ms:.3}ms")
        } else {
            format!("{:.3}s", ms / 1000.0)
        }
    }

    /// The same for an optional duration.
    pub mod option {
        use std::time::Duration;
        /// Serializes an optional duration with units (null when absent).
        pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::fmt(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

/// One `--watch` frame for a terminal: home the cursor, draw, clear what is left of the
/// previous frame, so that each round redraws in place.
pub fn redraw_frame(body: &str) -> String {
    format!("\x1b[H{}\x1b[J", body.replace('\n', "\x1b[K\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
