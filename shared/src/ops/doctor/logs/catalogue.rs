//! The catalogue of etcd's failure signatures, kept as data in
//! `shared/data/etcd-log-signatures.json` (each entry with its matchers per format, the cause,
//! the severity, the next step and its source in etcd).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::parse::{Format, Quick, Record};

/// The catalogue file, compiled in.
pub const DATA: &str = include_str!("../../../../data/etcd-log-signatures.json");

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The member cannot run.
    Critical,
    /// The member or the cluster fails requests.
    Error,
    /// A sign to watch.
    Warning,
}

impl Severity {
    /// As printed in the table.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// Which format a matcher applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchFormat {
    /// zap JSON.
    Zap,
    /// capnslog text.
    Text,
    /// Both (and raw lines).
    Any,
}

impl MatchFormat {
    /// Whether a record of `format` is one this matcher reads.
    fn admits(self, format: Format) -> bool {
        match self {
            MatchFormat::Any => true,
            MatchFormat::Zap => format == Format::Zap,
            MatchFormat::Text => format == Format::Text,
        }
    }
}

/// One way an entry matches a record: every given key has to hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The format.
    pub format: MatchFormat,
    /// A substring of the message.
    #[serde(default)]
    pub msg: Option<String>,
    /// Substrings of named zap fields.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// A substring of the message or of any field.
    #[serde(default)]
    pub contains: Option<String>,
}

impl Matcher {
    fn matches(&self, r: &Record) -> bool {
        let format_ok = self.format.admits(r.format);
        if !format_ok || (self.msg.is_none() && self.contains.is_none() && self.fields.is_empty()) {
            return false;
        }
        if self.msg.as_deref().is_some_and(|m| !r.msg.contains(m)) {
            return false;
        }
        if !self.fields.iter().all(|(k, v)| r.field(k).is_some_and(|f| f.contains(v.as_str()))) {
            return false;
        }
        match self.contains.as_deref() {
            None => true,
            Some(c) => {
                r.msg.contains(c)
                    || r.fields.values().any(|v| match v {
                        serde_json::Value::String(s) => s.contains(c),
                        v => v.to_string().contains(c),
                    })
            }
        }
    }
}

/// One failure signature.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Stable identifier (in `-o json`).
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// A short line for the table's WHAT.
    pub what: String,
    /// The cause in an operator's words.
    pub cause: String,
    /// The next step.
    pub next: String,
    /// How it matches.
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    /// Where the message comes from: etcd source lines or documentation.
    pub source: Vec<String>,
    /// etcd stops on its own after this line (no fatal line follows): how its container ended.
    #[serde(default)]
    pub stops: bool,
    /// The lines that say the failure is over (NOSPACE's `alarm disarmed`, a peer's `became
    /// active`): a finding with one of these after the line that opened it is history, not the
    /// cluster's state.
    #[serde(default)]
    pub cleared_by: Vec<Matcher>,
    /// The lines that open the failure again after it was cleared (a peer's `became
    /// inactive`); when empty, every line of the entry does. A line of the entry that is not
    /// one of these (a prober's warning that lags the peer's return) does not.
    #[serde(default)]
    pub reopened_by: Vec<Matcher>,
    /// What one failure of the entry is about, when there can be several at once (a peer):
    /// each is cleared on its own, and the finding is cleared when all of them are.
    #[serde(default)]
    pub key: Option<Key>,
}

/// Where a line names what it is about.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// zap fields, the first present one (`peer-id`, `remote-peer-id`).
    #[serde(default)]
    pub fields: Vec<String>,
    /// The word after this text in the message (capnslog's `peer 8e9e05c52164694d became …`).
    #[serde(default)]
    pub after: Option<String>,
}

impl Key {
    /// The key of a line: `text` is the whole line (zap's JSON is searched for the fields
    /// without a full parse), `msg` its message.
    pub fn of(&self, format: Format, msg: &str, text: &str) -> Option<String> {
        if format == Format::Zap {
            for f in &self.fields {
                let head = format!("\"{f}\":\"");
                if let Some(at) = text.find(&head) {
                    let rest = &text[at + head.len()..];
                    // Peer IDs are hex: a value with an escape is no peer's.
                    return super::parse::plain_string(rest).map(|(v, _)| v.to_string());
                }
            }
        }
        let after = self.after.as_deref()?;
        let rest = &msg[msg.find(after)? + after.len()..];
        let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        (!word.is_empty()).then_some(word)
    }
}

impl Signature {
    /// True when one of its matchers matches.
    pub fn matches(&self, r: &Record) -> bool {
        self.matchers.iter().any(|m| m.matches(r))
    }

