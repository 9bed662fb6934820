//! `kubectl etcd doctor logs`: reads etcd's own log — the pod logs kubelet keeps on the node, a
//! file, stdin — and names each known failure (the catalogue in
//! `shared/data/etcd-log-signatures.json`) with its cause and the next step, repeats grouped
//! (count, first and last time), and tells each container start and how it ended.
//!
//! Reading is streaming and bounded: one line at a time, at most [`parse::LINE_MAX`] bytes of a
//! line, a fixed number of groups; memory stays flat whatever the log's size.

pub mod api;
pub mod catalogue;
pub mod parse;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, ExitCode, Result};
use catalogue::Severity;
use parse::{format_time, Cri, Format, Line, LINE_MAX};

/// kubelet's pod log root.
pub const POD_LOG_DIR: &str = "/var/log/pods";
/// At most this many log files are read from a pod log dir (kubelet keeps a handful per
/// container; a directory with more is not kubelet's).
pub const FILES_MAX: usize = 1000;
/// At most this many distinct uncatalogued fatal lines are kept as findings.
const UNKNOWN_MAX: usize = 20;
/// At most this many container starts are kept (the newest); a crash loop of weeks logs
/// hundreds of thousands.
const CONTAINERS_MAX: usize = 200;
/// The evidence line is cut to this many bytes.
const EVIDENCE_MAX: usize = 2048;

/// Where the log comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file (`--log-file FILE`): raw, CRI, Docker json-file, journald or syslog; gzip when
    /// it ends in `.gz`.
    File(PathBuf),
    /// Standard input (`--log-file -`).
    Stdin,
    /// kubelet's pod logs (`--pod-log-dir DIR`): the root (`/var/log/pods`), one pod's dir or
    /// its `etcd` container dir.
    PodLogDir(PathBuf),
}

/// What to read of it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The member (node) whose pod logs to read: `kube-system_etcd-MEMBER_*`.
    pub member: Option<String>,
    /// The namespace of the etcd pods.
    pub namespace: String,
    /// Only records at most this old.
    pub since: Option<Duration>,
    /// Only the previous container (the last one that ended), as `kubectl logs --previous`.
    pub previous: bool,
}

/// One known failure (or an uncatalogued fatal line), its repeats grouped.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The catalogue id (`unknown-fatal` for a fatal line not in the catalogue).
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// How many lines.
    pub count: u64,
    /// The first line's time (RFC 3339).
    pub first: Option<String>,
    /// The last line's time.
    pub last: Option<String>,
    /// What happened, short.
    pub what: String,
    /// The cause in an operator's words.
    pub cause: String,
    /// The next step.
    pub next: String,
    /// The first line, as etcd wrote it (cut at 2 KiB).
    pub evidence: String,
    /// Where the message comes from in etcd.
    pub source: Vec<String>,
    /// The members whose logs hold it, when the source names them (pod logs: `etcd-NODE`).
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub members: std::collections::BTreeSet<String>,
    /// Set when a later line says it is over (NOSPACE's `alarm disarmed`): it is history, not
    /// the cluster's state, and does not make the exit code 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<Cleared>,
    #[serde(skip)]
    first_ns: Option<i128>,
    #[serde(skip)]
    last_ns: Option<i128>,
    /// Per key (`MEMBER/PEER`; `""` for an entry without keys), the line that opened it (the
    /// last one that [reopens](catalogue::Signature::reopens) it, else its first) and its last
    /// line.
    #[serde(skip)]
    opens: BTreeMap<String, (At, At)>,
    /// A line gave no key, or there were more than [`KEYS_MAX`]: it is never cleared.
    #[serde(skip)]
    unclearable: bool,
}

/// At most this many keys (peers) are followed per finding.
const KEYS_MAX: usize = 64;

/// A line of an entry this long after the line that cleared it opens it again, whatever
/// `reopened_by` says: etcd's prober warns every 5 s while a peer is away, and lags its return
/// by one probe.
const REOPEN_AFTER_NS: i128 = 30_000_000_000;

/// Where a line was read: its time, its order among all lines, its container's number.
#[derive(Debug, Clone, Copy, Default)]
struct At {
    time: Option<i128>,
    seq: u64,
    container: u64,
}

impl At {
    /// Whether this line comes after `b`: by time when both have one and they differ (pod logs
    /// of several members are read one after another), else by the order read.
    fn after(self, b: At) -> bool {
        match (self.time, b.time) {
            (Some(x), Some(y)) if x != y => x > y,
            _ => self.seq > b.seq,
        }
    }

    /// Whether this line, after a clear at `clear`, says the failure is back though it is not
    /// one that reopens: well after the clear, or in a later container (etcd restarted while
    /// the peer was still away: no `became inactive` then, only the prober's warnings).
    fn outlives(self, clear: At) -> bool {
        self.after(clear)
            && (self.container > clear.container
                || matches!((self.time, clear.time), (Some(x), Some(y)) if x - y > REOPEN_AFTER_NS))
    }
}

/// The line after a finding's last one that says it is over.
#[derive(Debug, Clone, Serialize)]
pub struct Cleared {
    /// Its time (RFC 3339), when it has one.
    pub at: Option<String>,
    /// The line, as etcd wrote it (cut at 2 KiB).
    pub evidence: String,
}

