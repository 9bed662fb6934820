//! `kubectl etcd restore`: snapshot save (verified, durable), snapshot status and verify, and
//! (next) native restore of data dirs and the on-node disaster-recovery flows.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::cli::CommonArgs;
use kubectl_etcd::cluster::Session;
use kubectl_etcd::render::{self, OutputFormat, Table};
use kubectl_etcd::snapshot::{self, SaveOptions, Trailer};
use kubectl_etcd::util::{format_bytes, format_duration, member_id};
use kubectl_etcd::{Error, ExitCode, Result};

/// Back up and restore etcd: snapshots saved, inspected and verified without etcd binaries.
///
/// Exit codes: 0 ok; 1 the file is corrupt or the operation was refused; 2 usage or unreadable
/// input; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-restore", bin_name = "kubectl etcd restore", version)]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshots: save, status, verify.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from one member into FILE: written to FILE.part (mode 0600), its sha256
    /// verified while writing, fsynced, then renamed.
    Save {
        /// The snapshot file to write.
        file: PathBuf,
        /// The member to stream from (name or 16-hex-digit ID) [default: the healthiest voter that is not the leader].
        #[arg(long, value_name = "NAME|ID")]
        member: Option<String>,
        /// Replace FILE if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Hash, revision, total keys and size of a snapshot or a data dir's member/snap/db (the
    /// figures of `etcdutl snapshot status`), and whether its sha256 trailer matches.
    Status {
        /// A snapshot file, or a copy of member/snap/db.
        file: PathBuf,
    },
    /// Check a snapshot's integrity: sha256 trailer, and a full walk of the database structure.
    Verify {
        /// A snapshot file, or a copy of member/snap/db.
        file: PathBuf,
    },
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

fn trailer_text(t: Trailer) -> &'static str {
    match t {
        Trailer::Absent => "absent (data-dir copy)",
        Trailer::Valid => "valid",
        Trailer::Mismatch => "MISMATCH",
    }
}

/// The status table.
pub fn status_table(s: &snapshot::Status, wide: bool) -> Table {
    let mut header = vec!["hash", "revision", "total keys", "total size", "sha256 trailer"];
    if wide {
        header.extend(["file size", "page size", "free pages", "buckets"]);
    }
    let mut t = Table::new(header);
    let mut row = vec![
        s.hash.clone(),
        s.revision.to_string(),
        s.total_keys.to_string(),
        format_bytes(s.total_size),
        trailer_text(s.sha256_trailer).to_string(),
    ];
    if wide {
        row.extend([s.file_size.to_string(), s.page_size.to_string(), s.free_pages.to_string(), s.buckets.join(",")]);
    }
    t.push(row);
    t
}

/// The table printed after a save.
pub fn saved_table(s: &snapshot::Saved) -> Table {
    let mut t = Table::new(["file", "member", "id", "revision", "size", "sha256", "duration"]);
    t.push([
        s.path.display().to_string(),
        s.member.clone(),
        member_id(s.member_id),
        s.revision.to_string(),
        format_bytes(s.size),
        s.sha256.clone(),
        format_duration(s.duration),
    ]);
    t
}

fn emit<T: serde::Serialize>(
    format: OutputFormat,
    no_headers: bool,
    doc: &T,
    table: impl FnOnce(bool) -> Table,
) -> Result<()> {
    let text = match format {
        OutputFormat::Json | OutputFormat::Yaml => render::document(format, doc)?,
        OutputFormat::Wide => table(true).format(no_headers),
        OutputFormat::Table => table(false).format(no_headers),
    };
    render::print(&text)
}

/// A progress line on stderr when it is a terminal: bytes, total, percent, rate.
struct Progress {
    tty: bool,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress { tty: std::io::stderr().is_terminal(), start: now, last: now - Duration::from_secs(1) }
    }
    fn update(&mut self, done: u64, total: u64) {
        if !self.tty || (self.last.elapsed() < Duration::from_millis(100) && done < total) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let pct = if total > 0 { done as f64 / total as f64 * 100.0 } else { 0.0 };
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r[{}{}] {:>5.1}%  {} / {}  {}/s   ",
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            pct,
            format_bytes(done),
            format_bytes(total),
            format_bytes((done as f64 / secs) as u64)
        );
    }
    fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let format = cli.common.format();
    let no_headers = cli.common.no_headers;
    match cli.command {
        Command::Snapshot(SnapshotCommand::Status { file }) => {
            let s = tokio::task::spawn_blocking(move || snapshot::status(&file))
                .await
                .map_err(|e| Error::Usage(format!("internal: {e}")))??;
            emit(format, no_headers, &s, |wide| status_table(&s, wide))?;
            Ok(if s.sha256_trailer == Trailer::Mismatch { ExitCode::Negative } else { ExitCode::Ok })
        }
        Command::Snapshot(SnapshotCommand::Verify { file }) => {
            let f = file.clone();
            let v = tokio::task::spawn_blocking(move || snapshot::verify(&f))
                .await
                .map_err(|e| Error::Usage(format!("internal: {e}")))??;
            match format {
                OutputFormat::Json | OutputFormat::Yaml => render::print(&render::document(format, &v)?)?,
                _ => render::print(&format!(
                    "{}: ok: sha256 trailer {}, {} pages ({} in use, {} free), revision {}, buckets {}\n",
                    file.display(),
                    trailer_text(v.sha256_trailer),
                    v.summary.pages,
                    v.summary.in_use,
                    v.summary.free,
                    v.revision,
                    v.summary.buckets.join(",")
                ))?,
            }
            Ok(ExitCode::Ok)
        }
        Command::Snapshot(SnapshotCommand::Save { file, member, overwrite }) => {
            let settings = cli.common.settings();
            let session = Session::open(&settings).await?;
            let opts = SaveOptions {
                member,
                overwrite,
                stall_timeout: Some(settings.command_timeout.max(Duration::from_secs(30))),
                deadline: settings.command_timeout_explicit.then_some(settings.command_timeout),
            };
            let mut progress = Progress::new();
            let saved = {
                let mut on_progress = |d, t| progress.update(d, t);
                let fut = snapshot::save(&session, &file, &opts, &mut on_progress);
                tokio::select! {
                    r = fut => r,
                    _ = tokio::signal::ctrl_c() => Err(Error::Refused("interrupted: no snapshot written (the .part file was removed)".into())),
                }
            };
            progress.done();
            let saved = saved?;
            emit(format, no_headers, &saved, |_| saved_table(&saved))?;
            Ok(ExitCode::Ok)
        }
    }
}
