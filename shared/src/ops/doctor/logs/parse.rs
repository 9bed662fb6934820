//! One log line into one record, whatever wraps it: a CRI pod-log line (`<RFC 3339 nano>
//! stdout|stderr P|F <text>`, partial `P` fragments joined by [`Cri`]), a Docker json-file
//! entry (`{"log":"<text>\n","stream":"stderr","time":"…"}`, RKE1's etcd; split entries joined
//! the same way), a journald or syslog line (`Dec 05 20:51:24 host etcd[42]: <text>`, with or
//! without the pid), or the bare text. The text is etcd 3.5's (or 3.4's
//! `--logger=zap`) JSON, etcd 3.4's capnslog line (`2026-12-05 20:51:24.496976 W | rafthttp:
//! …`), or anything else (a Go panic's `panic: …`, its goroutine dump). Detected line by line,
//! so one input may mix them.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The longest line kept (longer ones are cut here; their start still matches).
pub const LINE_MAX: usize = 64 * 1024;

/// How a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON from zap (etcd 3.5+, 3.4 with --logger=zap).
    Zap,
    /// etcd 3.4's capnslog text.
    Text,
    /// Anything else (a panic, a Go runtime message).
    Raw,
}

impl Format {
    /// Its key in a report's `formats`.
    pub fn key(self) -> &'static str {
        match self {
            Format::Zap => "zap",
            Format::Text => "text",
            Format::Raw => "raw",
        }
    }
}

/// One log record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its format.
    pub format: Format,
    /// The time it carries (zap `ts`, capnslog's time, else the CRI, Docker or syslog time), as
    /// nanoseconds since the epoch.
    pub time: Option<i128>,
    /// The level, lowercase (`debug`, `info`, `warn`, `error`, `fatal`, `panic`, …); capnslog's
    /// letters mapped (C → `fatal`, E → `error`, W → `warn`, N/I → `info`, D/T → `debug`).
    pub level: Option<String>,
    /// The message: zap's `msg`, capnslog's text after `pkg: `, a raw line whole.
    pub msg: String,
    /// zap's other fields (not `level`, `ts`, `caller`, `msg`).
    pub fields: Map<String, Value>,
    /// The text of the line, unwrapped from CRI, Docker or syslog (the evidence).
    pub text: String,
}

impl Record {
    /// A field as text: a string as it is, anything else as JSON.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
    }

    /// True when the level says the process is ending (fatal, panic, capnslog's C).
    pub fn is_fatal(&self) -> bool {
        self.level.as_deref().is_some_and(fatal_level)
            || (self.format == Format::Raw
                && (self.msg.starts_with("panic: ") || self.msg.starts_with("fatal error: ")))
    }
}

/// Joins CRI partial (`P`) fragments into whole lines, bounded by [`LINE_MAX`]: per stream
/// (a runtime interleaves stdout's and stderr's lines), on bytes (a fragment may end inside a
/// multi-byte character; the joined line is decoded once).
#[derive(Debug, Default)]
pub struct Cri {
    /// Per stream (0 stdout, 1 stderr): the first fragment's time and the bytes so far.
    partial: [Option<(Option<i128>, Vec<u8>)>; 2],
}

/// What one physical line gives.
#[derive(Debug)]
pub enum Line<'a> {
    /// A whole line: its wrapper's time (CRI, Docker or syslog) and its text (borrowed from the
    /// physical line unless fragments were joined or bytes were not UTF-8).
    Whole(Option<i128>, Cow<'a, str>),
    /// A CRI fragment kept until its `F`.
    Pending,
}

