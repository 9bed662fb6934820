//! `kubectl etcd defrag`: rolling defragmentation with a health check before every member,
//! optional compaction first, and the NOSPACE recovery (`--compact --disarm`); `defrag
//! schedule`, a CronJob that runs it; `defrag usage` (also `kubectl etcd usage`), what fills
//! the database.

use std::time::Duration;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::base::messages;
use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::ops::defrag::{self, done_line, Event, MinFree, Options};
use kubectl_etcd::reach::cluster::Session;
use kubectl_etcd::{ExitCode, Result};

/// Defragment etcd members one at a time: followers first (the most fragmented first), the
/// leader last, with every voter, the leader and the quorum checked before each member.
///
/// `kubectl etcd defrag --compact --disarm` is the whole "mvcc: database space exceeded"
/// runbook: compact to the current revision, defragment, disarm the NOSPACE alarms once every
/// DB is back below the quota, and check that a write succeeds.
///
/// `kubectl etcd defrag usage` (`kubectl etcd usage`) says what fills the database, per
/// Kubernetes resource; `kubectl etcd defrag schedule` keeps it defragmented from a CronJob.
///
/// Exit codes: 0 done or nothing to do; 1 stopped by a safety check (usage: a file that is not
/// a readable etcd database); 2 usage; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-defrag", bin_name = "kubectl etcd defrag", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # Every member above the fragmentation rule, followers first, the leader last
  kubectl etcd defrag
  # \"mvcc: database space exceeded\": compact, defragment, disarm NOSPACE
  kubectl etcd defrag --compact --disarm
  # The plan only
  kubectl etcd defrag --all --dry-run -o json
  # What fills the database (also: kubectl etcd usage)
  kubectl etcd defrag usage /var/backups/etcd.db
  # A nightly defrag of the members with 10% free, as a CronJob
  kubectl etcd defrag schedule --schedule '0 3 * * *' --min-free 10% --apply")]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// What fills the database, or a scheduled defrag; none: defragment now.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the plan (members in order, sizes, which are taken and why); change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Take a member when at least this much of its DB is free: a percentage of its size or a
    /// size [default: 10% or 100MiB, whichever is met first].
    #[arg(long, value_name = "PERCENT|SIZE", value_parser = MinFree::parse)]
    pub min_free: Option<MinFree>,

    /// Take every member, whatever its free space.
    #[arg(long, conflicts_with = "min_free")]
    pub all: bool,

    /// Compact to the current revision first (physically). kube-apiserver compacts every 5
    /// minutes, so this is needed only when it cannot (NOSPACE) or to reclaim now.
    #[arg(long)]
    pub compact: bool,

    /// With --compact: keep this many revisions before the current one.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "compact")]
    pub keep_revisions: u64,

    /// Afterwards disarm NOSPACE alarms, once every member's DB is below --disarm-threshold of
    /// the quota, and check that a write succeeds.
    #[arg(long)]
    pub disarm: bool,

    /// With --disarm: the share of the quota every DB must be below, in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 90.0, value_parser = percent)]
    pub disarm_threshold: f64,

    /// Backend quota the threshold refers to [default: the manifest's --quota-backend-bytes,
    /// else etcd's 2 GiB].
    #[arg(long, value_name = "BYTES", value_parser = kubectl_etcd::base::units::parse_size)]
    pub quota_backend_bytes: Option<u64>,

    /// Before the leader's turn, hand leadership to the most up-to-date follower.
    #[arg(long)]
    pub move_leader: bool,

    /// Pause between members, for the cluster to settle.
    #[arg(long, default_value = "0s", value_parser = parse_pause, value_name = "DURATION")]
    pub wait_between: Duration,

    /// Go on where the safety check would stop (a one-member cluster does not serve while it
    /// defragments).
    #[arg(long)]
    pub force: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What fills the database, per Kubernetes resource: live keys and bytes, revisions kept,
    /// the history a compaction would drop, tombstones; the largest and most rewritten keys;
    /// free pages; findings with the next step. Reads a snapshot file (plain or zstd), a data
    /// dir's member/snap/db (without etcd's lock, etcd running or not), or, with no argument, a
    /// snapshot streamed from a member in quorum into a nameless temporary file.
    #[command(after_help = "Examples:
  kubectl etcd usage                                  # a snapshot of the live cluster
  kubectl etcd usage /var/backups/etcd-snapshot.db.zst
  kubectl etcd usage /var/lib/etcd --by namespace     # this node's data dir, etcd running
  kubectl etcd usage -o json | jq '.resources[0]'

