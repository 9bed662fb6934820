//! `kubectl etcd restore`: snapshot save (verified, durable), snapshot status and verify,
//! native restore of data dirs, and the on-node disaster-recovery flows.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::cli::CommonArgs;
use kubectl_etcd::cluster::Session;
use kubectl_etcd::render::{self, OutputFormat, Table};
use kubectl_etcd::restore::node::{self as node_flow, NodeOptions, Source};
use kubectl_etcd::snapshot::{self, SaveOptions, Trailer};
use kubectl_etcd::util::{format_bytes, format_duration, member_id, parse_duration};
use kubectl_etcd::{Error, ExitCode, Result};

/// Back up and restore etcd: snapshots saved, inspected and verified without etcd binaries.
///
/// Exit codes: 0 ok; 1 the file is corrupt or the operation was refused; 2 usage or unreadable
/// input; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-restore", bin_name = "kubectl etcd restore", version = kubectl_etcd::version::LONG)]
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
    /// On a control-plane node: stop etcd, move its data dir aside, restore FILE, start it again.
    Node(NodeArgs),
    /// Rebuild a one-member cluster from a surviving member's data dir (a learner kept in a
    /// second site, typically), on its node.
    FromDataDir(FromDataDirArgs),
}

/// How a restore treats the snapshot's hash and the store's revision (etcdutl's flags).
#[derive(Debug, clap::Args)]
pub struct Tuning {
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
}

/// Flags shared by the node flows.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for etcd to stop, and to answer after the restore.
    #[arg(long, default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// `restore node` arguments.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The snapshot to restore.
    pub file: PathBuf,
    /// Restore a one-member cluster (when the other members are lost); re-add them as learners after.
    #[arg(long)]
    pub single_member: bool,
    /// Hash check and revision handling.
    #[command(flatten)]
    pub tuning: Tuning,
    /// The restored cluster's token [default: derived from the snapshot's sha256 and the cluster
    /// this node's data dir is in: the same on every node restoring that snapshot, never the
    /// old cluster's].
    #[arg(long, value_name = "TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// The restored membership NAME=PEER_URL,... [default: the snapshot's members]; for
    /// restoring onto machines whose addresses changed. Every node must pass the same.
    #[arg(long, value_name = "NAME=URL,...", conflicts_with = "single_member")]
    pub initial_cluster: Option<String>,
    /// Confirmation, dry run, timeout.
    #[command(flatten)]
    pub flow: FlowArgs,
}

/// `restore from-data-dir` arguments.
#[derive(Debug, clap::Args)]
pub struct FromDataDirArgs {
    /// The surviving member's data dir (holding member/snap/db).
    pub dir: PathBuf,
    /// Without a manifest: the new data dir to create.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Without a manifest: the member's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Without a manifest: the member's peer URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub initial_advertise_peer_urls: Option<Vec<String>>,
    /// Go on although the data dir belongs to another cluster than this node's, or this node's
    /// cluster still has a quorum.
    #[arg(long)]
    pub force: bool,
    /// Confirmation, dry run, timeout.
    #[command(flatten)]
    pub flow: FlowArgs,
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
    /// Hash check and revision handling.
    #[command(flatten)]
    pub tuning: Tuning,
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
        /// Do not read the whole file to check the sha256 trailer (etcdutl's status does not).
        #[arg(long)]
        skip_hash_check: bool,
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
        Trailer::Unchecked => "present (not checked)",
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

fn confirm(flow: &FlowArgs) -> Result<()> {
    if flow.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "refusing to change this node without confirmation: pass --yes (or --dry-run to see the plan)".into(),
        ));
    }
    eprint!("Proceed? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|source| Error::Io { action: "read the answer".into(), source })?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Refused("not confirmed: nothing was changed".into()))
    }
}