impl Cri {
    /// Unwraps one physical line (without its `\n`).
    pub fn push<'a>(&mut self, line: &'a [u8]) -> Line<'a> {
        if let Some((t, stream, partial, text)) = split_cri(line) {
            return self.fragment(t, stream, partial, Cow::Borrowed(text));
        }
        if let Some((t, stream, partial, text)) = split_docker(line) {
            return self.fragment(t, stream, partial, Cow::Owned(text.into_bytes()));
        }
        // A line that is not framed drops fragments left pending (a cut file).
        self.partial = [None, None];
        match String::from_utf8_lossy(line) {
            Cow::Borrowed(l) => match split_syslog(l) {
                Some((t, text)) => Line::Whole(t, Cow::Borrowed(text)),
                None => Line::Whole(None, Cow::Borrowed(l)),
            },
            Cow::Owned(l) => match split_syslog(&l) {
                Some((t, text)) => Line::Whole(t, Cow::Owned(text.to_string())),
                None => Line::Whole(None, Cow::Owned(l)),
            },
        }
    }

    /// One framed piece of a line (CRI's `P`/`F`, Docker's entry without or with its `\n`):
    /// the whole line once its last piece is in.
    fn fragment<'a>(&mut self, t: Option<i128>, stream: usize, partial: bool, text: Cow<'a, [u8]>) -> Line<'a> {
        if !partial && self.partial[stream].is_none() {
            return Line::Whole(
                t,
                match text {
                    Cow::Borrowed(b) => String::from_utf8_lossy(b),
                    Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
                },
            );
        }
        let (t0, mut acc) = self.partial[stream].take().unwrap_or((t, Vec::new()));
        let room = LINE_MAX.saturating_sub(acc.len());
        acc.extend_from_slice(&text[..text.len().min(room)]);
        if partial {
            self.partial[stream] = Some((t0, acc));
            Line::Pending
        } else {
            Line::Whole(t0, Cow::Owned(String::from_utf8_lossy(&acc).into_owned()))
        }
    }

    /// Fragments left at the end of the input (stdout's, then stderr's).
    pub fn finish(&mut self) -> Vec<(Option<i128>, String)> {
        self.partial
            .iter_mut()
            .filter_map(Option::take)
            .map(|(t, b)| (t, String::from_utf8_lossy(&b).into_owned()))
            .collect()
    }
}

/// One entry of Docker's json-file log driver (`/var/lib/docker/containers/ID/ID-json.log`,
/// where RKE1 runs etcd): `{"log":"<text>\n","stream":"stderr"[,"attrs":{…}],"time":"<RFC 3339
/// nano>"}`. A line longer than 16 KiB is written as several entries, the last one alone
/// ending in `\n`.
#[derive(serde::Deserialize)]
struct DockerEntry {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

/// A Docker json-file entry → (time, stream: 0 stdout or 1 stderr, partial, text).
fn split_docker(line: &[u8]) -> Option<(Option<i128>, usize, bool, String)> {
    if !line.starts_with(br#"{"log":""#) {
        return None;
    }
    // Bytes that are not UTF-8 (Docker writes U+FFFD for them) must not lose the entry.
    let e: DockerEntry = serde_json::from_str(&String::from_utf8_lossy(line)).ok()?;
    let stream = usize::from(e.stream != "stdout");
    let (text, partial) = match e.log.strip_suffix('\n') {
        Some(t) => (t.strip_suffix('\r').unwrap_or(t).to_string(), false),
        None => (e.log, true),
    };
    Some((parse_time(&e.time), stream, partial, text))
}

/// `<time> stdout|stderr P|F <text>` → (time, stream: 0 stdout or 1 stderr, partial, text).
fn split_cri(line: &[u8]) -> Option<(Option<i128>, usize, bool, &[u8])> {
    let sp = memchr::memchr(b' ', line)?;
    let ts = std::str::from_utf8(&line[..sp]).ok()?;
    if !ts.as_bytes().first().is_some_and(u8::is_ascii_digit) || !ts.contains('T') {
        return None;
    }
    let rest = &line[sp + 1..];
    let (stream, rest) =
        if let Some(r) = rest.strip_prefix(b"stdout ") { (0, r) } else { (1, rest.strip_prefix(b"stderr ")?) };
    let (partial, text) = match rest {
        [b'P', b' ', text @ ..] => (true, text),
        [b'F', b' ', text @ ..] => (false, text),
        [b'P'] => (true, &rest[1..]),
        [b'F'] => (false, &rest[1..]),
        _ => return None,
    };
    Some((parse_time(ts), stream, partial, text))
}

/// A syslog line as journalctl and rsyslog write it → (its time when it has a year, text):
/// `Mon DD HH:MM:SS host unit[pid]: text` (journalctl's default; no year: no time; the month
/// as the locale writes it), `2026-12-05T20:51:24+0000 host unit[pid]: text` (`-o short-iso`,
/// rsyslog's RFC 3339), `-o short-full`'s `Sun 2026-12-06 06:42:30 UTC host …`, with or
/// without the host (`--no-hostname`), and without `[pid]` (`host etcd: text`, as a unit with
/// a SyslogIdentifier or `logger -t` writes).
fn split_syslog(line: &str) -> Option<(Option<i128>, &str)> {
    let (t, rest) = syslog_time(line)?;
    // The host, unless the next word is already the tag (`--no-hostname`).
    let first = rest.split(' ').next()?;
    let rest = if first.ends_with(':') { rest } else { rest.split_once(' ')?.1 };
    let (tag, text) = rest.split_once(": ")?;
    // The tag: a program name (`etcd`, `k3s`, `rke2`), with `[pid]` or without.
    let name = match tag.split_once('[') {
        Some((name, pid))
            if pid.strip_suffix(']').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            name
        }
        Some(_) => return None,
        None => tag,
    };
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'@'));
    name_ok.then_some((t, text))
}