/// The member a log source belongs to: the node of an etcd static pod, from its pod log dir
/// (`…/kube-system_etcd-NODE_UID/etcd/0.log`) or its API name (`pods/log kube-system/etcd-NODE …`).
fn member_of(source: &str) -> Option<String> {
    let (rest, end) = match source.rfind("_etcd-") {
        Some(i) => (&source[i + 6..], '_'),
        None => (&source[source.find("/etcd-")? + 6..], ' '),
    };
    let name = rest.split(end).next()?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// One container start (one `N.log` of a pod log dir, or a start seen in a file) and how it
/// ended.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Where it was read (files, comma-separated, or `stdin`).
    pub source: String,
    /// Its first line's time.
    pub started: Option<String>,
    /// Its last line's time.
    pub last_line: Option<String>,
    /// How many lines it wrote.
    pub lines: u64,
    /// How it ended: `crashed: …`, `stopped by a signal`, `running`, or that the log says no more.
    pub ended: String,
    /// The line it ended with, when that says why.
    pub evidence: Option<String>,
}

/// The result of `doctor logs`.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// What was read.
    pub read: Vec<String>,
    /// Lines read (after --since).
    pub lines: u64,
    /// Lines by format: zap, text, raw.
    pub formats: BTreeMap<String, u64>,
    /// The findings, the worst first.
    pub findings: Vec<Finding>,
    /// Every container start, oldest first (the newest 200 when there were more).
    pub containers: Vec<Container>,
    /// Older container starts not listed (beyond 200).
    #[serde(skip_serializing_if = "is_zero")]
    pub containers_omitted: u64,
    /// Fatal lines not in the catalogue beyond 20 distinct ones, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown_fatal_omitted: u64,
    /// Files or rotated parts that could not be read to their end, and why (what was read of
    /// them counts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl LogReport {
    /// The findings a later line did not clear: what is still wrong, as far as the log says.
    pub fn current(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.cleared.is_none())
    }

    /// 0 nothing found but warnings or cleared failures; 1 a critical or error finding
    /// (catalogued, or a fatal line that ended a container) no later line cleared.
    pub fn exit_code(&self) -> ExitCode {
        if self.current().any(|f| f.severity <= Severity::Error) {
            ExitCode::Negative
        } else {
            ExitCode::Ok
        }
    }
}

/// The state of one container being read.
#[derive(Debug, Default)]
struct Current {
    source: Vec<String>,
    started: Option<i128>,
    last: Option<i128>,
    lines: u64,
    /// Lines etcd wrote (zap or capnslog), not a runtime's or wrapper's lines before its start.
    etcd_lines: u64,
    fatal: Option<(String, String)>,
    signal: bool,
    /// The member it belongs to ([`member_of`] its first source).
    member: Option<String>,
    /// The last finding it logged after which etcd stops on its own (removed from the
    /// cluster): what, and the line.
    stopped: Option<(String, String)>,
}

/// Reads records one at a time and groups them.
#[derive(Debug, Default)]
pub struct Analyzer {
    cutoff: Option<i128>,
    lines: u64,
    /// Lines by format: zap, text, raw.
    formats: [u64; 3],
    findings: Vec<Finding>,
    unknown: usize,
    containers: Vec<Container>,
    /// Containers not kept (the oldest, beyond [`CONTAINERS_MAX`]).
    containers_omitted: u64,
    /// Fatal lines not in the catalogue beyond [`UNKNOWN_MAX`] distinct ones.
    unknown_omitted: u64,
    current: Option<Current>,
    /// Files (or parts) that could not be read to their end, and why.
    unreadable: Vec<String>,
    /// Lines read so far, every format (the order of lines without a time).
    seq: u64,
    /// Per catalogue id and key, the last line that said its failure is over, and the line.
    /// Bounded: keys come from lines of entries that have `cleared_by` (peers).
    clears: BTreeMap<(String, String), (At, String)>,
    /// Containers started so far (the number of the current one).
    started: u64,
}

/// A start of etcd, as its first line at info level says it (etcdmain's `Running: ` with the
/// arguments; 3.4's capnslog `etcd Version: `).
fn is_start(format: Format, msg: &str) -> bool {
    match format {
        Format::Zap => msg == "Running: ",
        Format::Text => msg.starts_with("etcd Version: "),
        Format::Raw => false,
    }
}

/// A shutdown on a signal.
fn is_signal_stop(msg: &str) -> bool {
    msg.contains("received signal; shutting down")
        || (msg.starts_with("received ") && msg.contains(" signal, shutting down"))
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut c = max;
    while !s.is_char_boundary(c) {
        c -= 1;
    }
    format!("{}…", &s[..c])
}

