//! The catalogue of etcd's failure signatures, kept as data in
//! `shared/data/etcd-log-signatures.json` (each entry with its matchers per format, the cause,
//! the severity, the next step and its source in etcd).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::parse::{Format, Record};

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
        let format_ok = match self.format {
            MatchFormat::Any => true,
            MatchFormat::Zap => r.format == Format::Zap,
            MatchFormat::Text => r.format == Format::Text,
        };
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
}

impl Signature {
    /// True when one of its matchers matches.
    pub fn matches(&self, r: &Record) -> bool {
        self.matchers.iter().any(|m| m.matches(r))
    }
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

/// The first signature that matches a record.
pub fn find(r: &Record) -> Option<&'static Signature> {
    signatures().iter().find(|s| s.matches(r))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
        assert_eq!(signatures().len(), f.signatures.len());
    }
}