/// The time a syslog line starts with → (its time when it has a year, the rest after it).
fn syslog_time(line: &str) -> Option<(Option<i128>, &str)> {
    let clock_ok = |c: &str| {
        let c = c.as_bytes();
        c.len() >= 8 && c[2] == b':' && c[5] == b':' && c[..8].iter().filter(|b| **b != b':').all(u8::is_ascii_digit)
    };
    let (first, rest) = line.split_once(' ')?;
    if first.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        // RFC 3339 (`-o short-iso`, rsyslog).
        return first.contains('T').then(|| parse_time(first)).flatten().map(|t| (Some(t), rest));
    }
    if first.chars().count() != 3 || !first.chars().all(char::is_alphabetic) {
        return None;
    }
    // `-o short-full`: `Sun 2026-12-06 06:42:30 UTC …` (the zone's name is not an offset:
    // no time).
    if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) && rest.as_bytes().get(4) == Some(&b'-') {
        let (_date, rest) = rest.split_once(' ')?;
        let (clock, rest) = rest.split_once(' ')?;
        let (_zone, rest) = rest.split_once(' ')?;
        return clock_ok(clock).then_some((None, rest));
    }
    // `Dec 05 20:51:24` or rsyslog's `Dec  5 20:51:24`.
    let rest = rest.trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    let (clock, rest) = rest.split_once(' ')?;
    let day_ok = (1..=2).contains(&day.len()) && day.bytes().all(|b| b.is_ascii_digit());
    (day_ok && clock_ok(clock)).then_some((None, rest))
}

/// What every line needs, read without building a record: its format, time, level and
/// message. [`quick`] gives it for the lines whose shape it knows at once (zap's JSON as zap
/// writes it, capnslog's text); a line it returns `None` for goes through [`parse`].
#[derive(Debug)]
pub struct Quick<'a> {
    /// Zap or Text.
    pub format: Format,
    /// As [`Record::time`].
    pub time: Option<i128>,
    /// As [`Record::level`], not lowercased (zap writes lowercase; capnslog's mapped).
    pub level: &'a str,
    /// As [`Record::msg`].
    pub msg: &'a str,
}

impl Quick<'_> {
    /// As [`Record::is_fatal`].
    pub fn is_fatal(&self) -> bool {
        fatal_level(self.level)
    }
}

