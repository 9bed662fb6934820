//! `kubectl etcd restore`: snapshot save (verified, durable), snapshot status and verify,
//! native restore of data dirs, and the on-node disaster-recovery flows.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::base::messages;
use kubectl_etcd::base::progress::Bar;
use kubectl_etcd::base::units::parse_duration;
use kubectl_etcd::cli::args::{confirm, CommonArgs};
use kubectl_etcd::cli::print::restore::plan_text;
use kubectl_etcd::cli::print::Output;
use kubectl_etcd::ops::doctor;
use kubectl_etcd::ops::restore::node::{self, NodeOptions, Source};
use kubectl_etcd::ops::restore::{self, ApplyOptions, Engine};
use kubectl_etcd::ops::snapshot::Target;
use kubectl_etcd::ops::snapshot::{self, SaveOptions};
use kubectl_etcd::reach::cluster::Session;
use kubectl_etcd::store::compress::Compression;
use kubectl_etcd::store::objstore::{Bucket, StoreOptions};
use kubectl_etcd::store::snapdir::SnapDir;
use kubectl_etcd::store::snapfile;
use kubectl_etcd::store::trailer::Trailer;
use kubectl_etcd::{Error, ExitCode, Result};

mod schedule;

/// Back up and restore etcd: snapshots saved, inspected and verified without etcd binaries.
///
/// Exit codes: 0 ok; 1 the file is corrupt or the operation was refused; 2 usage or unreadable
/// input; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-restore", bin_name = "kubectl etcd restore", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  # A verified snapshot (also: kubectl etcd snapshot save FILE)
  kubectl etcd restore snapshot save /var/backups/etcd-$(date +%F).db
  kubectl etcd restore snapshot status /var/backups/etcd-2026-12-01.db
  # Why will this member not start? (offline, read-only)
  kubectl etcd restore doctor
  # Disaster recovery on a node: stop etcd, move the data dir aside, restore, start
  kubectl etcd restore node /var/backups/etcd-2026-12-01.db --dry-run")]
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
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot save /var/backups/etcd-$(date -u +%Y%m%dT%H%M%SZ).db
  kubectl etcd restore snapshot status /var/backups/etcd.db
  kubectl etcd restore snapshot verify /var/backups/etcd.db")]
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Restore a snapshot into a new data dir, natively (the contract of `etcdutl snapshot restore`).
    #[command(after_help = "Examples:
  # On each of three new machines, the same snapshot and cluster, its own name and data dir
  kubectl etcd restore apply /var/backups/etcd.db --data-dir /var/lib/etcd-new --name cp-1 \\
      --initial-cluster-token etcd-restored-1 --initial-cluster \\
      cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380,cp-3=https://10.0.0.3:2380")]
    Apply(ApplyArgs),
    /// On a control-plane node: stop etcd, move its data dir aside, restore FILE, start it again.
    #[command(after_help = "Examples:
  # Every control-plane node, the same file: stop etcd, move /var/lib/etcd aside, restore, start
  kubectl etcd restore node /var/backups/etcd.db --dry-run
  kubectl etcd restore node /var/backups/etcd.db --yes
  # The only node left: a one-member cluster, then re-add the others as learners
  kubectl etcd restore node /var/backups/etcd.db --single-member --yes")]
    Node(NodeArgs),
    /// Rebuild a one-member cluster from a surviving member's data dir (a learner kept in a
    /// second site, typically), on its node.
    #[command(after_help = "Examples:
  # On the node of the surviving member (a learner kept in a second site)
  kubectl etcd restore from-data-dir /var/lib/etcd --dry-run
  kubectl etcd restore from-data-dir /var/lib/etcd --yes")]
    FromDataDir(FromDataDirArgs),
    /// Why won't this member start? Read its data dir offline (WAL, .snap files, database),
    /// say what is wrong and the safe way back. Changes nothing.
    ///
    /// Exit codes: 0 healthy, only a torn WAL tail etcd repairs itself, or never started (no
    /// WAL); 1 damaged, or removed from its cluster; 2 usage; 3 not a data dir.
    #[command(after_help = "Examples:
  # The data dir of the node's manifest, read offline
  kubectl etcd restore doctor
  kubectl etcd restore doctor /var/lib/etcd --snapshots /var/backups -o json")]
    Doctor(DoctorArgs),
}

