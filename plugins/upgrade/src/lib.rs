//! `kubectl etcd upgrade`: is it safe to move etcd to the next version (`check`), and the move
//! of this node's static-pod member (`node`); `kubectl etcd downgrade` (etcd 3.6+).

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::base::messages;
use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::ops::upgrade::{self, downgrade, CheckOptions, Version};
use kubectl_etcd::reach::cluster::Session;
use kubectl_etcd::{Error, ExitCode, Result};

/// Upgrade etcd safely: one minor at a time, from at least the patch floor etcd requires, one
/// member at a time with a snapshot first and a rollback when the member does not come back.
///
/// Exit codes: 0 ready / done; 1 not ready, refused or rolled back; 2 usage; 3 discovery;
/// 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-upgrade", bin_name = "kubectl etcd upgrade", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # Is the cluster ready for the next step on the supported path?
  kubectl etcd upgrade check
  # ... for a given version, and what kubeadm v1.34 would do to etcd
  kubectl etcd upgrade check --to 3.6.14 --kubernetes v1.34
  # Where a rollout stands: versions per member, the members still to do
  kubectl etcd upgrade status
  # On each control-plane node in turn, the leader's last: the plan, then the upgrade
  kubectl etcd upgrade node --to 3.5.33 --dry-run
  kubectl etcd upgrade node --to 3.5.33 --yes
  # etcd 3.6 and later: downgrade through etcd's API (also: kubectl etcd downgrade …)
  kubectl etcd upgrade downgrade validate 3.5")]
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
    /// Read-only: versions, the path and its patch floor, the health gate, this node's manifest
    /// flags, data dir membership and room. Exit 0 ready, 1 not ready.
    #[command(after_help = "Examples:
  kubectl etcd upgrade check
  kubectl etcd upgrade check --to 3.5.33 -o json
  kubectl etcd upgrade check --kubernetes v1.34")]
    Check {
        /// The target version [default: the next step on the supported path].
        #[arg(long, value_name = "VERSION", value_parser = parse_version)]
        to: Option<Version>,
        /// What kubeadm of this Kubernetes version would do to etcd (vMAJOR.MINOR).
        #[arg(long, value_name = "vX.Y")]
        kubernetes: Option<String>,
        /// Look for a recent snapshot that verifies in this directory.
        #[arg(long, value_name = "DIR")]
        snapshots: Option<PathBuf>,
        /// This node's data dir [default: the manifest's --data-dir].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Read-only: each member's server, cluster and storage version, the downgrade state
    /// (etcd 3.6+), and how far a rolling upgrade has got.
    #[command(after_help = "Examples:
  kubectl etcd upgrade status
  kubectl etcd upgrade status -o json")]
    Status,
    /// Upgrade this node's static-pod member: check, snapshot, move leadership away, swap the
    /// manifest, wait for the member on the new version, roll back on failure.
    #[command(after_help = "Examples:
  kubectl etcd upgrade node --to 3.5.33 --dry-run -o json
  kubectl etcd upgrade node --to 3.5.33 --yes
  kubectl etcd upgrade node --to 3.5.33 --image registry.example/etcd:3.5.33-0 --yes")]
    Node {
        /// The version to run.
        #[arg(long, value_name = "VERSION", value_parser = parse_version)]
        to: Version,
        /// The image [default: the manifest's repository, tag VERSION-0 as kubeadm names them].
        #[arg(long, value_name = "REF")]
        image: Option<String>,
        /// Where the snapshot taken first goes.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/etcd-backups")]
        snapshot_dir: PathBuf,
        /// How long to wait for the member on the new version before rolling back.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = kubectl_etcd::base::units::parse_duration)]
        timeout: Duration,
        /// Go on although this named check failed (repeatable); said in the output.
        #[arg(long, value_name = "CHECK")]
        force: Vec<String>,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Where the original manifest is kept [default: the manifests folder's parent, /etc/kubernetes].
        #[arg(long, value_name = "DIR")]
        backup_dir: Option<PathBuf>,
    },
    /// etcd 3.6+: downgrade the cluster version through etcd's Downgrade API.
    #[command(after_help = "Examples:
  kubectl etcd upgrade downgrade validate 3.5
  kubectl etcd upgrade downgrade enable 3.5
  kubectl etcd upgrade downgrade cancel")]
    Downgrade {
        /// validate, enable or cancel.
        #[command(subcommand)]
        action: DowngradeCmd,
    },
}

/// `downgrade` actions.
#[derive(Debug, Subcommand)]
pub enum DowngradeCmd {
    /// Would the cluster accept a downgrade to VERSION.
    #[command(after_help = "Examples:\n  kubectl etcd upgrade downgrade validate 3.5")]
    Validate {
        /// The target minor (3.5).
        #[arg(value_parser = parse_version)]
        version: Version,
    },
    /// Start the downgrade to VERSION, then follow every member's storage version until it is
    /// VERSION's (when binaries may be swapped, the leader last).
    #[command(
        after_help = "Examples:\n  kubectl etcd upgrade downgrade enable 3.5\n  kubectl etcd upgrade downgrade enable 3.5 --wait 0s"
    )]
    Enable {
        /// The target minor (3.5).
        #[arg(value_parser = parse_version)]
        version: Version,
        /// How long to follow the storage versions (0s: do not wait).
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = kubectl_etcd::base::units::parse_wait)]
        wait: Duration,
    },
    /// Cancel a downgrade in progress.
    #[command(after_help = "Examples:\n  kubectl etcd upgrade downgrade cancel")]
    Cancel,
}