Exit codes: 0 read; 1 not a readable etcd database (truncated, not bbolt); 2 usage or a file
that cannot be read; 3 discovery; 4 transport.")]
    Usage(UsageArgs),
    /// A CronJob that keeps the database from filling: it runs the rolling defrag with its
    /// rules (--min-free, --all, --compact) on a control-plane node, which defragments only the
    /// members that pass them and does nothing otherwise. No API rights, host network, the
    /// node's manifest and etcd PKI read-only. Prints the manifests (-o yaml, the default;
    /// -o json a List), or creates/updates them with --apply.
    #[command(after_help = "Examples:
  kubectl etcd defrag schedule --schedule '0 3 * * *' --apply
  kubectl etcd defrag schedule --schedule '@weekly' --min-free 20% --compact > etcd-defrag.yaml")]
    Schedule(ScheduleArgs),
}

/// `usage` arguments.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// A snapshot file (plain or zstd), a copy of member/snap/db, or an etcd data dir; none: a
    /// snapshot of the cluster, streamed from a member in quorum.
    #[arg(value_name = "FILE|DATA_DIR", value_hint = clap::ValueHint::AnyPath)]
    pub path: Option<PathBuf>,
    /// Rows per resource, or per namespace.
    #[arg(long, value_enum, default_value = "resource")]
    pub by: kubectl_etcd::ops::usage::By,
    /// How many of the largest and most rewritten keys, and table rows (the rest summed).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// The quota the size is held against [default: the manifest's --quota-backend-bytes, else
    /// etcd's 2 GiB].
    #[arg(long, value_name = "BYTES", value_parser = kubectl_etcd::base::units::parse_size)]
    pub quota_backend_bytes: Option<u64>,
    /// With no path: stream the snapshot from this member (name or ID), which must be in quorum.
    #[arg(long, value_name = "NAME|ID")]
    pub member: Option<String>,
}

/// `schedule` arguments.
#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// When to run, in cron syntax (minute hour day-of-month month day-of-week) or @daily,
    /// @weekly, …; the CronJob controller's time zone.
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    /// The rule: take a member when at least this much of its DB is free [default: defrag's,
    /// 10% or 100MiB].
    #[arg(long, value_name = "PERCENT|SIZE", value_parser = min_free_text)]
    pub min_free: Option<String>,
    /// Take every member, whatever its free space.
    #[arg(long, conflicts_with = "min_free")]
    pub all: bool,
    /// Compact to the current revision first.
    #[arg(long)]
    pub compact: bool,
    /// With --compact: keep this many revisions before the current one.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "compact")]
    pub keep_revisions: u64,
    /// The image with the kubectl-etcd binaries (the repository's Dockerfile).
    #[arg(long, value_name = "IMAGE", default_value = kubectl_etcd::ops::schedule::DEFAULT_IMAGE)]
    pub image: String,
    /// The CronJob's and ServiceAccount's name.
    #[arg(long, value_name = "NAME", default_value = kubectl_etcd::ops::schedule::DEFAULT_DEFRAG_NAME)]
    pub name: String,
    /// Create or update the objects through the API instead of printing them.
    #[arg(long)]
    pub apply: bool,
}

fn min_free_text(s: &str) -> std::result::Result<String, String> {
    MinFree::parse(s).map(|_| s.trim().to_string())
}

fn percent(s: &str) -> std::result::Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!("{s:?} is not a percentage from 1 to 100")),
    }
}

fn parse_pause(s: &str) -> std::result::Result<Duration, String> {
    if s.trim() == "0" || s.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    kubectl_etcd::base::units::parse_duration(s)
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command: settings → session → plan → (dry run | defrag) → emit.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = cli.common.settings();
    let out = cli.common.out();
    if cli.command.is_some()
        && (cli.dry_run
            || cli.min_free.is_some()
            || cli.all
            || cli.compact
            || cli.disarm
            || cli.move_leader
            || cli.force
            || cli.quota_backend_bytes.is_some()
            || !cli.wait_between.is_zero())
    {
        return Err(kubectl_etcd::Error::Usage(
            "defrag's own flags go without a subcommand; give usage's or schedule's flags after it (kubectl etcd defrag schedule --min-free 10% …)".into(),
        ));
    }
    match cli.command {
        Some(Command::Usage(a)) => return usage(&cli.common, a).await,
        Some(Command::Schedule(a)) => return schedule(&cli.common, a).await,
        None => {}
    }
    let session = Session::open(&settings).await?;
    let quota =
        kubectl_etcd::reach::discovery::manifest::quota(cli.quota_backend_bytes, session.discovery.manifest.as_ref());
    let opts = Options {
        min_free: cli.min_free,
        all: cli.all,
        compact: cli.compact,
        keep_revisions: cli.keep_revisions,
        disarm: cli.disarm,
        disarm_threshold: cli.disarm_threshold / 100.0,
        quota,
        move_leader: cli.move_leader,
        wait_between: cli.wait_between,
        timeout: settings.command_timeout_explicit.then_some(settings.command_timeout),
        force: cli.force,
    };
    let plan = defrag::plan(&session, &opts, cli.dry_run).await?;
    if cli.dry_run {
        return out.emit(&plan).map(|()| ExitCode::Ok);
    }
    let result = defrag::run(&session, plan, &opts, &mut progress).await?;
    out.emit(&result).map(|()| ExitCode::Ok)
}