    /// Whether a line of this entry opens it again after a clear ([`Signature::reopened_by`]):
    /// from its format and message alone (reopening matchers match on the message).
    pub fn reopens(&self, format: Format, msg: &str) -> bool {
        self.reopened_by.is_empty()
            || self
                .reopened_by
                .iter()
                .any(|m| m.format.admits(format) && m.msg.as_deref().is_some_and(|n| msg.contains(n)))
    }
}

/// Whether a line can be one that clears a failure ([`Signature::cleared_by`]): it holds the
/// message one of those matchers looks for. Such a line is read in full by [`clearing`].
pub fn may_clear(line: &str) -> bool {
    static NEEDLES: OnceLock<Vec<String>> = OnceLock::new();
    let needles = NEEDLES.get_or_init(|| {
        signatures()
            .iter()
            .flat_map(|s| &s.cleared_by)
            .filter_map(|m| m.msg.clone().or_else(|| m.contains.clone()))
            .collect()
    });
    needles.iter().any(|n| in_line(line, n))
}

/// The signature a record says is over, when it is one of a [`Signature::cleared_by`] line.
pub fn clearing(r: &Record) -> Option<&'static Signature> {
    signatures().iter().find(|s| s.cleared_by.iter().any(|m| m.matches(r)))
}

#[derive(Debug, Deserialize)]
struct File {
    #[allow(dead_code)]
    about: String,
    signatures: Vec<Signature>,
}

/// The catalogue, parsed once.
pub fn signatures() -> &'static [Signature] {
    static SIGS: OnceLock<Vec<Signature>> = OnceLock::new();
    SIGS.get_or_init(|| match serde_json::from_str::<File>(DATA) {
        Ok(f) => f.signatures,
        // A unit test parses the file; a broken catalogue cannot ship.
        Err(_) => Vec::new(),
    })
}

/// Whether a line can match a signature at all: it holds one of the strings some matcher looks
/// for (a message, a field's value, a field's name when any value will do), as written or as
/// JSON escapes it. A line without any is read without building its record (the speed of
/// `doctor logs` on a big log); one with some is matched in full by [`find`].
pub fn may_match(line: &str) -> bool {
    static NEEDLES: OnceLock<Option<aho_corasick::AhoCorasick>> = OnceLock::new();
    let ac = NEEDLES.get_or_init(|| {
        let mut needles = Vec::new();
        for m in signatures().iter().flat_map(|s| &s.matchers) {
            needles.extend(m.msg.iter().chain(&m.contains).cloned());
            for (k, v) in &m.fields {
                needles.push(if v.is_empty() { format!("\"{k}\"") } else { v.clone() });
            }
        }
        let escaped: Vec<String> = needles.iter().filter_map(|n| json_escaped(n)).collect();
        needles.extend(escaped);
        aho_corasick::AhoCorasick::new(&needles).ok()
    });
    ac.as_ref().is_none_or(|ac| ac.is_match(line))
}

