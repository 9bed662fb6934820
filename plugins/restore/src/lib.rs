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
    /// Restore a snapshot into a new data dir, natively (the contract of `etcdutl snapshot restore`).
    Apply(ApplyArgs),
}

/// `restore apply` arguments (etcdutl's names).
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The snapshot file (or a copy of member/snap/db with --skip-hash-check).
    pub file: PathBuf,
    /// The data dir to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// This member's name.
    #[arg(long)]
    pub name: String,
    /// The new cluster: NAME=PEER_URL,... (every member, this one included).
    #[arg(long, value_name = "NAME=URL,...")]
    pub initial_cluster: String,
    /// This member's peer URLs [default: its URLs in --initial-cluster].
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub initial_advertise_peer_urls: Option<Vec<String>>,
    /// The cluster token; every member of the new cluster must use the same.
    #[arg(long, default_value = kubectl_etcd::restore::DEFAULT_TOKEN)]
    pub initial_cluster_token: String,
    /// Do not require a matching sha256 trailer (needed for a copy of member/snap/db).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Raise the revision by this much (use with --mark-compacted), so that clients' caches
    /// and watches from before the restore are invalidated.
    #[arg(long, value_name = "N")]
    pub bump_revision: Option<u64>,
    /// Mark the restored revision compacted: watches from older revisions get "compacted".
    #[arg(long)]
    pub mark_compacted: bool,
    /// Who writes the data dir: native (this binary) or etcdutl (found on PATH, for comparison).
    #[arg(long, default_value = "native", value_parser = ["native", "etcdutl"])]
    pub engine: String,
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

/// What the other members must do after a restore.
pub fn next_steps(a: &kubectl_etcd::restore::Applied, snapshot: &std::path::Path, token: &str) -> Vec<String> {
    let cluster: Vec<String> =
        a.members.iter().flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name))).collect();
    let mut steps = Vec::new();
    for m in a.members.iter().filter(|m| m.name != a.member.name) {
        steps.push(format!(
            "on {}: kubectl etcd restore apply {} --data-dir <its data dir> --name {} --initial-cluster {} --initial-cluster-token {token}{}",
            m.name,
            snapshot.display(),
            m.name,
            cluster.join(","),
            if a.bumped_to.is_some() { " --bump-revision <same> --mark-compacted" } else { "" }
        ));
    }
    steps.push(format!(
        "then start etcd on every member: the restored data dirs form cluster {} (etcd ignores the --initial-cluster* flags once a data dir exists)",
        member_id(a.cluster_id)
    ));
    if a.members.len() == 1 {
        steps.push(
            "to grow the cluster again, add members as learners: kubectl etcd learner add NAME --peer-urls URL".into(),
        );
    }
    steps
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let format = cli.common.format();
    let no_headers = cli.common.no_headers;
    match cli.command {
        Command::Apply(a) => {
            let opts = kubectl_etcd::restore::ApplyOptions {
                snapshot: a.file.clone(),
                data_dir: a.data_dir,
                name: a.name,
                initial_cluster: a.initial_cluster,
                initial_advertise_peer_urls: a.initial_advertise_peer_urls,
                token: a.initial_cluster_token.clone(),
                skip_hash_check: a.skip_hash_check,
                bump_revision: a.bump_revision,
                mark_compacted: a.mark_compacted,
                engine: if a.engine == "etcdutl" {
                    kubectl_etcd::restore::Engine::Etcdutl
                } else {
                    kubectl_etcd::restore::Engine::Native
                },
            };
            let applied = tokio::task::spawn_blocking(move || kubectl_etcd::restore::apply(&opts))
                .await
                .map_err(|e| Error::Usage(format!("internal: {e}")))??;
            let steps = next_steps(&applied, &a.file, &a.initial_cluster_token);
            if format.is_structured() {
                #[derive(serde::Serialize)]
                struct Doc<'a> {
                    #[serde(flatten)]
                    applied: &'a kubectl_etcd::restore::Applied,
                    next_steps: &'a [String],
                }
                render::print(&render::document(format, &Doc { applied: &applied, next_steps: &steps })?)?;
            } else {
                let mut s = format!(
                    "Restored {} into {} as member {} ({}) of cluster {} at revision {}{} in {}.\nMembers:\n",
                    a.file.display(),
                    applied.data_dir.display(),
                    applied.member.name,
                    member_id(applied.member.id),
                    member_id(applied.cluster_id),
                    applied.revision,
                    applied.bumped_to.map(|b| format!(" (bumped to {b}, compacted)")).unwrap_or_default(),
                    format_duration(applied.duration)
                );
                for m in &applied.members {
                    s.push_str(&format!("  {}  {}  {}\n", member_id(m.id), m.name, m.peer_urls.join(",")));
                }
                s.push_str("Next:\n");
                for st in &steps {
                    s.push_str(&format!("  - {st}\n"));
                }
                render::print(&s)?;
            }
            Ok(ExitCode::Ok)
        }
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