/// Progress on stderr, one line per step.
fn progress(e: Event) {
    match e {
        Event::Compacted(r) => messages::message(&format!("compacted to revision {r}")),
        Event::MovingLeader { from, to } => messages::message(&format!("moved leadership from {from} to {to}")),
        Event::Start(t) => messages::message(&format!(
            "defragmenting {} ({}, {}) ...",
            t.name,
            t.role,
            t.db_size.map(kubectl_etcd::base::units::format_bytes).unwrap_or_default()
        )),
        Event::Finished(d) => messages::message(&done_line(d)),
    }
}

/// `defrag usage`.
async fn usage(common: &CommonArgs, a: UsageArgs) -> Result<ExitCode> {
    use kubectl_etcd::ops::usage;
    let out = common.out();
    let settings = common.settings();
    let mut opts = usage::Options { by: a.by, top: a.top, quota: 0 };
    let Some(path) = a.path else {
        let session = Session::open(&settings).await?;
        opts.quota =
            kubectl_etcd::reach::discovery::manifest::quota(a.quota_backend_bytes, session.discovery.manifest.as_ref());
        let save = kubectl_etcd::ops::snapshot::SaveOptions {
            member: a.member,
            deadline: settings.command_timeout_explicit.then_some(settings.command_timeout),
            ..Default::default()
        };
        let mut bar = kubectl_etcd::base::progress::Bar::new();
        let u = usage::of_cluster(&session, &save, &opts, &mut |done, total| bar.bytes(done, total)).await;
        bar.finish();
        let u = u?;
        messages::message(&format!(
            "read a snapshot of {} ({}) streamed into a nameless temporary file: {}",
            u.source.member.as_deref().unwrap_or("?"),
            u.source.endpoint.as_deref().unwrap_or("?"),
            kubectl_etcd::base::units::format_bytes(u.source.size)
        ));
        return out.emit(&u).map(|()| ExitCode::Ok);
    };
    if a.member.is_some() {
        return Err(kubectl_etcd::Error::Usage(
            "--member picks the member a snapshot is streamed from: give it without a FILE|DATA_DIR".into(),
        ));
    }
    // The node's manifest, when there is one, tells the quota.
    let manifest = common.manifest.clone().unwrap_or_else(|| settings.default_manifest.clone());
    let m = kubectl_etcd::reach::discovery::manifest::Manifest::load(&manifest).ok();
    opts.quota = kubectl_etcd::reach::discovery::manifest::quota(a.quota_backend_bytes, m.as_ref());
    let u = tokio::task::spawn_blocking(move || usage::of_path(&path, &opts))
        .await
        .map_err(kubectl_etcd::Error::from_join)??;
    out.emit(&u).map(|()| ExitCode::Ok)
}

/// `defrag schedule`.
async fn schedule(common: &CommonArgs, a: ScheduleArgs) -> Result<ExitCode> {
    use kubectl_etcd::ops::schedule::{DefragTask, ScheduleOptions, Task};
    let opts = ScheduleOptions {
        task: Task::Defrag(DefragTask {
            min_free: a.min_free,
            all: a.all,
            compact: a.compact,
            keep_revisions: a.keep_revisions,
        }),
        schedule: a.schedule,
        keep: 0,
        compression: Default::default(),
        dir: PathBuf::new(),
        image: a.image,
        namespace: String::new(),
        name: a.name,
        pki_dirs: Vec::new(),
        manifest: PathBuf::new(),
        nodes: Vec::new(),
        db_size: 0,
        buckets: Vec::new(),
        credentials_secret: None,
    };
    kubectl_etcd::cli::schedule::run(common, common.out(), opts, a.apply, false, "defrag schedule").await
}