async fn node_flow(
    common: &CommonArgs,
    opts: NodeOptions,
    force: bool,
    flow: &FlowArgs,
    format: OutputFormat,
    no_headers: bool,
) -> Result<ExitCode> {
    // A signal from here on is seen by the flow: before anything changes it just stops.
    kubectl_etcd::util::catch_signals();
    // TLS material and endpoints, read now while everything is in place. The live cluster is
    // asked whether it still has a quorum: a deliberate roll-back is legitimate, an accidental
    // one a disaster, so that comes first in the plan and the prompt.
    let mut settings = common.settings();
    settings.manifest = Some(opts.manifest.clone());
    let session = Session::open(&settings).await;
    let (live, live_id) = match &session {
        Ok(s) => (node_flow::live_quorum_warning(s).await.map(Ok), s.member_list().await.ok().map(|l| l.cluster_id)),
        Err(e) => (Some(Err(format!("could not check whether the live cluster still has a quorum: {e}"))), None),
    };
    let mut opts = opts;
    opts.live_cluster_id = live_id;
    if let Source::DataDir(dir) = &opts.source {
        node_flow::check_data_dir_source(
            dir,
            &opts.manifest,
            live_id,
            live.as_ref().and_then(|w| w.as_ref().ok()),
            force,
        )?;
    }
    let mut plan = node_flow::plan(&opts)?;
    match live {
        Some(Ok(w)) => plan.warnings.insert(0, w),
        Some(Err(w)) => plan.warnings.push(w),
        None => {}
    }
    let session = session?;
    let mut text = String::new();
    for w in &plan.warnings {
        text.push_str(&format!("WARNING: {w}\n"));
    }
    text.push_str(&format!(
        "Plan for member {} (from {}), membership from {}:\n",
        plan.name,
        plan.manifest.display(),
        plan.membership_source
    ));
    for (i, s) in plan.steps.iter().enumerate() {
        text.push_str(&format!("  {}. {s}\n", i + 1));
    }
    if flow.dry_run {
        if format.is_structured() {
            render::print(&render::document(format, &plan)?)?;
        } else {
            render::print(&format!("{text}Dry run: nothing was changed.\n"))?;
        }
        return Ok(ExitCode::Ok);
    }
    eprint!("{text}");
    confirm(flow)?;
    let me = kubectl_etcd::cluster::Member {
        id: 0,
        name: plan.name.clone(),
        peer_urls: plan.peer_urls.clone(),
        client_urls: vec![plan.client_url.clone()],
        is_learner: false,
    };
    let outcome = node_flow::execute(&opts, &plan, || async { session.status_of(&me).await.answered() }).await?;
    let mut steps: Vec<String> = Vec::new();
    match &opts.source {
        Source::Snapshot(p) if !opts.single_member => {
            for m in outcome.applied.members.iter().filter(|m| m.name != plan.name) {
                steps.push(format!(
                    "on {}: kubectl etcd restore node {} --yes (the same file gives the same token {})",
                    m.name,
                    p.display(),
                    plan.token
                ));
            }
            steps.push("the cluster answers once a quorum of its members is restored and running".into());
        }
        _ => {
            steps.push(format!(
                "the other members are gone from this cluster: on each, stop etcd, move its data dir aside, then add it back as a learner: kubectl etcd learner add NAME --peer-urls URL (and start it with --initial-cluster-state=existing --initial-cluster-token={})",
                plan.token
            ));
        }
    }
    if outcome.answered {
        // Restored members that answer must all be in this cluster (or not restored yet).
        let pending =
            node_flow::check_one_cluster(&session, &plan.client_url, outcome.applied.cluster_id, plan.old_cluster_id)
                .await?;
        if !pending.is_empty() {
            steps = pending.into_iter().chain(steps).collect();
        }
    }
    if format.is_structured() {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            outcome: &'a node_flow::Outcome,
            next_steps: &'a [String],
        }
        render::print(&render::document(format, &Doc { outcome: &outcome, next_steps: &steps })?)?;
        return Ok(ExitCode::Ok);
    }
    let old = if plan.backup.exists() {
        format!("the old data is at {}", plan.backup.display())
    } else {
        format!("there was no old data in {}", plan.data_dir.display())
    };
    let mut s = format!(
        "Restored member {} ({}) of cluster {} at revision {}; {old}.\n\n",
        outcome.applied.member.name,
        member_id(outcome.applied.member.id),
        member_id(outcome.applied.cluster_id),
        outcome.applied.revision,
    );
    if outcome.answered {
        if let Ok(report) = kubectl_etcd::health::run(
            &session,
            &kubectl_etcd::health::Options { skip_hashkv: true, quota_backend_bytes: None },
        )
        .await
        {
            s.push_str(&kubectl_etcd::health::members_table(&report, false).format(no_headers));
            s.push('\n');
        }
    } else {
        s.push_str(&format!(
            "etcd runs on the restored data dir and listens on {}; it will answer once a quorum of the {} restored members runs.\n\n",
            plan.client_url,
            outcome.applied.members.len()
        ));
    }
    s.push_str("Next:\n");
    for st in &steps {
        s.push_str(&format!("  - {st}\n"));
    }
    render::print(&s)?;
    Ok(ExitCode::Ok)
}