impl Analyzer {
    /// An analyzer keeping only records newer than `since` ago.
    pub fn new(since: Option<Duration>) -> Analyzer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Analyzer { cutoff: since.map(|s| now - s.as_nanos() as i128), ..Default::default() }
    }

    /// Starts a new container read from `source`.
    pub fn start_container(&mut self, source: &str) {
        self.end_container(false);
        self.started += 1;
        self.current =
            Some(Current { source: vec![source.to_string()], member: member_of(source), ..Default::default() });
    }

    /// Notes one more file of the current container (a rotated part).
    pub fn add_source(&mut self, source: &str) {
        match self.current.as_mut() {
            Some(c) => c.source.push(source.to_string()),
            None => self.start_container(source),
        }
    }

    fn end_container(&mut self, last: bool) {
        let Some(c) = self.current.take() else { return };
        if c.lines == 0 {
            return;
        }
        let (ended, evidence) = match (c.fatal, c.signal) {
            (Some((what, line)), _) => (format!("crashed: {what}"), Some(line)),
            (None, true) => ("stopped by a signal (a clean shutdown)".to_string(), None),
            (None, false) if c.stopped.is_some() => {
                let (what, line) = c.stopped.unwrap_or_default();
                (format!("stopped on its own: {what}"), Some(line))
            }
            (None, false) if last => ("running, or ended without a word (the last container)".to_string(), None),
            (None, false) => ("ended without a fatal line (killed, or stopped before it logged why)".to_string(), None),
        };
        self.containers.push(Container {
            source: c.source.join(", "),
            started: c.started.map(format_time),
            last_line: c.last.map(format_time),
            lines: c.lines,
            ended,
            evidence,
        });
        if self.containers.len() > CONTAINERS_MAX {
            self.containers.remove(0);
            self.containers_omitted += 1;
        }
    }

    /// Takes one whole line (unwrapped from CRI, Docker or syslog).
    pub fn line(&mut self, outer: Option<i128>, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        self.seq += 1;
        // A line that says a failure is over (an alarm disarmed) is no failure itself.
        if catalogue::may_clear(text) {
            let r = parse::parse(outer, text);
            if let Some(s) = catalogue::clearing(&r) {
                let key = self.key_of(s, r.format, &r.msg, &r.text);
                if let Some(key) = key.filter(|_| self.admit(r.format, r.time, false, false)) {
                    // The newest such line wins (members' logs are read one after another).
                    let at = self.at(r.time);
                    let k = (s.id.clone(), key);
                    let older = self.clears.get(&k).is_some_and(|(c, _)| c.after(at));
                    if !older && (self.clears.len() < KEYS_MAX * 4 || self.clears.contains_key(&k)) {
                        self.clears.insert(k, (at, cut(&r.text, EVIDENCE_MAX)));
                    }
                }
                return;
            }
        }
        // Most lines of a big log match nothing, and most that do match on their message:
        // those are read from their head alone, without a record of every field.
        if let Some(q) = parse::quick(outer, text) {
            let sig = match (q.is_fatal(), catalogue::may_match(text)) {
                (true, _) => None,
                (false, false) => Some(None),
                (false, true) => catalogue::find_quick(&q, text),
            };
            if let Some(sig) = sig {
                if self.admit(q.format, q.time, is_start(q.format, q.msg), is_signal_stop(q.msg)) {
                    if let Some(s) = sig {
                        let line = text.trim_end_matches(['\r', '\n']);
                        self.found(s, q.format, q.msg, q.time, line);
                    }
                }
                return;
            }
        }
        let r = parse::parse(outer, text);
        if !self.admit(r.format, r.time, is_start(r.format, &r.msg), is_signal_stop(&r.msg)) {
            return;
        }
        let fatal = r.is_fatal();
        let sig = catalogue::find(&r);
        if fatal {
            // A Go panic's own `panic: …` line after zap's panic record is the same event.
            let already = self.current.as_ref().is_some_and(|c| c.fatal.is_some());
            if !(already && r.format == Format::Raw) {
                let what = match sig {
                    Some(s) => s.what.clone(),
                    None => {
                        let err = r.field("error").map(|e| format!(": {e}")).unwrap_or_default();
                        cut(&format!("{}{err}", r.msg), 200)
                    }
                };
                if let Some(c) = self.current.as_mut() {
                    c.fatal = Some((what, cut(&r.text, EVIDENCE_MAX)));
                }
            } else {
                return;
            }
        }
        match sig {
            Some(s) => self.found(s, r.format, &r.msg, r.time, &r.text),
            None if fatal => {
                let what = cut(&format!("etcd exited: {}", r.msg), 200);
                let known = self.findings.iter().any(|f| f.id == "unknown-fatal" && f.what == what);
                if !known && self.unknown >= UNKNOWN_MAX {
                    self.unknown_omitted += 1;
                } else {
                    if !known {
                        self.unknown += 1;
                    }
                    self.note(
                        "unknown-fatal",
                        &what,
                        Severity::Critical,
                        "etcd stopped on a fatal line that is not in the catalogue (the evidence line says why)",
                        "Read the evidence line (-o wide); `kubectl etcd restore doctor` reads the member's data dir, `kubectl etcd health` the cluster",
                        &[],
                        r.time,
                        &r.text,
                    );
                }
            }
            None => {}
        }
    }

    /// Counts a line of `format` at `time` in the current container (a new one when it is a
    /// start); false when it is older than --since.
    fn admit(&mut self, format: Format, time: Option<i128>, start: bool, signal: bool) -> bool {
        if let (Some(cut), Some(t)) = (self.cutoff, time) {
            if t < cut {
                return false;
            }
        }
        // A start begins another container unless the current one holds no line of etcd's
        // yet (etcd 3.4 prints a plain `[WARNING] Deprecated …` line before its first).
        if start && self.current.as_ref().is_some_and(|c| c.etcd_lines > 0) {
            let source = self.current.as_ref().and_then(|c| c.source.last().cloned()).unwrap_or_default();
            self.start_container(&source);
        }
        if self.current.is_none() {
            self.start_container("-");
        }
        self.lines += 1;
        self.formats[format as usize] += 1;
        if let Some(c) = self.current.as_mut() {
            c.lines += 1;
            if format != Format::Raw {
                c.etcd_lines += 1;
            }
            if c.started.is_none() {
                c.started = time;
            }
            if time.is_some() {
                c.last = time;
            }
            c.signal |= signal;
        }
        true
    }

    /// A line of catalogue entry `s`: noted, and remembered as why the container stopped when
    /// etcd stops on its own after it.
    fn found(&mut self, s: &catalogue::Signature, format: Format, msg: &str, t: Option<i128>, line: &str) {
        let i = self.note(&s.id, &s.what, s.severity, &s.cause, &s.next, &s.source, t, line);
        let at = self.at(t);
        let key = self.key_of(s, format, msg, line);
        let f = &mut self.findings[i];
        match key {
            None => f.unclearable = true,
            Some(key) => {
                let full = f.opens.len() >= KEYS_MAX;
                match f.opens.get_mut(&key) {
                    Some((open, last)) => {
                        *last = at;
                        if s.reopens(format, msg) {
                            *open = at;
                        }
                    }
                    None if full => f.unclearable = true,
                    None => {
                        f.opens.insert(key, (at, at));
                    }
                }
            }
        }
        if s.stops {
            if let Some(c) = self.current.as_mut() {
                c.stopped = Some((s.what.clone(), cut(line, EVIDENCE_MAX)));
            }
        }
    }

    /// Where the line being read is.
    fn at(&self, time: Option<i128>) -> At {
        At { time, seq: self.seq, container: self.started }
    }

    /// What a line of entry `s` is about: `""` for an entry without keys (NOSPACE is the whole
    /// cluster's); `MEMBER/PEER` for one with (a partition between two members is not healed by
    /// a third one's view of the peer); `None` when the line does not say.
    fn key_of(&self, s: &catalogue::Signature, format: Format, msg: &str, line: &str) -> Option<String> {
        let Some(k) = &s.key else { return Some(String::new()) };
        let member = self.current.as_ref().and_then(|c| c.member.as_deref()).unwrap_or("");
        k.of(format, msg, line).map(|peer| format!("{member}/{peer}"))
    }

    /// Counts one more line of finding `id`/`what`; `line` is its evidence when it is the
    /// first (cut to [`EVIDENCE_MAX`]).
    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        id: &str,
        what: &str,
        severity: Severity,
        cause: &str,
        next: &str,
        source: &[String],
        t: Option<i128>,
        line: &str,
    ) -> usize {
        let member = self.current.as_ref().and_then(|c| c.member.clone());
        if let Some(i) = self.findings.iter().position(|f| f.id == id && f.what == what) {
            let f = &mut self.findings[i];
            f.count += 1;
            if let Some(m) = member {
                f.members.insert(m);
            }
            if let Some(t) = t {
                f.first_ns = Some(f.first_ns.map_or(t, |x| x.min(t)));
                f.last_ns = Some(f.last_ns.map_or(t, |x| x.max(t)));
            }
            return i;
        }
        self.findings.push(Finding {
            id: id.into(),
            severity,
            count: 1,
            first: None,
            last: None,
            what: what.into(),
            cause: cause.into(),
            next: next.into(),
            evidence: cut(line, EVIDENCE_MAX),
            source: source.to_vec(),
            members: member.into_iter().collect(),
            cleared: None,
            first_ns: t,
            last_ns: t,
            opens: BTreeMap::new(),
            unclearable: false,
        });
        self.findings.len() - 1
    }

    /// The report, with what was read.
    pub fn finish(mut self, read: Vec<String>) -> LogReport {
        self.end_container(true);
        let mut findings = self.findings;
        for f in &mut findings {
            f.first = f.first_ns.map(format_time);
            f.last = f.last_ns.map(format_time);
            // Cleared when every key it was opened for has a clearing line after that, and no
            // line of it outlives that line.
            if !f.unclearable && !f.opens.is_empty() {
                let clears: Option<Vec<&(At, String)>> = f
                    .opens
                    .iter()
                    .map(|(key, (open, last))| {
                        self.clears
                            .get(&(f.id.clone(), key.clone()))
                            .filter(|(c, _)| c.after(*open) && !last.outlives(*c))
                    })
                    .collect();
                let last = clears.and_then(|c| c.into_iter().reduce(|a, b| if b.0.after(a.0) { b } else { a }));
                if let Some((c, line)) = last {
                    f.cleared = Some(Cleared { at: c.time.map(format_time), evidence: line.clone() });
                }
            }
        }
        // What is still wrong first, then history; each by severity, then count.
        findings.sort_by(|a, b| {
            a.cleared.is_some().cmp(&b.cleared.is_some()).then(a.severity.cmp(&b.severity)).then(b.count.cmp(&a.count))
        });
        let formats = [Format::Zap, Format::Text, Format::Raw]
            .into_iter()
            .zip(self.formats)
            .filter(|(_, n)| *n > 0)
            .map(|(f, n)| (f.key().to_string(), n))
            .collect();
        LogReport {
            read,
            lines: self.lines,
            formats,
            findings,
            containers: self.containers,
            containers_omitted: self.containers_omitted,
            unknown_fatal_omitted: self.unknown_omitted,
            unreadable: self.unreadable,
        }
    }

    /// Reads one file or part to its end; a part that cannot be opened or read to its end (a
    /// damaged rotated `.gz`, say) is noted as unreadable, with a warning, and what was read of
    /// it counts: one bad part never hides the others.
    pub fn read_part(&mut self, name: &str, r: Result<Box<dyn Read + '_>>) {
        let err = match r {
            Ok(r) => self.read(r).err().map(|e| e.to_string()),
            Err(e) => Some(e.report()),
        };
        if let Some(e) = err {
            crate::base::messages::warning(&format!("{name}: read only in part ({e}); the rest of the log is read"));
            self.unreadable.push(format!("{name}: {e}"));
        }
    }

    /// Reads a whole stream, line by line (each at most [`LINE_MAX`] bytes kept).
    pub fn read(&mut self, r: impl Read) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let mut cri = Cri::default();
        let mut buf = Vec::with_capacity(4096);
        while read_line_capped(&mut r, &mut buf, LINE_MAX)? {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if let Line::Whole(t, s) = cri.push(line) {
                self.line(t, &s);
            }
        }
        for (t, s) in cri.finish() {
            self.line(t, &s);
        }
        Ok(())
    }
}

