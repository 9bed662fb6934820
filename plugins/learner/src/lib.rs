//! `kubectl etcd learner`: add a member safely as a learner, follow its catch-up, promote it the
//! moment etcd allows, remove and replace members without losing quorum, issue its certificates.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::base::progress::Bar;
use kubectl_etcd::base::units::parse_duration;
use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::cli::print::members::learner_progress;
use kubectl_etcd::cli::print::{self, Output};
use kubectl_etcd::ops::certs;
use kubectl_etcd::ops::members::{
    self, AddOptions, Follower, ManifestOut, PromoteOptions, RemoveOptions, ReplaceOptions,
};
use kubectl_etcd::reach::cluster::Session;
use kubectl_etcd::{ExitCode, Result};

/// Grow and shrink the etcd cluster safely: learners first, promotion the moment etcd allows,
/// removals that keep quorum.
///
/// Exit codes: 0 ok; 1 refused by a safety check or by etcd; 2 usage; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-learner", bin_name = "kubectl etcd learner", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # Add a member as a learner, write its manifest on its node, promote it once caught up
  kubectl etcd learner add cp-4 --peer-urls https://10.0.0.4:2380 \\
      --write-manifest /etc/kubernetes/manifests/etcd.yaml --promote
  # Catch-up progress of every learner
  kubectl etcd learner status --watch
  # Remove a member without breaking quorum; plan only
  kubectl etcd learner remove cp-2 --dry-run
  # Replace a member: add the new one, wait, promote, then remove the old
  kubectl etcd learner replace cp-2 --name cp-4 --peer-urls https://10.0.0.4:2380")]
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
    /// Add a member as a learner and print the settings it must start with.
    #[command(after_help = "Examples:
  # On an existing control-plane node: add cp-4, print the flags its etcd must start with
  kubectl etcd learner add cp-4 --peer-urls https://10.0.0.4:2380 --dry-run
  # Add it, write its static pod manifest (run on cp-4 with this node's manifest copied), promote
  kubectl etcd learner add cp-4 --peer-urls https://10.0.0.4:2380 \\
      --manifest /root/etcd.yaml.from-cp-1 \\
      --write-manifest /etc/kubernetes/manifests/etcd.yaml --promote")]
    Add {
        /// The new member's name (its node name on kubeadm).
        name: String,
        /// The new member's peer URLs, comma-separated (https://IP:2380).
        #[arg(long, value_delimiter = ',', required = true, value_name = "URLS")]
        peer_urls: Vec<String>,
        /// Add even when a voter does not answer or there is no leader.
        #[arg(long)]
        force: bool,
        /// Print what would be done and the settings; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also print the new member's complete static pod manifest, derived from this node's.
        #[arg(long)]
        print_manifest: bool,
        /// Write that manifest to PATH after the member is added (whole or not at all: a hidden
        /// `.part` beside it, fsynced, renamed; never over an existing file). On the new member's
        /// node this is `/etc/kubernetes/manifests/etcd.yaml`, and kubelet starts etcd.
        #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
        write_manifest: Option<std::path::PathBuf>,
        /// Then wait for the member to start and catch up, and promote it.
        #[arg(long)]
        promote: bool,
        /// With --promote: how long to wait.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
    },
    /// Show every learner's (or one's) catch-up progress and whether etcd would promote it now.
    #[command(after_help = "Examples:
  kubectl etcd learner status
  kubectl etcd learner status cp-4 --watch --interval 2s
  kubectl etcd learner status -o json")]
    Status {
        /// A learner's name or ID.
        member: Option<String>,
        /// Keep following.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Time between rounds with --watch.
        #[arg(long, default_value = "1s", value_parser = kubectl_etcd::base::units::parse_interval, value_name = "DURATION")]
        interval: Duration,
    },
    /// Promote a learner to a voter, waiting until etcd accepts it.
    #[command(after_help = "Examples:
  # Wait (up to 10m) until the learner is in sync, then promote it
  kubectl etcd learner promote cp-4
  # Once, now: exit 1 if etcd says the learner is not in sync yet
  kubectl etcd learner promote cp-4 --no-wait
  # The cluster's only learner, started or not (a learner that never started has no name yet)
  kubectl etcd learner promote")]
    Promote {
        /// The learner's name or ID; default: the cluster's only learner. A name no member has
        /// is an error, never taken to mean a learner that has not started.
        member: Option<String>,
        /// How long to wait for the learner to catch up.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Try once; fail if etcd does not accept the promote now.
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove a learner or a voter, refusing when quorum would be lost.
    #[command(after_help = "Examples:
  kubectl etcd learner remove cp-2 --dry-run
  kubectl etcd learner remove 8e9e05c52164694d
  # The leader: hand leadership to the most up-to-date voter first
  kubectl etcd learner remove cp-1 --move-leader")]
    Remove {
        /// The member's name or ID.
        member: String,
        /// Remove even when quorum would be at risk, or the member is the leader.
        #[arg(long)]
        force: bool,
        /// When removing the leader, move leadership to the most up-to-date other voter first.
        #[arg(long)]
        move_leader: bool,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace a member: add the new one as a learner, wait for it, promote it, remove the old one.
    #[command(after_help = "Examples:
  kubectl etcd learner replace cp-2 --name cp-4 --peer-urls https://10.0.0.4:2380 --dry-run
  kubectl etcd learner replace cp-2 --name cp-4 --peer-urls https://10.0.0.4:2380 --timeout 20m")]
    Replace {
        /// The member to replace (name or ID).
        old: String,
        /// The new member's name.
        #[arg(long)]
        name: String,
        /// The new member's peer URLs.
        #[arg(long, value_delimiter = ',', required = true, value_name = "URLS")]
        peer_urls: Vec<String>,
        /// How long to wait for the new member to start and catch up.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue a member's server and peer certificates from the etcd CA.
    #[command(after_help = "Examples:
  # On a node holding the etcd CA: certificates for cp-4, to copy to its /etc/kubernetes/pki/etcd
  kubectl etcd learner certs cp-4 --ip 10.0.0.4 --dns cp-4.example.internal --out /root/cp-4-pki")]
    Certs {
        /// The member's name (CN and a DNS SAN).
        name: String,
        /// The member's IP addresses (repeatable).
        #[arg(long = "ip", required = true, value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Extra DNS names (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Directory to write server.crt/.key and peer.crt/.key into.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        out: PathBuf,
        /// The etcd CA certificate [default: the manifest's --trusted-ca-file, else /etc/kubernetes/pki/etcd/ca.crt].
        #[arg(long, value_name = "PATH")]
        ca_cert: Option<PathBuf>,
        /// The etcd CA key [default: ca.key beside the CA certificate].
        #[arg(long, value_name = "PATH")]
        ca_key: Option<PathBuf>,
    },
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command: settings → session → operation → emit.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.common.out();
    let settings = cli.common.settings();
    if let Command::Certs { name, ips, dns, out: dir, ca_cert, ca_key } = &cli.command {
        // Offline: the CA's files, no cluster.
        let ca_cert = ca_cert.clone().map_or_else(|| certs::default_ca(&settings), Ok)?;
        let ca_key = ca_key.clone().unwrap_or_else(|| ca_cert.with_extension("key"));
        return out.emit(&certs::issue(name, ips, dns, &ca_cert, &ca_key, dir)?).map(|()| ExitCode::Ok);
    }
    let session = Session::open(&settings).await?;
    let mut bar = Bar::new();
    let mut progress = |p: &members::Progress| learner_progress(&mut bar, p);
    let mut added = None;
    let result = match cli.command {
        Command::Certs { .. } => Ok(()),
        Command::Add { name, peer_urls, force, dry_run, print_manifest, write_manifest, promote, timeout } => {
            let opts = AddOptions { name, peer_urls, force, dry_run };
            let manifest = ManifestOut { print: print_manifest, write: write_manifest };
            // In a table the learner's settings go out at once (they are needed to start it);
            // in JSON and YAML one document at the end, with the promotion in it.
            let mut at_once = |a: &members::Added| if out.is_structured() { Ok(()) } else { out.emit(a) };
            let promote = promote.then_some(timeout);
            members::add_learner(&session, &opts, &manifest, promote, &mut at_once, &mut progress)
                .await
                .map(|a| added = Some(a))
        }
        Command::Status { member, watch, interval } => status(&session, out, member, watch.then_some(interval)).await,
        Command::Promote { member, timeout, no_wait } => {
            let opts = PromoteOptions { timeout, no_wait, ..Default::default() };
            members::promote(&session, member.as_deref(), &opts, &mut progress).await.and_then(|p| out.emit(&p))
        }
        Command::Remove { member, force, move_leader, dry_run } => {
            out.emit(&members::remove(&session, &member, &RemoveOptions { force, move_leader, dry_run }).await?)
        }
        Command::Replace { old, name, peer_urls, timeout, dry_run } => {
            let opts = ReplaceOptions { old, name, peer_urls, timeout, dry_run };
            // The new learner's settings go out at once, as text: they are needed to start it.
            let mut added = |a: &members::Added| if out.is_structured() { Ok(()) } else { out.emit(a) };
            members::replace(&session, &opts, &mut added, &mut progress).await.and_then(|r| out.emit(&r))
        }
    };
    bar.finish();
    result?;
    match added {
        Some(a) if out.is_structured() => out.emit(&a)?,
        Some(members::Added { promoted: Some(p), .. }) => out.emit(&p)?,
        _ => {}
    }
    Ok(ExitCode::Ok)
}

/// `status`, once or every `watch` interval.
async fn status(session: &Session, out: Output, member: Option<String>, watch: Option<Duration>) -> Result<()> {
    let mut follower = Follower::new(member);
    let Some(interval) = watch else { return out.emit(&follower.round(session, true).await?) };
    print::watch(interval, async |round| {
        out.emit_round(&follower.round(session, false).await?, round)?;
        Ok(ExitCode::Ok)
    })
    .await
    .map(|_| ())
}
