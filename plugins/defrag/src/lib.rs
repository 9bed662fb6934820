//! `kubectl etcd defrag`: rolling defragmentation with a health check before every member,
//! optional compaction first, and the NOSPACE recovery (`--compact --disarm`).

use std::time::Duration;

use clap::{CommandFactory, Parser};
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
/// Exit codes: 0 done or nothing to do; 1 stopped by a safety check; 2 usage; 3 discovery;
/// 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-defrag", bin_name = "kubectl etcd defrag", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # Every member above the fragmentation rule, followers first, the leader last
  kubectl etcd defrag
  # \"mvcc: database space exceeded\": compact, defragment, disarm NOSPACE
  kubectl etcd defrag --compact --disarm
  # The plan only
  kubectl etcd defrag --all --dry-run -o json")]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

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
        Event::Compacted(r) => eprintln!("compacted to revision {r}"),
        Event::MovingLeader { from, to } => eprintln!("moved leadership from {from} to {to}"),
        Event::Start(t) => eprintln!(
            "defragmenting {} ({}, {}) ...",
            t.name,
            t.role,
            t.db_size.map(kubectl_etcd::base::units::format_bytes).unwrap_or_default()
        ),
        Event::Finished(d) => eprintln!("{}", done_line(d)),
    }
}