/// [`find`] for a line read only as far as its head ([`super::parse::quick`]), without a record
/// of its fields: the first signature that matches (`Some(None)`: none does), or `None` when
/// a matcher needs the fields to tell (a needle it looks for in them is in the line), and the
/// line must be parsed in full. Signatures are tried in order, as [`find`] tries them.
pub fn find_quick(q: &Quick<'_>, line: &str) -> Option<Option<&'static Signature>> {
    for s in signatures() {
        for m in &s.matchers {
            if !m.format.admits(q.format) || m.msg.as_deref().is_some_and(|n| !q.msg.contains(n)) {
                continue;
            }
            let needles: Vec<&str> = m.contains.iter().chain(m.fields.values()).map(String::as_str).collect();
            if needles.is_empty() {
                if m.msg.is_some() {
                    return Some(Some(s));
                }
                continue;
            }
            if needles.iter().all(|n| in_line(line, n)) {
                return None;
            }
        }
    }
    Some(None)
}

/// Whether `needle` is in `line` as written or as JSON escapes it.
fn in_line(line: &str, needle: &str) -> bool {
    line.contains(needle) || json_escaped(needle).is_some_and(|e| line.contains(&e))
}

/// `needle` as it reads inside a JSON string, when escaping changes it (quotes, backslashes,
/// control characters).
fn json_escaped(needle: &str) -> Option<String> {
    let q = serde_json::to_string(needle).ok()?;
    let inner = q.get(1..q.len().saturating_sub(1))?;
    (inner != needle).then(|| inner.to_string())
}

/// The first signature that matches a record.
pub fn find(r: &Record) -> Option<&'static Signature> {
    signatures().iter().find(|s| s.matches(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines built from every matcher (its message, its needles in the message or in a field,
    /// one needle missing, with quotes JSON escapes): `find_quick` gives what `find` gives on
    /// the parsed record, or leaves the line to it.
    #[test]
    fn find_quick_agrees_with_find() {
        use super::super::parse::{parse, quick};
        let mut lines = Vec::new();
        for m in signatures().iter().flat_map(|s| &s.matchers) {
            let msg = m.msg.clone().unwrap_or_else(|| "something".into());
            let needles: Vec<String> = m.contains.iter().chain(m.fields.values()).cloned().collect();
            let fields: serde_json::Map<String, serde_json::Value> =
                m.fields.iter().map(|(k, v)| (k.clone(), format!("a \"{v}\" b").into())).collect();
            for (msg, error) in [
                (msg.clone(), needles.join(" ")),
                (format!("{msg} {}", needles.join(" ")), String::new()),
                (msg.clone(), needles.iter().skip(1).cloned().collect::<Vec<_>>().join(" ")),
                (msg.clone(), "connect: connection refused".into()),
            ] {
                // zap's order: level, ts, caller, msg, then the fields.
                let json = |v: &str| serde_json::Value::from(v).to_string();
                let extra: String = fields.iter().map(|(k, v)| format!(",{}:{v}", json(k))).collect();
                lines.push(format!(
                    r#"{{"level":"warn","ts":"2026-12-06T06:42:30.992Z","caller":"x.go:1","msg":{},"error":{}{extra}}}"#,
                    json(&msg),
                    json(&error)
                ));
            }
            lines.push(format!("2026-12-06 06:44:49.892239 W | rafthttp: {msg} {}", needles.join(" ")));
        }
        let mut quick_ones = 0;
        for line in &lines {
            let Some(q) = quick(None, line) else { continue };
            let want = find(&parse(None, line)).map(|s| &s.id);
            if let Some(got) = find_quick(&q, line) {
                quick_ones += 1;
                assert_eq!(got.map(|s| &s.id), want, "{line}");
            }
        }
        assert!(quick_ones > lines.len() / 3, "{quick_ones} of {}", lines.len());
    }

    #[test]
    fn a_line_that_may_match_is_never_skipped() {
        // Every string a matcher looks for makes its line worth a full read, also as zap
        // escapes it inside a JSON string.
        for m in signatures().iter().flat_map(|s| &s.matchers) {
            for n in m.msg.iter().chain(&m.contains).chain(m.fields.values().filter(|v| !v.is_empty())) {
                assert!(may_match(&format!("x {n} y")), "{n}");
                let json = serde_json::to_string(&serde_json::json!({ "msg": format!("x {n} y") })).unwrap();
                assert!(may_match(&json), "{json}");
            }
        }
        assert!(!may_match(
            r#"{"level":"info","ts":"2026-12-06T06:41:53.864Z","msg":"published local member to cluster through raft"}"#
        ));
    }

    #[test]
    fn every_entry_has_a_source_a_matcher_and_words() {
        let f: File = serde_json::from_str(DATA).expect("the catalogue parses");
        assert!(f.signatures.len() >= 15, "{}", f.signatures.len());
        let mut ids = std::collections::BTreeSet::new();
        for s in &f.signatures {
            assert!(ids.insert(s.id.clone()), "duplicate id {}", s.id);
            assert!(!s.source.is_empty(), "{} has no source", s.id);
            for u in &s.source {
                assert!(u.starts_with("https://"), "{}: source {u} is not a URL", s.id);
            }
            assert!(!s.matchers.is_empty(), "{} has no matcher", s.id);
            for m in &s.matchers {
                assert!(m.msg.is_some() || m.contains.is_some() || !m.fields.is_empty(), "{}: empty matcher", s.id);
            }
            assert!(!s.cause.is_empty() && !s.next.is_empty() && !s.what.is_empty(), "{}", s.id);
            for m in &s.cleared_by {
                // may_clear looks for a matcher's message (or its `contains`).
                assert!(m.msg.is_some() || m.contains.is_some(), "{}: a cleared_by matcher without msg", s.id);
            }
            for m in &s.reopened_by {
                // reopens() matches on the message alone.
                assert!(m.msg.is_some() && m.fields.is_empty() && m.contains.is_none(), "{}: reopened_by", s.id);
                assert!(!s.cleared_by.is_empty(), "{}: reopened_by without cleared_by", s.id);
            }
        }
        assert_eq!(signatures().len(), f.signatures.len());
    }
}
