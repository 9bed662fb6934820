//! `kubectl etcd doctor`: why a member is down. `doctor logs` reads etcd's own log (the node's
//! pod logs, a file, stdin) and names each known failure with its cause and the next step;
//! `doctor data-dir` reads a data dir offline (also `kubectl etcd restore doctor`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::base::units::parse_window;
use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::ops::doctor;
use kubectl_etcd::ops::doctor::logs::{self, Input, Options};
use kubectl_etcd::{ExitCode, Result};

/// Why is this etcd member down? Read its log and its data dir, name the cause and the next step.
///
/// With no subcommand, on a control-plane node: the checkup of the node's member (the
/// manifest's --name and --data-dir): its pod logs and its data dir (asking the live cluster
/// when it answers), in one verdict with the next steps.
///
/// Exit codes: 0 nothing known found; 1 a known failure found; 2 usage; 3 no log (or no data
/// dir) found.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-doctor", bin_name = "kubectl etcd doctor", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # On a control-plane node: this node's member, from its log and its data dir
  kubectl etcd doctor
  # What etcd's pod logs say, every restart
  kubectl etcd doctor logs
  # One member's previous container (the one that crashed)
  kubectl etcd doctor logs cp-2 --previous
  # Any log: a file, or stdin (kubectl logs -n kube-system etcd-cp-2 --previous | …, journalctl -u etcd | …)
  kubectl etcd doctor logs --log-file /var/log/etcd.log
  kubectl etcd doctor logs -
  # The data dir, offline
  kubectl etcd doctor data-dir /var/lib/etcd")]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// kubelet's pod log dir, for the checkup with no subcommand.
    #[arg(long, value_name = "DIR", default_value = logs::POD_LOG_DIR, value_hint = clap::ValueHint::DirPath)]
    pub pod_log_dir: PathBuf,

    /// What to read [default: the checkup of this node's member: its log and its data dir].
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `kubectl etcd doctor` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read etcd's log and name every known failure in it: the cause, the next step, how often
    /// (first and last time), and how each container ended.
    ///
    /// Reads the etcd pod logs kubelet keeps on the node (--pod-log-dir: every restart, rotated
    /// and gzipped parts), or a file, or stdin (--log-file -). From a workstation (no etcd pod
    /// log under /var/log/pods), each etcd pod's log through the Kubernetes API (pods/log,
    /// container etcd, the previous container and the current one, as kubectl logs reads them;
    /// RBAC: get on pods/log). Formats: etcd 3.5's JSON, etcd 3.4's text lines, raw or in
    /// kubelet's CRI format, Docker's json-file log (RKE1), journald's and syslog's lines;
    /// detected line by line.
    ///
    /// A failure a later line says is over (NOSPACE, then etcd's "alarm disarmed"; a peer
    /// unreachable, then "peer … became active") is shown as CLEARED and does not set the exit
    /// code.
    ///
    /// Exit codes: 0 nothing known found (warnings only, or cleared); 1 a critical or error finding, or a
    /// container that ended on a fatal line; 2 usage; 3 no log found (the message says where it
    /// looked).
    #[command(after_help = "Examples:
  kubectl etcd doctor logs
  kubectl etcd doctor logs cp-2 --previous -o wide
  kubectl etcd doctor logs --log-file /var/log/etcd.log --since 2h
  # From a workstation: through the Kubernetes API (pods/log)
  kubectl etcd doctor logs cp-2 --previous --kubeconfig ~/.kube/config
  # stdin: kubectl logs -n kube-system etcd-cp-2 | …
  kubectl etcd doctor logs -")]
    Logs(LogsArgs),

    /// Read a data dir offline: the WAL, snapshots and database, what etcd will do on it, and
    /// the safe way back (the same as `kubectl etcd restore doctor`).
    ///
    /// Exit codes: 0 healthy, only a torn WAL tail etcd repairs itself, or never started; 1
    /// damaged, or removed from its cluster; 2 usage; 3 not a data dir.
    #[command(
        name = "data-dir",
        after_help = "Examples:
  kubectl etcd doctor data-dir
  kubectl etcd doctor data-dir /var/lib/etcd --snapshots /var/backups -o json"
    )]
    DataDir(DataDirArgs),
}

/// `doctor logs` arguments.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The member (node name) whose pod logs to read [default: every etcd pod's under
    /// --pod-log-dir]; `-` reads stdin (as --log-file -).
    pub member: Option<String>,

    /// Read this file instead of the pod logs (`-`: stdin); `.gz` files are gunzipped.
    #[arg(long, value_name = "FILE|-", value_hint = clap::ValueHint::FilePath, conflicts_with = "pod_log_dir")]
    pub log_file: Option<PathBuf>,

    /// kubelet's pod log dir (or one etcd pod's dir in it) [default: /var/log/pods when it
    /// holds etcd pod logs, else the Kubernetes API's pods/log].
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub pod_log_dir: Option<PathBuf>,

    /// Only lines of the last DURATION (as 30m, 2h, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub since: Option<Duration>,

    /// Only the previous container (the one before the current restart), as `kubectl logs --previous`.
    #[arg(long, conflicts_with = "log_file")]
    pub previous: bool,
}

/// `doctor data-dir` arguments.
#[derive(Debug, clap::Args)]
pub struct DataDirArgs {
    /// The data dir [default: the manifest's --data-dir].
    pub data_dir: Option<PathBuf>,
    /// A directory of snapshot files (`*.db`): the newest is named in the way back when this
    /// member is the only survivor and its database is damaged.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub snapshots: Option<PathBuf>,
}

/// The clap command (for completion and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.common.out();
    match cli.command {
        None => {
            let c = kubectl_etcd::ops::doctor::checkup::examine(&cli.common.settings(), cli.pod_log_dir, None).await?;
            out.emit(&c)?;
            Ok(c.exit_code())
        }
        Some(Command::Logs(a)) => {
            if let (Some(m), Some(f)) = (&a.member, &a.log_file) {
                return Err(kubectl_etcd::Error::Usage(format!(
                    "{m} and --log-file {} both name what to read: give one (a member's pod logs, or a file)",
                    f.display()
                )));
            }
            let dash = a.member.as_deref() == Some("-");
            let member = a.member.clone().filter(|m| m != "-");
            let opts =
                Options { member, namespace: cli.common.namespace.clone(), since: a.since, previous: a.previous };
            let input = match a.log_file {
                Some(p) if p.as_os_str() == "-" => Some(Input::Stdin),
                Some(p) => Some(Input::File(p)),
                None if dash => Some(Input::Stdin),
                None => a.pod_log_dir.map(Input::PodLogDir),
            };
            let report = match input {
                Some(input) => tokio::task::spawn_blocking(move || logs::examine(&input, &opts))
                    .await
                    .map_err(kubectl_etcd::Error::from_join)??,
                // The node's pod logs when it keeps any, else (a workstation) through the API.
                None => {
                    let settings = cli.common.settings();
                    logs::api::examine_node_or_api(&settings, PathBuf::from(logs::POD_LOG_DIR), opts).await?
                }
            };
            out.emit(&report)?;
            Ok(report.exit_code())
        }
        Some(Command::DataDir(a)) => {
            let d = doctor::examine(&cli.common.settings(), a.data_dir, a.snapshots.as_deref()).await?;
            out.emit(&d)?;
            Ok(d.exit_code())
        }
    }
}