/// Reads one line into `buf` (cleared first), keeping at most `cap` bytes of it and skipping
/// the rest; false at the end of the input.
pub fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (take, done) = match memchr_nl(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Opens a log file, gunzipping a `.gz` one.
fn open(path: &Path) -> Result<Box<dyn Read + 'static>> {
    let f = std::fs::File::open(path).map_err(|source| Error::ReadFile {
        what: "log file",
        path: path.to_path_buf(),
        input: false,
        source,
    })?;
    if let Ok(md) = f.metadata() {
        if let Some(kind) = crate::base::fsio::not_regular(&md) {
            return Err(Error::Usage(format!("{} is {kind}, not a log file", path.display())));
        }
    }
    // gzip by its magic bytes: a rotated `.gz` part, or a file gzipped under another name.
    Ok(gunzip_if_gzip(Box::new(f)))
}

/// One container's files in the order they were written: rotated parts by their stamp, then
/// the live file.
#[derive(Debug)]
struct Restart {
    files: Vec<PathBuf>,
}

/// `N.log`, `N.log.<stamp>`, `N.log.<stamp>.gz` → (N, stamp, or None for the live file).
fn log_name(name: &str) -> Option<(u64, Option<String>)> {
    let (n, rest) = name.split_once(".log")?;
    let n: u64 = n.parse().ok()?;
    if rest.is_empty() {
        return Some((n, None));
    }
    let stamp = rest.strip_prefix('.')?;
    let stamp = stamp.strip_suffix(".gz").unwrap_or(stamp);
    (!stamp.is_empty() && !stamp.ends_with(".tmp")).then(|| (n, Some(stamp.to_string())))
}

