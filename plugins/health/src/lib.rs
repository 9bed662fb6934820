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
  kubectl etcd health --watch
  # Every cluster of the kubeconfig, side by side (each with its own copy of pki/etcd)
  kubectl etcd health --all-contexts --pki-dir './pki/{context}'
  # Some of them, by name or glob
  kubectl etcd health --context 'prod-*,staging-eu'")]
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

    /// Every context of the kubeconfig (--kubeconfig, KUBECONFIG's list, ~/.kube/config), one row
    /// per cluster; --context a,b or a glob ('prod-*') selects some of them. `{context}` in
    /// --pki-dir/--cacert/--cert/--key stands for each context's name.
    #[arg(long, help_heading = "Fleet")]
    pub all_contexts: bool,

    /// With several contexts: at most this many clusters at once.
    #[arg(long, default_value_t = health::fleet::DEFAULT_MAX_CONCURRENT as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..1025), help_heading = "Fleet")]
    pub max_concurrent: u64,

    /// Skip the HashKV consistency check (for very large databases).
    #[arg(long)]
    pub skip_hashkv: bool,

    /// Print a minimal Role and RoleBinding that let SUBJECT (User:NAME, Group:NAME or
    /// ServiceAccount:NAMESPACE/NAME) run kubectl etcd through port-forward in -n's namespace, and exit.
    #[arg(long, value_name = "SUBJECT")]
    pub print_rbac: Option<String>,

    /// Backend quota to compare DB sizes against (bytes, or 8Gi, 512Mi; K, M, G are powers of 1000) [default:
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
    let opts = Options { skip_hashkv: cli.skip_hashkv, quota_backend_bytes: cli.quota_backend_bytes };
    let selection = cli.common.context.as_deref().filter(|c| health::fleet::is_selection(c));
    if cli.all_contexts || selection.is_some() {
        return fleet(&cli, settings, selection, opts).await;
    }
    let session = Session::open(&settings).await?;
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

/// Several contexts: one health run per cluster, concurrently, one row each.
async fn fleet(
    cli: &Cli,
    settings: kubectl_etcd::reach::discovery::settings::Settings,
    selection: Option<&str>,
    health: Options,
) -> Result<ExitCode> {
    if cli.all_contexts && cli.common.context.is_some() {
        return Err(kubectl_etcd::Error::Usage(
            "--all-contexts and --context both choose contexts: pass one of them".into(),
        ));
    }
    if !settings.endpoints.is_empty() || settings.manifest.is_some() {
        return Err(kubectl_etcd::Error::Usage(
            "several contexts are reached through their Kubernetes APIs: drop --endpoints/ETCDCTL_ENDPOINTS and --manifest".into(),
        ));
    }
    let available = kubectl_etcd::reach::discovery::kubeapi::contexts(&settings)?;
    let contexts = match selection {
        Some(s) => health::fleet::select(&available, s)?,
        None if available.is_empty() => {
            return Err(kubectl_etcd::Error::Usage("--all-contexts: the kubeconfig has no contexts".into()))
        }
        None => available,
    };
    let opts = health::fleet::FleetOptions { max_concurrent: cli.max_concurrent as usize, health };
    let out = cli.common.out();
    if !cli.watch {
        let fleet = health::fleet::run(&settings, &contexts, &opts).await;
        out.emit(&fleet)?;
        return Ok(fleet.exit_code());
    }
    print::watch(cli.interval, async |round| {
        let fleet = health::fleet::run(&settings, &contexts, &opts).await;
        out.emit_round(&fleet, round)?;
        Ok(fleet.exit_code())
    })
    .await
}