/// A level on which etcd ends: zap's fatal, panic, dpanic (capnslog's C is mapped to fatal).
fn fatal_level(level: &str) -> bool {
    ["fatal", "panic", "dpanic"].iter().any(|l| level.eq_ignore_ascii_case(l))
}

/// The head of a line zap wrote (`{"level":"…","ts":"…"|<number>,["caller":"…",]"msg":"…",…}`,
/// no escape in level or message) or capnslog wrote; `None` for any other shape, which
/// [`parse`] reads.
pub fn quick(outer: Option<i128>, text: &str) -> Option<Quick<'_>> {
    let t = text.trim_end_matches(['\r', '\n']);
    if !t.starts_with('{') {
        let (time, level, msg) = split_capnslog(t)?;
        // capnslog writes local time without a zone: the frame's time (UTC) is better.
        return Some(Quick { format: Format::Text, time: outer.or(time), level, msg });
    }
    if !t.ends_with('}') {
        return None;
    }
    let q = zap_head(t, outer)?;
    (q.rest.starts_with(',') || q.rest == "}").then_some(Quick {
        format: Format::Zap,
        time: q.time,
        level: q.level,
        msg: q.msg,
    })
}

/// The head zap writes first (`{"level":"…","ts":"…"|<number>,["caller":"…",]"msg":"…"`, no
/// escape in level or message), and what follows it.
struct ZapHead<'a> {
    time: Option<i128>,
    level: &'a str,
    msg: &'a str,
    rest: &'a str,
}