fn restarts(container_dir: &Path) -> Result<Vec<Restart>> {
    let rd = std::fs::read_dir(container_dir).map_err(|source| Error::ReadFile {
        what: "pod log dir",
        path: container_dir.to_path_buf(),
        input: false,
        source,
    })?;
    let mut by_n: BTreeMap<u64, Vec<(Option<String>, PathBuf)>> = BTreeMap::new();
    let mut count = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some((n, stamp)) = log_name(&name) {
            count += 1;
            if count > FILES_MAX {
                return Err(Error::TooLarge {
                    what: format!("the pod log dir {}", container_dir.display()),
                    limit: format!("{FILES_MAX} files"),
                    why: "kubelet keeps a few files per container",
                });
            }
            by_n.entry(n).or_default().push((stamp, e.path()));
        }
    }
    Ok(by_n
        .into_values()
        .map(|mut files| {
            // Rotated parts by stamp (None, the live file, last).
            files.sort_by(|a, b| match (&a.0, &b.0) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Greater,
                (_, None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            });
            Restart { files: files.into_iter().map(|(_, p)| p).collect() }
        })
        .collect())
}

/// The etcd container dirs under `dir`: `dir` itself when it holds `N.log` files, its `etcd/`
/// when it is a pod's dir, else every `NAMESPACE_etcd-MEMBER_UID/etcd` under it.
fn container_dirs(dir: &Path, opts: &Options) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|source| Error::ReadFile {
        what: "pod log dir",
        path: dir.to_path_buf(),
        input: false,
        source,
    })?;
    let mut pods = Vec::new();
    let mut own = false;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if log_name(&name).is_some() {
            own = true;
        }
        let prefix = match &opts.member {
            Some(m) => format!("{}_etcd-{m}_", opts.namespace),
            None => format!("{}_etcd-", opts.namespace),
        };
        if name.starts_with(&prefix) && e.path().join("etcd").is_dir() {
            let mtime = e.metadata().and_then(|m| m.modified()).ok();
            pods.push((mtime, e.path().join("etcd")));
        }
    }
    if own {
        return Ok(vec![dir.to_path_buf()]);
    }
    if dir.join("etcd").is_dir() {
        return Ok(vec![dir.join("etcd")]);
    }
    pods.sort();
    Ok(pods.into_iter().map(|(_, p)| p).collect())
}