/// `restore doctor` arguments.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The data dir [default: the manifest's --data-dir].
    pub data_dir: Option<PathBuf>,
    /// A directory of snapshot files (`*.db`): the newest is named in the way back when this
    /// member is the only survivor and its database is damaged.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub snapshots: Option<PathBuf>,
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
#[derive(Debug, Clone, Copy, clap::Args)]
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
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub file: Option<PathBuf>,
    /// Restore the newest snapshot in DIR that verifies (trailer and structure). DIR may be a
    /// bucket (s3://BUCKET/PREFIX, gs://, az://): the snapshot is downloaded into a nameless
    /// file beside the data dir and verified first.
    #[arg(long, value_name = "DIR", value_parser = SnapDir::parse_arg)]
    pub latest: Option<SnapDir>,
    /// Object store access (--latest BUCKET).
    #[command(flatten)]
    pub store: StoreArgs,
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
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub data_dir: Option<PathBuf>,
    /// Without a manifest: the member's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Without a manifest: the member's peer URLs.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub initial_advertise_peer_urls: Option<Vec<String>>,
    /// Go on although the data dir belongs to another cluster than this node's, or this node's
    /// cluster still has a quorum, or a running etcd holds its database.
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
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub file: Option<PathBuf>,
    /// Restore the newest snapshot in DIR that verifies (trailer and structure). DIR may be a
    /// bucket (s3://BUCKET/PREFIX, gs://, az://): the snapshot is downloaded into a nameless
    /// file beside --data-dir and verified first.
    #[arg(long, value_name = "DIR", value_parser = SnapDir::parse_arg)]
    pub latest: Option<SnapDir>,
    /// Object store access (--latest BUCKET).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The data dir to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
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
    #[arg(long, default_value = kubectl_etcd::ops::restore::DEFAULT_TOKEN)]
    pub initial_cluster_token: String,
    /// Hash check and revision handling.
    #[command(flatten)]
    pub tuning: Tuning,
    /// Who writes the data dir: native (this binary) or etcdutl (found on PATH, for comparison).
    #[arg(long, default_value = "native", value_parser = ["native", "etcdutl"])]
    pub engine: String,
}

/// How to reach an object store given as a snapshot directory. Credentials come from the
/// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
/// AWS_ENDPOINT_URL; GOOGLE_*, AZURE_*), never from a flag.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// A PEM bundle of CAs to trust for the object store (a store behind a private CA).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_file: Option<PathBuf>,
}