fn zap_head(t: &str, outer: Option<i128>) -> Option<ZapHead<'_>> {
    let rest = t.strip_prefix(r#"{"level":""#)?;
    let (level, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(r#","ts":"#)?;
    let (time, rest) = match rest.strip_prefix('"') {
        Some(r) => {
            let (ts, r) = plain_string(r)?;
            (parse_time(ts), r)
        }
        None => {
            let end = rest.find([',', '}'])?;
            let n: f64 = rest[..end].parse().ok()?;
            (Some((n * 1e9) as i128), &rest[end..])
        }
    };
    let rest = match rest.strip_prefix(r#","caller":""#) {
        Some(r) => plain_string(r)?.1,
        None => rest,
    };
    let rest = rest.strip_prefix(r#","msg":""#)?;
    let (msg, rest) = plain_string(rest)?;
    Some(ZapHead { time: time.or(outer), level, msg, rest })
}

/// A JSON string's body up to its closing quote (the opening one already read), when it holds
/// no escape; and what follows the quote.
pub(super) fn plain_string(s: &str) -> Option<(&str, &str)> {
    let end = s.find(['"', '\\'])?;
    (s.as_bytes()[end] == b'"').then(|| (&s[..end], &s[end + 1..]))
}

/// Parses the text of one whole line; `outer` is the wrapper's time.
pub fn parse(outer: Option<i128>, text: &str) -> Record {
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(trimmed) {
            if m.contains_key("msg") || m.contains_key("level") {
                let msg = match m.remove("msg") {
                    Some(Value::String(s)) => s,
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let level = m.remove("level").and_then(|v| v.as_str().map(str::to_lowercase));
                let time = match m.remove("ts") {
                    Some(Value::String(s)) => parse_time(&s),
                    Some(Value::Number(n)) => n.as_f64().map(|f| (f * 1e9) as i128),
                    _ => None,
                }
                .or(outer);
                m.remove("caller");
                return Record { format: Format::Zap, time, level, msg, fields: m, text: trimmed.to_string() };
            }
        }
    }
    // A zap line cut short (at LINE_MAX, or a CRI fragment never finished): its head still
    // says its level, time and message.
    if let Some(q) = zap_head(trimmed, outer) {
        return Record {
            format: Format::Zap,
            time: q.time,
            level: Some(q.level.to_lowercase()),
            msg: q.msg.to_string(),
            fields: Map::new(),
            text: trimmed.to_string(),
        };
    }
    if let Some((t, level, msg)) = split_capnslog(trimmed) {
        return Record {
            format: Format::Text,
            time: outer.or(t),
            level: Some(level.into()),
            msg: msg.to_string(),
            fields: Map::new(),
            text: trimmed.to_string(),
        };
    }
    Record {
        format: Format::Raw,
        time: outer,
        level: None,
        msg: trimmed.to_string(),
        fields: Map::new(),
        text: trimmed.to_string(),
    }
}

/// `2026-12-05 20:51:24.496976 W | rafthttp: text` → (time, level, `text`); also etcd 3.4's
/// raft lines, which go through Go's standard logger with the prefix `raft`:
/// `raft2026/12/06 07:32:24 INFO: raft.node: … lost leader …`.
fn split_capnslog(line: &str) -> Option<(Option<i128>, &'static str, &str)> {
    if let Some(r) = line.strip_prefix("raft") {
        return split_raft_std(r);
    }
    let b = line.as_bytes();
    if b.len() < 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let sep = line.find(" | ")?;
    let head = &line[..sep];
    let (ts, letter) = head.rsplit_once(' ')?;
    let level = match letter {
        "C" => "fatal",
        "E" => "error",
        "W" => "warn",
        "N" | "I" => "info",
        "D" | "T" => "debug",
        _ => return None,
    };
    let mut msg = &line[sep + 3..];
    // `pkg: text`: the package is a lowercase word (rafthttp, etcdserver/api/v3rpc, …).
    if let Some((pkg, rest)) = msg.split_once(": ") {
        if !pkg.is_empty() && pkg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'/') {
            msg = rest;
        }
    }
    Some((parse_time(&ts.replacen(' ', "T", 1)), level, msg))
}

/// `2026/12/06 07:32:24 INFO: text` (after the `raft` prefix) → (time, level, text).
fn split_raft_std(r: &str) -> Option<(Option<i128>, &'static str, &str)> {
    let b = r.as_bytes();
    if b.len() < 21 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[13] != b':' || b[19] != b' ' {
        return None;
    }
    let (word, msg) = r[20..].split_once(": ")?;
    let level = match word {
        "PANIC" => "panic",
        "FATAL" => "fatal",
        "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        _ => return None,
    };
    let ts = format!("{}-{}-{}T{}", &r[0..4], &r[5..7], &r[8..10], &r[11..19]);
    Some((parse_time(&ts), level, msg))
}

/// Nanoseconds since the epoch of `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]` (no zone:
/// UTC, as containers log).
pub fn parse_time(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        let mut n: i64 = 0;
        for (k, c) in digits.bytes().take(9).enumerate() {
            n += i64::from(c - b'0') * 10i64.pow(8 - k as u32);
        }
        nanos = n;
    }
    let offset = match b.get(i) {
        Some(b'+') | Some(b'-') => {
            let sign = if b[i] == b'-' { -1 } else { 1 };
            let rest: String = s[i + 1..].chars().filter(char::is_ascii_digit).collect();
            let oh: i64 = rest.get(0..2)?.parse().ok()?;
            let om: i64 = rest.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
            sign * (oh * 3600 + om * 60)
        }
        _ => 0,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the epoch as RFC 3339 UTC with microseconds (`2026-12-05T20:51:24.496976Z`).
pub fn format_time(t: i128) -> String {
    let secs = t.div_euclid(1_000_000_000) as i64;
    let micros = (t.rem_euclid(1_000_000_000) / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time("2026-12-05T20:51:24.496976123Z").unwrap();
        assert_eq!(format_time(t), "2026-12-05T20:51:24.496976Z");
        assert_eq!(parse_time("2026-12-05 20:51:24.496976"), parse_time("2026-12-05T20:51:24.496976Z"));
        assert_eq!(parse_time("2026-12-05T21:51:24.496976+01:00"), parse_time("2026-12-05T20:51:24.496976Z"));
        assert_eq!(parse_time("2026-12-05T21:51:24.496976+0100"), parse_time("2026-12-05T20:51:24.496976Z"));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_time("not a time"), None);
    }

    /// Lines as etcd 3.5.1 and 3.4.23 wrote them (copied from their logs), and shapes `quick`
    /// must leave to `parse`.
    const LINES: &[&str] = &[
        r#"{"level":"info","ts":"2026-12-06T06:41:53.864Z","caller":"etcdmain/etcd.go:72","msg":"Running: ","args":["etcd","--name","a"]}"#,
        r#"{"level":"warn","ts":"2026-12-06T06:42:30.992Z","caller":"rafthttp/probing_status.go:68","msg":"prober detected unhealthy status","round-tripper-name":"ROUND_TRIPPER_RAFT_MESSAGE","remote-peer-id":"3760a4ec3b84f7fa","rtt":"183.834µs","error":"dial tcp 127.0.0.1:23803: connect: connection refused"}"#,
        r#"{"level":"warn","ts":"2026-12-06T06:42:08.249Z","caller":"etcdserver/cluster_util.go:155","msg":"failed to get version","remote-member-id":"3760a4ec3b84f7fa","error":"Get \"http://127.0.0.1:23803/version\": dial tcp 127.0.0.1:23803: connect: connection refused"}"#,
        r#"{"level":"warn","ts":"2026-12-06T06:41:55.947Z","caller":"auth/store.go:1220","msg":"simple token is not cryptographically signed"}"#,
        r#"{"level":"info","ts":1733467313.864,"msg":"numeric time, no caller"}"#,
        r#"{"level":"info","ts":"2026-12-06T06:41:53.864Z","msg":"an \"escaped\" message"}"#,
        r#"{"level":"info","ts":"2026-12-06T06:41:53.864Z","msg":"cut"#,
        r#"{"msg":"fields in another order","level":"info"}"#,
        "2026-12-06 06:44:49.877691 I | etcdmain: etcd Version: 3.4.23",
        "2026-12-06 06:44:49.892239 W | auth: simple token is not cryptographically signed",
        "2026-12-06 06:44:50.690245 N | etcdserver/membership: set the initial cluster version to 3.4",
        "panic: runtime error: index out of range",
        "goroutine 1 [running]:",
    ];

    #[test]
    fn quick_reads_the_head_as_parse_does() {
        let outer = Some(7);
        let mut quick_ones = 0;
        for line in LINES {
            let r = parse(outer, line);
            let Some(q) = quick(outer, line) else {
                // Left to parse: anything but zap's and capnslog's own shapes.
                assert!(
                    line.contains('\\')
                        || !line.starts_with(r#"{"level""#)
                        || !line.ends_with('}')
                        || r.format == Format::Raw,
                    "{line}"
                );
                continue;
            };
            quick_ones += 1;
            assert_eq!(q.format, r.format, "{line}");
            assert_eq!(q.time, r.time, "{line}");
            assert_eq!(Some(q.level.to_string()), r.level, "{line}");
            assert_eq!(q.msg, r.msg, "{line}");
            assert_eq!(q.is_fatal(), r.is_fatal(), "{line}");
        }
        assert_eq!(quick_ones, 8);
        assert!(quick(None, LINES[2]).is_some_and(|q| q.msg == "failed to get version"));
        assert!(quick(None, LINES[5]).is_none() && quick(None, LINES[6]).is_none() && quick(None, LINES[7]).is_none());
    }

    #[test]
    fn cut_zap_lines_raft_lines_and_local_times() {
        // Cut after its message: still zap, its level and time kept (a fatal stays fatal).
        let cut = r#"{"level":"fatal","ts":"2026-12-06T06:41:53.864Z","caller":"x.go:1","msg":"discovery failed","error":"cannot fe"#;
        let r = parse(None, cut);
        assert_eq!((r.format, r.level.as_deref(), r.msg.as_str()), (Format::Zap, Some("fatal"), "discovery failed"));
        assert!(r.is_fatal() && r.time == parse_time("2026-12-06T06:41:53.864Z"));
        // etcd 3.4's raft lines (Go's standard logger, prefix `raft`).
        let raft = "raft2026/12/06 07:32:24 INFO: raft.node: 8e9e05c52164694d lost leader 91bc3c398fb3c146 at term 3";
        let r = parse(None, raft);
        assert_eq!((r.format, r.level.as_deref()), (Format::Text, Some("info")));
        assert_eq!(r.msg, "raft.node: 8e9e05c52164694d lost leader 91bc3c398fb3c146 at term 3");
        assert_eq!(r.time, parse_time("2026-12-06T07:32:24Z"));
        // capnslog's zoneless local time yields to the frame's UTC time.
        let text = "2026-12-06 02:32:24.000001 C | etcdmain: cannot fetch cluster info";
        let utc = parse_time("2026-12-06T07:32:24.000002Z");
        assert_eq!(parse(utc, text).time, utc);
        assert_eq!(quick(utc, text).unwrap().time, utc);
        assert_eq!(parse(None, text).time, parse_time("2026-12-06T02:32:24.000001Z"));
    }

    #[test]
    fn cri_fragments_join_and_stay_bounded() {
        let mut c = Cri::default();
        assert!(matches!(c.push(b"2026-12-05T20:51:24.1Z stderr P abc"), Line::Pending));
        match c.push(b"2026-12-05T20:51:24.2Z stderr F def") {
            Line::Whole(t, s) => {
                assert_eq!(s, "abcdef");
                assert_eq!(t, parse_time("2026-12-05T20:51:24.1Z"));
            }
            l => panic!("{l:?}"),
        }
        // A fragment that ends inside a character, and stdout's line between stderr's fragments.
        let text = "éé中文".as_bytes();
        let (a, b) = text.split_at(1);
        let mut p1 = b"2026-12-05T20:51:24.1Z stderr P ".to_vec();
        p1.extend_from_slice(a);
        let mut f1 = b"2026-12-05T20:51:24.3Z stderr F ".to_vec();
        f1.extend_from_slice(b);
        assert!(matches!(c.push(&p1), Line::Pending));
        match c.push(b"2026-12-05T20:51:24.2Z stdout F other") {
            Line::Whole(_, s) => assert_eq!(s, "other"),
            l => panic!("{l:?}"),
        }
        match c.push(&f1) {
            Line::Whole(_, s) => assert_eq!(s, "éé中文"),
            l => panic!("{l:?}"),
        }
        let long = "x".repeat(LINE_MAX);
        assert!(matches!(c.push(format!("2026-12-05T20:51:24.1Z stderr P {long}").as_bytes()), Line::Pending));
        match c.push(format!("2026-12-05T20:51:24.1Z stderr F {long}").as_bytes()) {
            Line::Whole(_, s) => assert_eq!(s.len(), LINE_MAX),
            l => panic!("{l:?}"),
        }
    }

    fn whole(c: &mut Cri, line: &str) -> (Option<i128>, String) {
        match c.push(line.as_bytes()) {
            Line::Whole(t, s) => (t, s.into_owned()),
            l => panic!("{l:?}"),
        }
    }

    #[test]
    fn docker_json_file_entries_unwrap_and_join() {
        let mut c = Cri::default();
        // A zap line inside Docker's entry: escaped once more, `<` as Docker's \u003c.
        let (t, s) = whole(
            &mut c,
            r#"{"log":"{\"level\":\"warn\",\"ts\":\"2026-12-05T20:51:24.496Z\",\"msg\":\"a \u003cb\u003e\"}\n","stream":"stderr","time":"2026-12-05T20:51:24.496976123Z"}"#,
        );
        assert_eq!(s, r#"{"level":"warn","ts":"2026-12-05T20:51:24.496Z","msg":"a <b>"}"#);
        assert_eq!(t, parse_time("2026-12-05T20:51:24.496976123Z"));
        // attrs (--log-opt labels=…) and CRLF.
        let (_, s) = whole(
            &mut c,
            r#"{"log":"2026-12-05 20:51:24.496976 W | etcdserver: x\r\n","stream":"stderr","attrs":{"io.rancher.rke.container.name":"etcd"},"time":"2026-12-05T20:51:24Z"}"#,
        );
        assert_eq!(s, "2026-12-05 20:51:24.496976 W | etcdserver: x");
        // A line over 16 KiB: entries without `\n` until the last; stdout's line between.
        assert!(matches!(c.push(br#"{"log":"abc","stream":"stderr","time":"2026-12-05T20:51:24.1Z"}"#), Line::Pending));
        assert_eq!(whole(&mut c, r#"{"log":"out\n","stream":"stdout","time":"2026-12-05T20:51:24.2Z"}"#).1, "out");
        let (t, s) = whole(&mut c, r#"{"log":"def\n","stream":"stderr","time":"2026-12-05T20:51:24.3Z"}"#);
        assert_eq!((t, s.as_str()), (parse_time("2026-12-05T20:51:24.1Z"), "abcdef"));
        // A byte that is not UTF-8 costs that character only.
        match c.push(b"{\"log\":\"a\xffb\\n\",\"stream\":\"stderr\",\"time\":\"2026-12-05T20:51:24Z\"}") {
            Line::Whole(_, s) => assert_eq!(s, "a\u{fffd}b"),
            l => panic!("{l:?}"),
        }
        // Not Docker's: kept whole as it is.
        assert_eq!(whole(&mut c, r#"{"log":"#).1, r#"{"log":"#);
    }

    #[test]
    fn syslog_lines_with_and_without_a_pid() {
        let mut c = Cri::default();
        for (line, time) in [
            ("Dec 05 20:51:24 cp-1 etcd[42]: TEXT", None),
            ("Dec  5 20:51:24 cp-1 etcd: TEXT", None),
            ("Dec 5 20:51:24 cp-1 k3s[7]: TEXT", None),
            ("2026-12-05T20:51:24+0000 cp-1 etcd[42]: TEXT", parse_time("2026-12-05T20:51:24Z")),
            ("2026-12-05T20:51:24.123456+01:00 cp-1 etcd: TEXT", parse_time("2026-12-05T19:51:24.123456Z")),
            // journalctl --no-hostname, -o short-full, a German locale's month.
            ("Dec 06 06:42:30 etcd[42]: TEXT", None),
            ("Sun 2026-12-06 06:42:30 UTC cp-1 etcd[42]: TEXT", None),
            ("Dez 06 06:42:30 cp-1 etcd[42]: TEXT", None),
            ("Mär 06 06:42:30 cp-1 etcd[42]: TEXT", None),
        ] {
            assert_eq!(whole(&mut c, line), (time, "TEXT".to_string()), "{line}");
        }
        // Lines that are not syslog's stay whole: capnslog's, a Go panic's, prose.
        for line in [
            "2026-12-05 20:51:24.496976 W | rafthttp: lost: x",
            "panic: runtime error: index out of range",
            "goroutine 1 [running]:",
            "May be: nothing",
            "Dec 05 20:51:24 cp-1 etcd[4x]: TEXT",
        ] {
            assert_eq!(whole(&mut c, line).1, line, "{line}");
        }
        // A Go panic under --no-hostname keeps its `panic: ` (the tag is etcd's, not `panic`).
        assert_eq!(whole(&mut c, "Dec 06 06:42:30 etcd[42]: panic: runtime error").1, "panic: runtime error");
        assert_eq!(whole(&mut c, "Dec 06 06:42:30 etcd: panic: runtime error").1, "panic: runtime error");
    }
}