/// True when `dir` holds etcd pod logs (of `opts.member`, when named): the node's own logs
/// are read there rather than through the API.
pub fn has_pod_logs(dir: &Path, opts: &Options) -> bool {
    container_dirs(dir, opts).is_ok_and(|d| d.iter().any(|c| restarts(c).is_ok_and(|r| !r.is_empty())))
}

/// Where pod logs of `opts.member` are looked for under `dir`, for messages.
pub fn pod_log_pattern(dir: &Path, opts: &Options) -> String {
    let member = opts.member.as_deref().unwrap_or("*");
    format!("{}/{}_etcd-{member}_*/etcd/*.log", dir.display(), opts.namespace)
}

/// Reads the log and returns the report; [`Error::NoLog`] when there is none, or when what was
/// read holds no line of etcd's (an empty file, `-- No entries --`, another program's log).
pub fn examine(input: &Input, opts: &Options) -> Result<LogReport> {
    let mut a = Analyzer::new(opts.since);
    let mut read = Vec::new();
    match input {
        Input::Stdin => {
            a.start_container("stdin");
            a.read_part("stdin", Ok(gunzip_if_gzip(Box::new(std::io::stdin().lock()))));
            read.push("stdin".into());
        }
        Input::File(p) => {
            let name = p.display().to_string();
            a.start_container(&name);
            a.read_part(&name, Ok(open(p)?));
            read.push(name);
        }
        Input::PodLogDir(dir) => {
            let dirs = container_dirs(dir, opts)?;
            let mut tried = Vec::new();
            for cdir in &dirs {
                let mut rs = restarts(cdir)?;
                if opts.previous {
                    // The previous container: the last that is not the newest.
                    let keep = rs.len().checked_sub(2);
                    rs = keep.map(|k| rs.split_off(k)).unwrap_or_default();
                    rs.truncate(1);
                }
                if rs.is_empty() {
                    tried.push(cdir.display().to_string());
                }
                for r in rs {
                    for (k, f) in r.files.iter().enumerate() {
                        let name = f.display().to_string();
                        if k == 0 {
                            a.start_container(&name);
                        } else {
                            a.add_source(&name);
                        }
                        a.read_part(&name, open(f));
                        read.push(name);
                    }
                }
            }
            if read.is_empty() {
                let mut where_ = vec![pod_log_pattern(dir, opts)];
                where_.extend(tried.into_iter().map(|d| {
                    format!("{d} (no {}log there)", if opts.previous { "previous container's " } else { "" })
                }));
                return Err(Error::NoLog { tried: where_ });
            }
        }
    }
    let report = a.finish(read);
    let etcd_lines: u64 = report.formats.iter().filter(|(k, _)| k.as_str() != "raw").map(|(_, n)| n).sum();
    if etcd_lines == 0 && report.findings.is_empty() {
        let since =
            opts.since.map(|d| format!(" of the last {}", crate::base::units::format_duration(d))).unwrap_or_default();
        let mut tried: Vec<String> =
            report.read.iter().map(|r| format!("{r} ({} line(s){since}, none of them etcd's)", report.lines)).collect();
        tried.extend(report.unreadable.iter().cloned());
        return Err(Error::NoLog { tried });
    }
    Ok(report)
}

