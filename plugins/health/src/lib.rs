//! `kubectl etcd health`: every member's health, latency, leader, learner progress, raft
//! indexes, DB size, alarms, hash consistency and certificate expiry in one table.

use std::time::Duration;

use clap::{CommandFactory, Parser};
use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::cli::print;
use kubectl_etcd::ops::health::{self, Options};
use kubectl_etcd::reach::cluster::Session;
use kubectl_etcd::{ExitCode, Result};

/// Show the health of every etcd member and of the cluster as a whole.
///
/// Exit codes: 0 all checks ok or warn; 1 a check failed; 2 usage; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-health", bin_name = "kubectl etcd health", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # On a control-plane node: no flags needed
  kubectl etcd health
  # From a workstation: a kubeconfig, and a copy of a node's /etc/kubernetes/pki/etcd
  kubectl etcd health --pki-dir ./pki-etcd -o wide
  # Only what is not ok, as JSON
  kubectl etcd health -o json | jq '.checks[] | select(.status != \"ok\")'
  # Redraw every 2 seconds
  kubectl etcd health --watch")]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Keep running: redraw the table in place (or print one document per round with -o json|yaml) until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Time between rounds with --watch.
    #[arg(long, default_value = "2s", value_parser = kubectl_etcd::base::units::parse_interval, value_name = "DURATION")]
    pub interval: Duration,

    /// Skip the HashKV consistency check (for very large databases).
    #[arg(long)]
    pub skip_hashkv: bool,

    /// Print a minimal Role and RoleBinding that let SUBJECT (User:NAME, Group:NAME or
    /// ServiceAccount:NAMESPACE/NAME) run kubectl etcd through port-forward in -n's namespace, and exit.
    #[arg(long, value_name = "SUBJECT")]
    pub print_rbac: Option<String>,

    /// Backend quota to compare DB sizes against (bytes, or with a unit: 8GiB, 512M) [default:
    /// the manifest's --quota-backend-bytes, else etcd's 2 GiB].
    #[arg(long, value_name = "BYTES", value_parser = kubectl_etcd::base::units::parse_size)]
    pub quota_backend_bytes: Option<u64>,
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command: settings → session → health run → emit (each round with `--watch`).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(subject) = &cli.print_rbac {
        // Kubernetes manifests for kubectl apply, as `snapshot schedule` prints them: YAML
        // documents, or one v1 List with -o json.
        let ns = &cli.common.namespace;
        let text = match cli.common.format() {
            print::OutputFormat::Table | print::OutputFormat::Yaml => {
                kubectl_etcd::reach::tunnel::rbac_manifests(ns, subject)?
            }
            print::OutputFormat::Json => {
                let items = kubectl_etcd::reach::tunnel::rbac_objects(ns, subject)?;
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
                print::document(print::OutputFormat::Json, &list)?
            }
            _ => {
                return Err(kubectl_etcd::Error::Usage(
                    "--print-rbac prints manifests: -o yaml (the default) or -o json".into(),
                ))
            }
        };
        print::write_stdout(&text)?;
        return Ok(ExitCode::Ok);
    }
    let mut settings = cli.common.settings();
    // Through port-forward, no certificate still gives the metrics report.
    settings.metrics_without_credentials = true;
    let session = Session::open(&settings).await?;
    let opts = Options { skip_hashkv: cli.skip_hashkv, quota_backend_bytes: cli.quota_backend_bytes };
    let out = cli.common.out();
    if !cli.watch {
        let report = health::run(&session, &opts).await?;
        out.emit(&report)?;
        return Ok(report.exit_code());
    }
    print::watch(cli.interval, async |round| {
        let report = health::run(&session, &opts).await?;
        out.emit_round(&report, round)?;
        Ok(report.exit_code())
    })
    .await
}