fn manifest_path(common: &CommonArgs) -> PathBuf {
    common.manifest.clone().unwrap_or_else(|| common.settings().default_manifest)
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let format = cli.common.format();
    let no_headers = cli.common.no_headers;
    match cli.command {
        Command::Node(a) => {
            let opts = NodeOptions {
                manifest: manifest_path(&cli.common),
                source: Source::Snapshot(a.file),
                single_member: a.single_member,
                skip_hash_check: a.tuning.skip_hash_check,
                bump_revision: a.tuning.bump_revision,
                mark_compacted: a.tuning.mark_compacted,
                timeout: a.flow.timeout,
                token: a.initial_cluster_token,
                live_cluster_id: None,
                initial_cluster: a.initial_cluster,
            };
            node_flow(&cli.common, opts, false, &a.flow, format, no_headers).await
        }
        Command::FromDataDir(a) => {
            let manifest = manifest_path(&cli.common);
            if a.data_dir.is_none() && manifest.exists() {
                let opts = NodeOptions {
                    manifest,
                    source: Source::DataDir(a.dir),
                    single_member: true,
                    skip_hash_check: true,
                    bump_revision: None,
                    mark_compacted: false,
                    timeout: a.flow.timeout,
                    token: None,
                    live_cluster_id: None,
                    initial_cluster: None,
                };
                return node_flow(&cli.common, opts, a.force, &a.flow, format, no_headers).await;
            }
            // No manifest: restore into a new data dir and say how to start it.
            let (Some(data_dir), Some(name), Some(peers)) = (a.data_dir, a.name, a.initial_advertise_peer_urls) else {
                return Err(Error::Usage(format!(
                    "no manifest at {}: pass --manifest, or --data-dir, --name and --initial-advertise-peer-urls",
                    manifest.display()
                )));
            };
            let db = a.dir.join("member/snap/db");
            let initial_cluster = peers.iter().map(|u| format!("{name}={u}")).collect::<Vec<_>>().join(",");
            let opts = kubectl_etcd::restore::ApplyOptions {
                snapshot: db,
                data_dir,
                name,
                initial_cluster,
                initial_advertise_peer_urls: Some(peers),
                token: kubectl_etcd::restore::DEFAULT_TOKEN.into(),
                skip_hash_check: true,
                bump_revision: None,
                mark_compacted: false,
                engine: kubectl_etcd::restore::Engine::Native,
            };
            if a.flow.dry_run && format.is_structured() {
                kubectl_etcd::restore::prepare(&opts)?;
                #[derive(serde::Serialize)]
                struct Plan<'a> {
                    dry_run: bool,
                    snapshot: &'a std::path::Path,
                    skip_hash_check: bool,
                    data_dir: &'a std::path::Path,
                    name: &'a str,
                    initial_cluster: &'a str,
                    token: &'a str,
                }
                let plan = Plan {
                    dry_run: true,
                    snapshot: &opts.snapshot,
                    skip_hash_check: true,
                    data_dir: &opts.data_dir,
                    name: &opts.name,
                    initial_cluster: &opts.initial_cluster,
                    token: &opts.token,
                };
                render::print(&render::document(format, &plan)?)?;
                return Ok(ExitCode::Ok);
            }
            if a.flow.dry_run {
                kubectl_etcd::restore::prepare(&opts)?;
                render::print(&format!(
                    "Plan: restore {} (skip-hash-check) into {} as the only member {} ({}).\nDry run: nothing was changed.\n",
                    opts.snapshot.display(),
                    opts.data_dir.display(),
                    opts.name,
                    opts.initial_cluster
                ))?;
                return Ok(ExitCode::Ok);
            }
            confirm(&a.flow)?;
            let snap = opts.snapshot.clone();
            let applied = tokio::task::spawn_blocking(move || kubectl_etcd::restore::apply(&opts))
                .await
                .map_err(kubectl_etcd::Error::from_join)??;
            let steps = next_steps(&applied, &snap, kubectl_etcd::restore::DEFAULT_TOKEN);
            if format.is_structured() {
                render::print(&render::document(format, &applied)?)?;
            } else {
                let mut s = format!(
                    "Restored a one-member cluster {} into {}: start etcd there with --name {} --data-dir {} (never --force-new-cluster on a learner's data dir).\nNext:\n",
                    member_id(applied.cluster_id),
                    applied.data_dir.display(),
                    applied.member.name,
                    applied.data_dir.display()
                );
                for st in &steps {
                    s.push_str(&format!("  - {st}\n"));
                }
                render::print(&s)?;
            }
            Ok(ExitCode::Ok)
        }
        Command::Apply(a) => {
            // A signal stops the restore between batches; its temporary dir is removed.
            kubectl_etcd::util::catch_signals();
            let opts = kubectl_etcd::restore::ApplyOptions {
                snapshot: a.file.clone(),
                data_dir: a.data_dir,
                name: a.name,
                initial_cluster: a.initial_cluster,
                initial_advertise_peer_urls: a.initial_advertise_peer_urls,
                token: a.initial_cluster_token.clone(),
                skip_hash_check: a.tuning.skip_hash_check,
                bump_revision: a.tuning.bump_revision,
                mark_compacted: a.tuning.mark_compacted,
                engine: if a.engine == "etcdutl" {
                    kubectl_etcd::restore::Engine::Etcdutl
                } else {
                    kubectl_etcd::restore::Engine::Native
                },
            };
            let applied = tokio::task::spawn_blocking(move || kubectl_etcd::restore::apply(&opts))
                .await
                .map_err(kubectl_etcd::Error::from_join)??;
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
        Command::Snapshot(SnapshotCommand::Status { file, skip_hash_check }) => {
            let s = tokio::task::spawn_blocking(move || snapshot::status_with(&file, !skip_hash_check))
                .await
                .map_err(kubectl_etcd::Error::from_join)??;
            emit(format, no_headers, &s, |wide| status_table(&s, wide))?;
            Ok(if s.sha256_trailer == Trailer::Mismatch { ExitCode::Negative } else { ExitCode::Ok })
        }
        Command::Snapshot(SnapshotCommand::Verify { file }) => {
            let f = file.clone();
            let v = tokio::task::spawn_blocking(move || snapshot::verify(&f))
                .await
                .map_err(kubectl_etcd::Error::from_join)??;
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
                kubectl_etcd::util::catch_signals();
                tokio::select! {
                    r = fut => r,
                    _ = kubectl_etcd::util::until_interrupted() => Err(Error::Refused(format!(
                        "interrupted by {}: no snapshot written (the .part file was removed)",
                        kubectl_etcd::util::interrupting_signal().unwrap_or("a signal")
                    ))),
                }
            };
            progress.done();
            let saved = saved?;
            emit(format, no_headers, &saved, |_| saved_table(&saved))?;
            Ok(ExitCode::Ok)
        }
    }
}