/// Decompresses a stream that starts with gzip's magic bytes (a `.gz` piped to stdin).
fn gunzip_if_gzip(r: Box<dyn Read + '_>) -> Box<dyn Read + '_> {
    let mut r = BufReader::new(r);
    match r.fill_buf() {
        Ok([0x1f, 0x8b, ..]) => Box::new(flate2::read::MultiGzDecoder::new(r)),
        _ => Box::new(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_named_from_pod_log_sources() {
        assert_eq!(member_of("/var/log/pods/kube-system_etcd-cp-1_0f3a/etcd/3.log.gz").as_deref(), Some("cp-1"));
        assert_eq!(member_of("pods/log kube-system/etcd-cp-2 -c etcd --previous").as_deref(), Some("cp-2"));
        assert_eq!(member_of("/var/log/etcd.log"), None);
        assert_eq!(member_of("stdin"), None);
    }

    #[test]
    fn rotated_names() {
        assert_eq!(log_name("0.log"), Some((0, None)));
        assert_eq!(log_name("3.log.20261205-205124"), Some((3, Some("20261205-205124".into()))));
        assert_eq!(log_name("3.log.20261205-205124.gz"), Some((3, Some("20261205-205124".into()))));
        assert_eq!(log_name("3.log.20261205-205124.tmp"), None);
        assert_eq!(log_name("etcd.yaml"), None);
    }

    #[test]
    fn a_line_is_capped_and_the_rest_skipped() {
        let data = format!("{}\nnext\n", "a".repeat(100));
        let mut r = BufReader::with_capacity(7, data.as_bytes());
        let mut buf = Vec::new();
        assert!(read_line_capped(&mut r, &mut buf, 10).unwrap());
        assert_eq!(buf, b"aaaaaaaaaa");
        assert!(read_line_capped(&mut r, &mut buf, 10).unwrap());
        assert_eq!(buf, b"next\n");
        assert!(!read_line_capped(&mut r, &mut buf, 10).unwrap());
    }

    fn report(lines: &[&str]) -> LogReport {
        let mut a = Analyzer::new(None);
        for l in lines {
            a.line(None, l);
        }
        a.finish(vec!["test".into()])
    }

    const RAISED: &str = r#"{"level":"warn","ts":"2026-12-06T06:42:30.992Z","caller":"etcdserver/apply.go:737","msg":"alarm raised","alarm":"NOSPACE","from":"8e9e05c52164694d"}"#;
    const REFUSED: &str = r#"{"level":"warn","ts":"2026-12-06T06:42:31.100Z","caller":"etcdserver/util.go:166","msg":"failed to apply request","took":"10µs","request":"header:<ID:1 > put:<key:\"/a\" value_size:3 >","response":"","error":"mvcc: database space exceeded"}"#;
    const DISARMED: &str = r#"{"level":"warn","ts":"2026-12-06T06:43:02.001Z","caller":"etcdserver/apply.go:760","msg":"alarm disarmed","alarm":"NOSPACE","from":"8e9e05c52164694d"}"#;

    #[test]
    fn a_disarmed_nospace_is_history() {
        let r = report(&[RAISED, REFUSED, DISARMED]);
        let f = r.findings.iter().find(|f| f.id == "nospace").unwrap();
        assert_eq!(f.count, 2);
        let c = f.cleared.as_ref().expect("cleared");
        assert_eq!(c.at.as_deref(), Some("2026-12-06T06:43:02.001000Z"));
        assert!(c.evidence.contains("alarm disarmed"));
        assert_eq!(r.exit_code(), ExitCode::Ok);
        assert_eq!(r.current().count(), 0);
        // The disarm line is counted as read, and is no finding of its own.
        assert_eq!((r.lines, r.findings.len()), (3, 1));
    }

    #[test]
    fn a_nospace_raised_again_after_its_disarm_is_current() {
        let again = RAISED.replace("06:42:30.992", "06:44:00.000");
        let r = report(&[RAISED, DISARMED, &again]);
        let f = r.findings.iter().find(|f| f.id == "nospace").unwrap();
        assert!(f.cleared.is_none(), "{f:?}");
        assert_eq!(r.exit_code(), ExitCode::Negative);
        // Another alarm's disarm does not clear NOSPACE.
        let corrupt = DISARMED.replace("NOSPACE", "CORRUPT");
        assert_eq!(report(&[RAISED, &corrupt]).exit_code(), ExitCode::Negative);
    }

    #[test]
    fn a_disarm_read_before_a_later_raise_of_another_member_does_not_clear_it() {
        // Two members' logs read one after the other: times decide, not the reading order.
        let later = REFUSED.replace("06:42:31.100", "06:50:00.000");
        let r = report(&[RAISED, DISARMED, &later]);
        assert!(r.findings[0].cleared.is_none());
        let r = report(&[&later, DISARMED]);
        assert!(r.findings[0].cleared.is_none());
        let r = report(&[REFUSED, DISARMED.replace("06:43:02.001", "06:51:00.000").as_str()]);
        assert!(r.findings[0].cleared.is_some());
    }

    #[test]
    fn capnslog_disarm_clears_too() {
        // etcd 3.4's capnslog: `alarm %v raised by peer %s`, then `alarm disarmed %+v`.
        let r = report(&[
            "2026-12-06 06:44:49.892239 W | etcdserver: alarm NOSPACE raised by peer 8e9e05c52164694d",
            "2026-12-06 06:45:10.000001 I | etcdserver: alarm disarmed action:DEACTIVATE memberID:10276657743932975437 alarm:NOSPACE ",
        ]);
        assert!(r.findings[0].cleared.is_some(), "{:?}", r.findings);
        assert_eq!(r.exit_code(), ExitCode::Ok);
    }

    /// etcd 3.5's lines about peer `id` at second `sec`.
    fn peer_line(kind: &str, id: &str, sec: u32) -> String {
        let ts = format!("2026-12-06T07:00:{sec:02}.000Z");
        match kind {
            "inactive" => format!(
                r#"{{"level":"warn","ts":"{ts}","caller":"rafthttp/peer_status.go:66","msg":"peer became inactive (message send to peer failed)","peer-id":"{id}","error":"failed to dial {id} on stream MsgApp v2 (peer {id} failed to find local node 1)"}}"#
            ),
            "prober" => format!(
                r#"{{"level":"warn","ts":"{ts}","caller":"rafthttp/probing_status.go:68","msg":"prober detected unhealthy status","round-tripper-name":"ROUND_TRIPPER_RAFT_MESSAGE","remote-peer-id":"{id}","rtt":"0s","error":"dial tcp 127.0.0.1:2380: connect: connection refused"}}"#
            ),
            _ => format!(
                r#"{{"level":"info","ts":"{ts}","caller":"rafthttp/peer_status.go:53","msg":"peer became active","peer-id":"{id}"}}"#
            ),
        }
    }

    #[test]
    fn a_peer_back_clears_its_own_unreachability_only() {
        let (a, b) = ("8e9e05c52164694d", "fd422379fda50e48");
        let lines = [
            peer_line("inactive", a, 1),
            peer_line("prober", a, 2),
            peer_line("inactive", b, 3),
            peer_line("prober", b, 4),
            peer_line("active", a, 10),
            // The prober lags the peer's return by up to its interval: no reopening.
            peer_line("prober", a, 12),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = report(&refs);
        let f = r.findings.iter().find(|f| f.id == "peer-unreachable").unwrap();
        assert!(f.cleared.is_none(), "{b} is still away: {f:?}");
        assert_eq!(r.exit_code(), ExitCode::Negative);

        let mut more = refs.clone();
        let back = peer_line("active", b, 20);
        more.push(&back);
        let r = report(&more);
        let f = r.findings.iter().find(|f| f.id == "peer-unreachable").unwrap();
        assert_eq!(f.cleared.as_ref().unwrap().at.as_deref(), Some("2026-12-06T07:00:20.000000Z"));
        assert_eq!(r.exit_code(), ExitCode::Ok);

        // Gone again: current again.
        let again = peer_line("inactive", a, 30);
        more.push(&again);
        assert!(report(&more).findings.iter().find(|f| f.id == "peer-unreachable").unwrap().cleared.is_none());
    }

    #[test]
    fn capnslog_peers_are_keyed_by_the_word_after_peer() {
        let r = report(&[
            "2026-12-06 07:00:01.000000 W | rafthttp: health check for peer 8e9e05c52164694d could not connect: dial tcp 127.0.0.1:2380: connect: connection refused",
            "2026-12-06 07:00:02.000000 I | rafthttp: peer fd422379fda50e48 became active",
        ]);
        assert!(r.findings[0].cleared.is_none(), "another peer's return: {:?}", r.findings);
        let r = report(&[
            "2026-12-06 07:00:01.000000 W | rafthttp: health check for peer 8e9e05c52164694d could not connect: dial tcp 127.0.0.1:2380: connect: connection refused",
            "2026-12-06 07:00:02.000000 I | rafthttp: peer 8e9e05c52164694d became active",
        ]);
        assert!(r.findings[0].cleared.is_some(), "{:?}", r.findings);
        // A line of the entry without a key (a join's peerURL) is never cleared.
        let r = report(&[
            "2026-12-06 07:00:01.000000 W | etcdserver: failed to reach the peerURL(https://10.0.0.2:2380) of member 8e9e05c52164694d (Get x: dial tcp: connection refused)",
            "2026-12-06 07:00:02.000000 I | rafthttp: peer 8e9e05c52164694d became active",
        ]);
        assert!(r.findings[0].cleared.is_none(), "{:?}", r.findings);
    }

    #[test]
    fn a_peer_still_away_after_a_restart_or_long_after_is_current() {
        let a = "8e9e05c52164694d";
        let running = r#"{"level":"info","ts":"2026-12-06T07:00:10.000Z","caller":"etcdmain/etcd.go:73","msg":"Running: ","args":["etcd"]}"#;
        // etcd restarted while the peer was away: only the prober says so (no "became inactive").
        // (15 s after the return: the restart, not the time, tells.)
        let lines =
            [peer_line("inactive", a, 1), peer_line("active", a, 5), running.to_string(), peer_line("prober", a, 20)];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = report(&refs);
        assert!(r.findings[0].cleared.is_none(), "{:?}", r.findings);
        // The same container, the prober 35 s after the return: away again.
        let lines = [peer_line("inactive", a, 1), peer_line("active", a, 5), peer_line("prober", a, 40)];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert!(report(&refs).findings[0].cleared.is_none());
        // One probe late: the return stands.
        let lines = [peer_line("inactive", a, 1), peer_line("active", a, 5), peer_line("prober", a, 9)];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert!(report(&refs).findings[0].cleared.is_some());
    }

    #[test]
    fn one_members_view_of_a_peer_does_not_clear_anothers() {
        let a = "8e9e05c52164694d";
        let mut an = Analyzer::new(None);
        // cp-1 is cut off from the peer for ten minutes; cp-2 saw it come back at once.
        an.start_container("/var/log/pods/kube-system_etcd-cp-1_u1/etcd/0.log");
        an.line(None, &peer_line("inactive", a, 1));
        an.line(None, &peer_line("prober", a, 45));
        an.start_container("/var/log/pods/kube-system_etcd-cp-2_u2/etcd/0.log");
        an.line(None, &peer_line("inactive", a, 1));
        an.line(None, &peer_line("active", a, 20));
        let r = an.finish(vec![]);
        let f = r.findings.iter().find(|f| f.id == "peer-unreachable").unwrap();
        assert!(f.cleared.is_none(), "{f:?}");
        assert_eq!(r.exit_code(), ExitCode::Negative);
    }
}