fn parse_version(s: &str) -> std::result::Result<Version, String> {
    Version::parse(s).ok_or_else(|| format!("{s:?} is not an etcd version: expected MAJOR.MINOR.PATCH, e.g. 3.5.33"))
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = cli.common.settings();
    let out = cli.common.out();
    match cli.command {
        Command::Check { to, kubernetes, snapshots, data_dir } => {
            if let Some(k) = &kubernetes {
                if upgrade::facts().kubeadm_etcd(k).is_none() {
                    return Err(Error::Usage(format!(
                        "--kubernetes {k:?} is not a Kubernetes version: expected vMAJOR.MINOR, e.g. v1.34"
                    )));
                }
            }
            let session = Session::open(&settings).await?;
            let opts = CheckOptions { to, kubernetes, snapshots, data_dir };
            let result = upgrade::check(&session, &opts).await?;
            out.emit(&result)?;
            Ok(result.exit_code())
        }
        Command::Status => {
            let session = Session::open(&settings).await?;
            let result = upgrade::status(&session).await?;
            out.emit(&result)?;
            Ok(ExitCode::Ok)
        }
        Command::Node { to, image, snapshot_dir, timeout, force, dry_run, yes, backup_dir } => {
            let session = Session::open(&settings).await?;
            let opts = upgrade::node::NodeOptions { to, image, snapshot_dir, timeout, force, dry_run, backup_dir };
            let plan = upgrade::node::plan(&session, &opts).await?;
            if dry_run {
                out.emit(&plan)?;
                return Ok(plan.exit_code());
            }
            if !plan.ready {
                out.emit(&plan)?;
                return Ok(ExitCode::Negative);
            }
            kubectl_etcd::cli::args::confirm(yes)?;
            let result = upgrade::node::run(&session, plan, &opts, &mut |line| messages::message(&line)).await?;
            out.emit(&result)?;
            Ok(result.exit_code())
        }
        Command::Downgrade { action } => {
            let (a, v, wait) = match action {
                DowngradeCmd::Validate { version } => (downgrade::Action::Validate, Some(version), Duration::ZERO),
                DowngradeCmd::Enable { version, wait } => (downgrade::Action::Enable, Some(version), wait),
                DowngradeCmd::Cancel => (downgrade::Action::Cancel, None, Duration::ZERO),
            };
            let session = Session::open(&settings).await?;
            let r = downgrade::run(&session, a, v, wait, &mut |line| messages::message(&line)).await?;
            out.emit(&r)?;
            Ok(if r.storage_ready == Some(false) { ExitCode::Negative } else { ExitCode::Ok })
        }
    }
}