impl StoreArgs {
    fn options(&self) -> StoreOptions {
        StoreOptions { ca_file: self.ca_file.clone() }
    }
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from one member into FILE: written to FILE.part (mode 0600), its sha256
    /// verified while writing, fsynced, then renamed.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot save /var/backups/etcd.db
  # From one member, replacing the file of an earlier run
  kubectl etcd restore snapshot save /var/backups/etcd.db --member cp-2 --overwrite
  # Into a snapshot directory, keeping the newest 7 verified snapshots
  kubectl etcd restore snapshot save --dir /var/lib/etcd-backups --keep 7
  # Compressed with zstd
  kubectl etcd restore snapshot save --dir /var/lib/etcd-backups --keep 7 --compress zstd
  # Also to a bucket, keeping 30 there (credentials from AWS_* variables)
  kubectl etcd restore snapshot save --dir /var/lib/etcd-backups --keep 7 --dir s3://backups/etcd/cp-1 --keep 30")]
    Save {
        /// The snapshot file to write.
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        file: Option<PathBuf>,
        /// The member to stream from (name or 16-hex-digit ID) [default: the healthiest voter in
        /// quorum that is not the leader]. It must be part of the working quorum (a linearizable
        /// read through it succeeds, it follows the quorum's leader), unless --force.
        #[arg(long, value_name = "NAME|ID")]
        member: Option<String>,
        /// With --member: stream from it even when it is not in the working quorum (cut off, no
        /// leader); the snapshot may then be behind the cluster, and the output says so.
        #[arg(long, requires = "member")]
        force: bool,
        /// Replace FILE if it exists.
        #[arg(long, conflicts_with = "dir")]
        overwrite: bool,
        /// Save into this snapshot directory as PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db (UTC): a
        /// local directory, file://PATH, or a bucket (s3://BUCKET/PREFIX, gs://, az://; a
        /// multipart upload completed only once the whole verified snapshot is sent). May be
        /// given more than once: the snapshot is written to each.
        #[arg(long, value_name = "DIR", value_parser = SnapDir::parse_arg)]
        dir: Vec<SnapDir>,
        /// After the save, keep the newest N verified snapshots of PREFIX in DIR and delete the
        /// older ones (a failed save deletes nothing; unverified files are never deleted). Once
        /// for every --dir, or once per --dir in the same order.
        #[arg(long, value_name = "N", requires = "dir")]
        keep: Vec<usize>,
        /// Object store access.
        #[command(flatten)]
        store: StoreArgs,
        /// The file name prefix in DIR.
        #[arg(long, value_name = "PREFIX", requires = "dir", default_value = kubectl_etcd::store::snapdir::DEFAULT_PREFIX)]
        name_prefix: String,
        /// Store the snapshot compressed: zstd (one frame with its checksum; in DIR named
        /// ….db.zst). It is verified uncompressed first, then compressed and read back. status,
        /// verify, ls, apply and restore node read it as they read an uncompressed one.
        #[arg(long, value_name = "ALGORITHM", value_enum, default_value = "none")]
        compress: Compression,
    },
    /// The snapshots of a directory, newest first: name, time, revision, size and whether the
    /// sha256 trailer verifies.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot ls /var/lib/etcd-backups
  kubectl etcd restore snapshot ls /var/lib/etcd-backups -o json")]
    Ls {
        /// The snapshot directory (or s3://BUCKET/PREFIX, gs://, az://: listed from the listing
        /// and each object's metadata, nothing downloaded).
        #[arg(value_parser = SnapDir::parse_arg)]
        dir: SnapDir,
        /// Only snapshots of this prefix.
        #[arg(long, value_name = "PREFIX")]
        name_prefix: Option<String>,
        /// Bucket: download each snapshot and check its sha256 trailer.
        #[arg(long)]
        verify: bool,
        /// Object store access.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Keep the newest N verified snapshots of PREFIX in a directory, delete the older ones.
    /// Never a file of another prefix, one whose trailer does not verify, or one not named
    /// PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot prune /var/lib/etcd-backups --keep 7 --dry-run
  kubectl etcd restore snapshot prune /var/lib/etcd-backups --keep 7")]
    Prune {
        /// The snapshot directory (or a bucket: only objects this tool wrote and verified count).
        #[arg(value_parser = SnapDir::parse_arg)]
        dir: SnapDir,
        /// Object store access.
        #[command(flatten)]
        store: StoreArgs,
        /// How many verified snapshots to keep.
        #[arg(long, value_name = "N", required = true)]
        keep: usize,
        /// The file name prefix.
        #[arg(long, value_name = "PREFIX", default_value = kubectl_etcd::store::snapdir::DEFAULT_PREFIX)]
        name_prefix: String,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Scheduled backups on the cluster itself: a CronJob on the control-plane nodes whose pod
    /// runs `kubectl-etcd-restore snapshot save --dir DIR --keep N` with the node's manifest and
    /// etcd PKI mounted read-only. Prints the manifests (-o yaml, the default; -o json a List),
    /// or creates/updates them with --apply.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot schedule --schedule '0 */6 * * *' --keep 7 --apply
  # One CronJob per control-plane node, each keeping its own snapshots
  kubectl etcd restore snapshot schedule --schedule '@daily' --keep 5 --every-node > etcd-backup.yaml")]
    Schedule(ScheduleArgs),
    /// Hash, revision, total keys and size of a snapshot or a data dir's member/snap/db (the
    /// figures of `etcdutl snapshot status`), and whether its sha256 trailer matches.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot status /var/backups/etcd.db
  kubectl etcd restore snapshot status /var/lib/etcd/member/snap/db --skip-hash-check -o json")]
    Status {
        /// A snapshot file, or a copy of member/snap/db.
        file: PathBuf,
        /// Do not read the whole file to check the sha256 trailer (etcdutl's status does not).
        #[arg(long)]
        skip_hash_check: bool,
    },
    /// Check a snapshot's integrity: sha256 trailer, and a full walk of the database structure.
    #[command(after_help = "Examples:
  kubectl etcd restore snapshot verify /var/backups/etcd.db")]
    Verify {
        /// A snapshot file, or a copy of member/snap/db.
        file: PathBuf,
    },
}

/// `snapshot schedule` arguments.
#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// When to run, in cron syntax (minute hour day-of-month month day-of-week) or @daily,
    /// @hourly, …; the CronJob controller's time zone.
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    /// Verified snapshots kept on each node.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub keep: usize,
    /// Store each snapshot compressed (DIR/PREFIX-…-REVISION.db.zst).
    #[arg(long, value_name = "ALGORITHM", value_enum, default_value = "none")]
    pub compress: Compression,
    /// The backup directory on the node (created if missing); a bucket (s3://BUCKET/PREFIX,
    /// gs://, az://) adds an upload of each snapshot there, the node keeping its own copy in
    /// the local directory (the default one unless a local --dir is given too). May be given
    /// more than once.
    #[arg(long, value_name = "DIR", value_parser = SnapDir::parse_arg, default_value = kubectl_etcd::ops::schedule::DEFAULT_DIR)]
    pub dir: Vec<SnapDir>,
    /// A Secret in the namespace whose keys become the job's environment (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, …): the credentials for a bucket
    /// --dir never appear in the CronJob.
    #[arg(long, value_name = "NAME")]
    pub credentials_secret: Option<String>,
    /// The image with the kubectl-etcd binaries (the repository's Dockerfile).
    #[arg(long, value_name = "IMAGE", default_value = kubectl_etcd::ops::schedule::DEFAULT_IMAGE)]
    pub image: String,
    /// The CronJob's and ServiceAccount's name.
    #[arg(long, value_name = "NAME", default_value = kubectl_etcd::ops::schedule::DEFAULT_NAME)]
    pub name: String,
    /// One CronJob per control-plane node (found through the API), each pinned to its node and
    /// naming its snapshots after it; without it, one CronJob runs on any control-plane node.
    #[arg(long)]
    pub every_node: bool,
    /// Create or update the objects through the API instead of printing them.
    #[arg(long)]
    pub apply: bool,
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command: settings → (session) → operation → emit.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    kubectl_etcd::store::objstore::set_verbose(cli.common.verbose);
    let out = cli.common.out();
    let manifest = cli.common.manifest.clone().unwrap_or_else(|| cli.common.settings().default_manifest);
    match cli.command {
        Command::Node(a) => {
            let flow = a.flow;
            on_node(&cli.common, out, a.options(manifest).await?, false, &flow).await
        }
        Command::FromDataDir(a) if a.data_dir.is_none() && manifest.exists() => {
            let opts = NodeOptions::from_data_dir(manifest, a.dir, a.flow.timeout);
            on_node(&cli.common, out, opts, a.force, &a.flow).await
        }
        Command::FromDataDir(a) => {
            let (Some(data_dir), Some(name), Some(peers)) = (a.data_dir, a.name, a.initial_advertise_peer_urls) else {
                return Err(Error::Usage(format!(
                    "no manifest at {}: pass --manifest, or --data-dir, --name and --initial-advertise-peer-urls",
                    manifest.display()
                )));
            };
            if let Some(warning) = kubectl_etcd::store::dblock::check_unlocked(&a.dir, a.force)? {
                messages::warning(&warning.to_string());
            }
            let opts = restore::from_data_dir_options(&a.dir, data_dir, name, peers);
            if a.flow.dry_run {
                return out.emit(&restore::plan(&opts)?).map(|()| ExitCode::Ok);
            }
            confirm(a.flow.yes)?;
            out.emit(&restore::apply_and_plan(opts, true).await?).map(|()| ExitCode::Ok)
        }
        Command::Apply(a) => {
            // A signal stops the restore between batches; its temporary dir is removed.
            kubectl_etcd::base::signals::catch_signals();
            out.emit(&restore::apply_and_plan(a.options().await?, false).await?).map(|()| ExitCode::Ok)
        }
        Command::Snapshot(cmd) => snapshot(&cli.common, out, cmd).await,
        Command::Doctor(a) => {
            let d = doctor::examine(&cli.common.settings(), a.data_dir, a.snapshots.as_deref()).await?;
            out.emit(&d)?;
            Ok(d.exit_code())
        }
    }
}

/// The snapshot FILE, or the newest verified one of `--latest DIR` (said on stderr, with the
/// newer ones skipped and why); from a bucket, downloaded into a nameless file in `beside`.
async fn snapshot_file(
    file: Option<PathBuf>,
    latest: Option<SnapDir>,
    beside: &std::path::Path,
    store: &StoreArgs,
) -> Result<PathBuf> {
    match (file, latest) {
        (Some(f), _) => Ok(f),
        (None, Some(SnapDir::Local(dir))) => {
            let (path, skipped) = kubectl_etcd::store::snapdir::latest(&dir)?;
            for s in skipped {
                messages::message(&format!("skipped {s}"));
            }
            messages::message(&format!("using {}, the newest verified snapshot in {}", path.display(), dir.display()));
            Ok(path)
        }
        (None, Some(SnapDir::Bucket(url))) => {
            let bucket = Bucket::open(&url, &store.options())?;
            let (d, skipped) = kubectl_etcd::store::objstore::latest(&bucket, beside).await?;
            for s in skipped {
                messages::message(&format!("skipped {s}"));
            }
            messages::message(&format!(
                "using {}, the newest verified snapshot in {url} (downloaded and verified)",
                d.url
            ));
            Ok(d.keep())
        }
        (None, None) => Err(Error::Usage("name a snapshot FILE or pass --latest DIR".into())),
    }
}

/// Where a download for `--latest BUCKET` goes: beside the data dir (the same file system, so
/// the space is where the restore needs it), else the temporary directory.
fn beside(data_dir: Option<&std::path::Path>) -> PathBuf {
    data_dir
        .and_then(|d| d.parent())
        .filter(|p| !p.as_os_str().is_empty() && p.is_dir())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(std::env::temp_dir)
}

/// The on-node flows: plan, dry run or confirmation, then the flow and its result.
async fn on_node(
    common: &CommonArgs,
    out: Output,
    opts: NodeOptions,
    force: bool,
    flow: &FlowArgs,
) -> Result<ExitCode> {
    // A signal from here on is seen by the flow: before anything changes it just stops.
    kubectl_etcd::base::signals::catch_signals();
    let prepared = node::prepare(&common.settings(), opts, force).await?;
    if flow.dry_run {
        return out.emit(&prepared.plan).map(|()| ExitCode::Ok);
    }
    messages::prompt(&plan_text(&prepared.plan));
    confirm(flow.yes)?;
    out.emit(&node::run(prepared).await?).map(|()| ExitCode::Ok)
}

/// `snapshot save|status|verify`.
async fn snapshot(common: &CommonArgs, out: Output, cmd: SnapshotCommand) -> Result<ExitCode> {
    match cmd {
        SnapshotCommand::Status { file, skip_hash_check } => {
            let s = blocking(move || snapfile::status_with(&file, !skip_hash_check)).await?;
            out.emit(&s)?;
            Ok(if s.sha256_trailer == Trailer::Mismatch { ExitCode::Negative } else { ExitCode::Ok })
        }
        SnapshotCommand::Verify { file } => {
            out.emit(&blocking(move || snapfile::verify(&file)).await?).map(|()| ExitCode::Ok)
        }
        SnapshotCommand::Ls { dir: SnapDir::Local(dir), name_prefix, verify: _, store: _ } => {
            let entries = blocking(move || kubectl_etcd::store::snapdir::list(&dir, name_prefix.as_deref())).await?;
            out.emit(&kubectl_etcd::cli::print::snapshot::Snapshots(entries)).map(|()| ExitCode::Ok)
        }
        SnapshotCommand::Ls { dir: SnapDir::Bucket(url), name_prefix, verify, store } => {
            let bucket = Bucket::open(&url, &store.options())?;
            let mut entries = bucket.list(name_prefix.as_deref()).await?;
            if verify {
                kubectl_etcd::store::objstore::verify_entries(&bucket, &mut entries, &std::env::temp_dir()).await?;
            }
            out.emit(&kubectl_etcd::cli::print::snapshot::Snapshots(entries)).map(|()| ExitCode::Ok)
        }
        SnapshotCommand::Prune { dir: SnapDir::Local(dir), keep, name_prefix, dry_run, store: _ } => {
            let p = blocking(move || kubectl_etcd::store::snapdir::prune(&dir, &name_prefix, keep, dry_run)).await?;
            out.emit(&p).map(|()| ExitCode::Ok)
        }
        SnapshotCommand::Prune { dir: SnapDir::Bucket(url), keep, name_prefix, dry_run, store } => {
            let bucket = Bucket::open(&url, &store.options())?;
            let p = kubectl_etcd::store::objstore::prune(&bucket, &name_prefix, keep, dry_run).await?;
            out.emit(&p).map(|()| ExitCode::Ok)
        }
        SnapshotCommand::Schedule(a) => schedule::run(common, out, a).await,
        SnapshotCommand::Save { file, member, force, overwrite, dir, keep, name_prefix, compress, store } => {
            let target = match (file, dir.is_empty()) {
                (Some(f), _) => Target::File(f),
                (None, false) => {
                    let keeps: Vec<Option<usize>> = match keep.len() {
                        0 => vec![None; dir.len()],
                        1 => vec![Some(keep[0]); dir.len()],
                        n if n == dir.len() => keep.into_iter().map(Some).collect(),
                        n => {
                            return Err(Error::Usage(format!(
                                "--keep given {n} times for {} --dir: give it once (for every --dir) or once per --dir, in the same order",
                                dir.len()
                            )))
                        }
                    };
                    Target::Dirs {
                        dirs: dir.into_iter().zip(keeps).collect(),
                        prefix: name_prefix,
                        store: store.options(),
                    }
                }
                (None, true) => return Err(Error::Usage("name a snapshot FILE or pass --dir DIR".into())),
            };
            let settings = common.settings();
            let session = Session::open(&settings).await?;
            let opts = SaveOptions {
                member,
                overwrite,
                stall_timeout: Some(settings.command_timeout.max(Duration::from_secs(30))),
                deadline: settings.command_timeout_explicit.then_some(settings.command_timeout),
                compression: compress,
                force,
            };
            let mut bar = Bar::new();
            let saved = snapshot::save_interruptible(&session, &target, &opts, &mut |d, t| bar.bytes(d, t)).await;
            bar.finish();
            out.emit(&saved?).map(|()| ExitCode::Ok)
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::from_join)?
}

impl NodeArgs {
    async fn options(self, manifest: PathBuf) -> Result<NodeOptions> {
        let data_dir = kubectl_etcd::reach::discovery::manifest::Manifest::load(&manifest)
            .ok()
            .and_then(|m| m.flags.get("data-dir").map(PathBuf::from));
        let snapshot = snapshot_file(self.file, self.latest, &beside(data_dir.as_deref()), &self.store).await?;
        Ok(NodeOptions {
            manifest,
            source: Source::Snapshot(snapshot),
            single_member: self.single_member,
            skip_hash_check: self.tuning.skip_hash_check,
            bump_revision: self.tuning.bump_revision,
            mark_compacted: self.tuning.mark_compacted,
            timeout: self.flow.timeout,
            token: self.initial_cluster_token,
            live_cluster_id: None,
            initial_cluster: self.initial_cluster,
        })
    }
}

impl ApplyArgs {
    async fn options(self) -> Result<ApplyOptions> {
        if self.engine == "etcdutl" && matches!(self.latest, Some(SnapDir::Bucket(_))) {
            // The download is a nameless file of this process: etcdutl could not open it.
            return Err(Error::Usage(
                "--engine etcdutl cannot restore --latest from a bucket: use the native engine, or download the snapshot first".into(),
            ));
        }
        Ok(ApplyOptions {
            snapshot: snapshot_file(self.file, self.latest, &beside(Some(&self.data_dir)), &self.store).await?,
            data_dir: self.data_dir,
            name: self.name,
            initial_cluster: self.initial_cluster,
            initial_advertise_peer_urls: self.initial_advertise_peer_urls,
            token: self.initial_cluster_token,
            skip_hash_check: self.tuning.skip_hash_check,
            bump_revision: self.tuning.bump_revision,
            mark_compacted: self.tuning.mark_compacted,
            engine: if self.engine == "etcdutl" { Engine::Etcdutl } else { Engine::Native },
        })
    }
}
