//! `snapshot schedule` and `defrag schedule`: jobs that run on the cluster itself, as a CronJob
//! on the control-plane nodes whose container runs this suite's own
//! `kubectl-etcd-restore snapshot save --dir DIR --keep N` ([`Task::Snapshot`]) or
//! `kubectl-etcd-defrag --min-free … [--compact]` ([`Task::Defrag`]) with the node's static pod
//! manifest and etcd PKI mounted at the paths they have on the node, so that discovery works in
//! the pod exactly as on the node.
//!
//! The objects are k8s-openapi types: a ServiceAccount with no API rights (its token is not
//! even mounted), and one CronJob per cluster, or one per control-plane node with
//! `--every-node` (each pinned to its node by `kubernetes.io/hostname`, its snapshots named
//! after the node).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, HostPathVolumeSource, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext, ServiceAccount, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::error::{Error, Result};

/// `--dir`'s default on the node.
pub const DEFAULT_DIR: &str = "/var/lib/etcd-backups";
/// `--name`'s default.
pub const DEFAULT_NAME: &str = "etcd-backup";
/// `defrag schedule --name`'s default.
pub const DEFAULT_DEFRAG_NAME: &str = "etcd-defrag";
/// etcd's largest recommended quota: a run's deadline when no member tells its size.
pub const FALLBACK_DB_SIZE: u64 = 8 << 30;
/// The image the release script tags (`scripts/release.sh`, `Dockerfile`).
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/kubectl-etcd/kubectl-etcd:", env!("CARGO_PKG_VERSION"));

/// The control-plane node labels and the taints kubeadm, RKE2 and k3s put on those nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
const TAINTS: &[(&str, &str)] = &[
    ("node-role.kubernetes.io/control-plane", "NoSchedule"),
    ("node-role.kubernetes.io/master", "NoSchedule"),
    ("node-role.kubernetes.io/etcd", "NoExecute"),
    ("CriticalAddonsOnly", "NoExecute"),
];

/// What the scheduled job runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Task {
    /// `snapshot save --dir --keep` (the options' `keep`, `compression` and `dir`).
    #[default]
    Snapshot,
    /// The rolling defrag with its rules (`keep`, `compression` and `dir` are not used).
    Defrag(DefragTask),
}

/// The rules a scheduled defrag runs with (`kubectl etcd defrag`'s flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefragTask {
    /// `--min-free` as given (`10%`, `100MiB`); `None`: defrag's default rule.
    pub min_free: Option<String>,
    /// `--all`: every member whatever its free space.
    pub all: bool,
    /// `--compact` first.
    pub compact: bool,
    /// `--keep-revisions` with `--compact`.
    pub keep_revisions: u64,
}

/// What `snapshot schedule` / `defrag schedule` is asked for.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// What the job runs.
    pub task: Task,
    /// The cron schedule, validated.
    pub schedule: String,
    /// Verified snapshots kept on each node.
    pub keep: usize,
    /// How each snapshot is stored (`--compress`).
    pub compression: crate::store::compress::Compression,
    /// The backup directory on the node.
    pub dir: PathBuf,
    /// The container image.
    pub image: String,
    /// The namespace.
    pub namespace: String,
    /// The CronJob's (and ServiceAccount's) name.
    pub name: String,
    /// The node's static pod manifest (mounted read-only at the same path).
    pub manifest: PathBuf,
    /// Folders of the etcd certificates and keys the manifest names (mounted read-only).
    pub pki_dirs: Vec<PathBuf>,
    /// One CronJob per control-plane node: these nodes; empty: one for the cluster.
    pub nodes: Vec<String>,
    /// The largest member database, to bound a run (`activeDeadlineSeconds`).
    pub db_size: u64,
    /// Buckets the snapshot is also uploaded to (`--dir s3://BUCKET/PREFIX`), each keeping
    /// `keep` too.
    pub buckets: Vec<String>,
    /// A Secret whose keys become the container's environment (`AWS_ACCESS_KEY_ID`, …): the
    /// credentials never appear in the CronJob.
    pub credentials_secret: Option<String>,
}

/// The objects, in the order they are applied.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduled {
    /// The ServiceAccount the pods run as.
    pub service_account: ServiceAccount,
    /// The CronJobs.
    pub cron_jobs: Vec<CronJob>,
}

/// Checks a standard five-field cron schedule as the CronJob controller parses it
/// (minute hour day-of-month month day-of-week; `*`, `N`, `A-B`, `*/S`, `A-B/S`, lists; month
/// and weekday names) or one of `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
/// `@midnight`, `@hourly`. Time zones go in `.spec.timeZone`, not in the schedule.
pub fn check_cron(s: &str) -> Result<()> {
    let bad = |why: String| {
        Err(Error::Usage(format!(
            "--schedule {s:?}: {why} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\")"
        )))
    };
    let s = s.trim();
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => Ok(()),
            _ => bad(format!("unknown descriptor {s}")),
        };
    }
    if s.contains("TZ=") {
        return bad(
            "a time zone in the schedule is refused by Kubernetes; the schedule runs in the controller's time zone"
                .into(),
        );
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return bad(format!("{} field(s)", fields.len()));
    }
    const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, MONTHS, 1),
        ("day of week", 0, 7, DAYS, 0),
    ];
    for (field, (what, lo, hi, names, base)) in fields.iter().zip(specs) {
        let value = |v: &str| -> Option<u32> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                return Some(i as u32 + base);
            }
            v.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n))
        };
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step {
                if st.parse::<u32>().map_or(true, |n| n == 0) {
                    return bad(format!("{what}: step {st:?} is not a positive number"));
                }
            }
            let ok = match range {
                "*" | "?" => true,
                r => match r.split_once('-') {
                    Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
                    None => value(r).is_some(),
                },
            };
            if !ok {
                return bad(format!("{what}: {part:?} is not in {lo}-{hi}"));
            }
        }
    }
    Ok(())
}

/// A run may take this long: ten minutes, plus the largest database at 5 MiB/s (a slow disk
/// or a loaded member), at most six hours.
pub fn active_deadline(db_size: u64) -> i64 {
    (600 + db_size / (5 << 20)).min(6 * 3600) as i64
}

fn host_path(name: &str, path: &Path, kind: &str, read_only: bool) -> (Volume, VolumeMount) {
    let p = path.display().to_string();
    (
        Volume {
            name: name.to_string(),
            host_path: Some(HostPathVolumeSource { path: p.clone(), type_: Some(kind.to_string()) }),
            ..Default::default()
        },
        VolumeMount { name: name.to_string(), mount_path: p, read_only: Some(read_only), ..Default::default() },
    )
}

/// The container's command: exactly what runs on the node.
pub fn command(opts: &ScheduleOptions, prefix: &str) -> Vec<String> {
    if let Task::Defrag(d) = &opts.task {
        return defrag_command(opts, d);
    }
    let mut cmd: Vec<String> = vec![
        "kubectl-etcd-restore".into(),
        "snapshot".into(),
        "save".into(),
        "--dir".into(),
        opts.dir.display().to_string(),
        "--keep".into(),
        opts.keep.to_string(),
        "--name-prefix".into(),
        prefix.into(),
        "--manifest".into(),
        opts.manifest.display().to_string(),
    ];
    if opts.compression == crate::store::compress::Compression::Zstd {
        cmd.extend(["--compress".into(), "zstd".into()]);
    }
    // `--keep` once: every --dir keeps N.
    for b in &opts.buckets {
        cmd.extend(["--dir".into(), b.clone()]);
    }
    cmd
}

/// `kubectl-etcd-defrag --manifest M [--min-free X | --all] [--compact [--keep-revisions N]]`:
/// the rolling defrag, which takes only the members its rule selects and does nothing otherwise.
fn defrag_command(opts: &ScheduleOptions, d: &DefragTask) -> Vec<String> {
    let mut cmd: Vec<String> =
        vec!["kubectl-etcd-defrag".into(), "--manifest".into(), opts.manifest.display().to_string()];
    if d.all {
        cmd.push("--all".into());
    } else if let Some(m) = &d.min_free {
        cmd.extend(["--min-free".into(), m.clone()]);
    }
    if d.compact {
        cmd.push("--compact".into());
        if d.keep_revisions > 0 {
            cmd.extend(["--keep-revisions".into(), d.keep_revisions.to_string()]);
        }
    }
    cmd
}

/// The `app.kubernetes.io/component` of the objects.
fn component(opts: &ScheduleOptions) -> &'static str {
    match opts.task {
        Task::Snapshot => "etcd-backup",
        Task::Defrag(_) => "etcd-defrag",
    }
}

fn labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "kubectl-etcd".to_string()),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

/// The host folders the job mounts: the manifests (read-only), the PKI folders (read-only) and,
/// for a snapshot, the snapshot directory (created when missing).
fn host_volumes(opts: &ScheduleOptions) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let manifest_dir = opts.manifest.parent().unwrap_or(Path::new("/"));
    let backups = (opts.task == Task::Snapshot).then(|| (opts.dir.clone(), "DirectoryOrCreate", false));
    for (i, (dir, kind, ro)) in std::iter::once((manifest_dir.to_path_buf(), "Directory", true))
        .chain(opts.pki_dirs.iter().map(|d| (d.clone(), "Directory", true)))
        .chain(backups)
        .enumerate()
    {
        let vname = match i {
            0 => "manifests".to_string(),
            i if i <= opts.pki_dirs.len() => format!("etcd-pki-{i}"),
            _ => "backups".to_string(),
        };
        let (v, m) = host_path(&vname, &dir, kind, ro);
        volumes.push(v);
        mounts.push(m);
    }
    (volumes, mounts)
}

/// Control-plane nodes only.
fn control_plane_affinity() -> Affinity {
    // kubeadm labels control-plane nodes with "", RKE2 and k3s with "true": the label's
    // presence, by affinity (the older `master` label as an alternative term).
    let term = |key: &str| NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: key.to_string(),
            operator: "Exists".into(),
            values: None,
        }]),
        ..Default::default()
    };
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![term(CONTROL_PLANE_LABEL), term("node-role.kubernetes.io/master")],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Tolerations of the control-plane taints.
fn control_plane_tolerations() -> Vec<Toleration> {
    TAINTS
        .iter()
        .map(|(k, effect)| Toleration {
            key: Some(k.to_string()),
            operator: Some("Exists".into()),
            effect: Some(effect.to_string()),
            ..Default::default()
        })
        .collect()
}

/// The one container: the plugin's image running `snapshot save` (or the defrag), as root
/// with nothing else.
fn snapshot_container(opts: &ScheduleOptions, prefix: &str, mounts: Vec<VolumeMount>) -> Container {
    let q = |s: &str| Quantity(s.to_string());
    Container {
        name: if opts.task == Task::Snapshot { "snapshot" } else { "defrag" }.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command(opts, prefix)),
        env_from: opts.credentials_secret.as_ref().map(|name| {
            vec![k8s_openapi::api::core::v1::EnvFromSource {
                secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource {
                    name: name.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        volume_mounts: Some(mounts),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".into(), q("100m")), ("memory".into(), q("64Mi"))])),
            limits: Some(BTreeMap::from([("memory".into(), q("256Mi"))])),
            ..Default::default()
        }),
        // The etcd keys are root's, mode 0600: root, and nothing else.
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cron_job(opts: &ScheduleOptions, node: Option<&str>) -> CronJob {
    let name = match node {
        Some(n) => format!("{}-{n}", opts.name),
        None => opts.name.clone(),
    };
    let prefix =
        node.map_or_else(|| crate::store::snapdir::DEFAULT_PREFIX.to_string(), |n| format!("etcd-snapshot-{n}"));
    let (volumes, mounts) = host_volumes(opts);
    let affinity = control_plane_affinity();
    let node_selector = node.map(|n| BTreeMap::from([("kubernetes.io/hostname".to_string(), n.to_string())]));
    let tolerations = control_plane_tolerations();
    let container = snapshot_container(opts, &prefix, mounts);
    let pod = PodSpec {
        service_account_name: Some(opts.name.clone()),
        automount_service_account_token: Some(false),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        priority_class_name: (opts.namespace == "kube-system").then(|| "system-cluster-critical".into()),
        restart_policy: Some("Never".into()),
        node_selector,
        affinity: Some(affinity),
        tolerations: Some(tolerations),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    CronJob {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels(&name, component(opts))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: opts.schedule.clone(),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(&name, component(opts))), ..Default::default() }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(active_deadline(deadline_bytes(opts))),
                    ttl_seconds_after_finished: Some(86400),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(&name, component(opts))),
                            ..Default::default()
                        }),
                        spec: Some(pod),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The bytes a run moves: a snapshot streams the largest database once; a defrag rewrites
/// every member's, one after the other (five members at most in a sound cluster).
fn deadline_bytes(opts: &ScheduleOptions) -> u64 {
    match opts.task {
        Task::Snapshot => opts.db_size,
        Task::Defrag(_) => opts.db_size.saturating_mul(5),
    }
}

/// The objects for `opts`.
pub fn build(opts: &ScheduleOptions) -> Result<Scheduled> {
    check_cron(&opts.schedule)?;
    if let Task::Defrag(_) = opts.task {
        if !opts.manifest.is_absolute() {
            return Err(Error::Usage(format!(
                "--manifest {} must be an absolute path on the node",
                opts.manifest.display()
            )));
        }
    } else if let Err(e) = crate::store::snapdir::check_keep(opts.keep) {
        return Err(e);
    } else if !opts.dir.is_absolute() || !opts.manifest.is_absolute() {
        return Err(Error::Usage(format!(
            "--dir {} and --manifest {} must be absolute paths on the node",
            opts.dir.display(),
            opts.manifest.display()
        )));
    }
    let service_account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(opts.name.clone()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels(&opts.name, component(opts))),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let cron_jobs = if opts.nodes.is_empty() {
        vec![cron_job(opts, None)]
    } else {
        opts.nodes.iter().map(|n| cron_job(opts, Some(n))).collect()
    };
    Ok(Scheduled { service_account, cron_jobs })
}

/// The folders of the certificates and keys the node's manifest names (read when the manifest
/// is on this machine), else `fallback` (`--pki-dir`), else kubeadm's `/etc/kubernetes/pki/etcd`:
/// what a scheduled job mounts read-only.
pub fn pki_dirs(manifest: &Path, fallback: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(m) = crate::reach::discovery::manifest::Manifest::load(manifest) {
        for flag in
            ["trusted-ca-file", "cert-file", "key-file", "peer-trusted-ca-file", "peer-cert-file", "peer-key-file"]
        {
            if let Some(d) = m.flag(flag).and_then(|f| Path::new(f).parent()).map(Path::to_path_buf) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    }
    if dirs.is_empty() {
        dirs.push(
            fallback.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(crate::reach::layouts::KUBEADM.pki_dir)),
        );
    }
    dirs
}

/// The largest member database, if the cluster answers within a few seconds: what bounds a
/// scheduled run ([`active_deadline`]).
pub async fn largest_db_size(settings: &crate::reach::discovery::settings::Settings) -> Option<u64> {
    let mut settings = settings.clone();
    settings.command_timeout = settings.command_timeout.min(std::time::Duration::from_secs(5));
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let session = crate::reach::cluster::Session::open(&settings).await.ok()?;
        let list = session.member_list().await.ok()?;
        let statuses = session.statuses(&list.members).await;
        statuses.iter().filter_map(|s| s.status.as_ref().ok().map(|s| s.db_size)).max()
    })
    .await
    .ok()
    .flatten()
}

/// The control-plane nodes, by kubeadm's label (and the older `master` label, and RKE2's
/// `etcd` role), sorted.
pub async fn control_plane_nodes(client: &kube::Client) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Node;
    let mut names = std::collections::BTreeSet::new();
    for label in [CONTROL_PLANE_LABEL, "node-role.kubernetes.io/master", "node-role.kubernetes.io/etcd"] {
        let action = format!("list nodes labelled {label}");
        let nodes: Vec<Node> = crate::reach::kube::list(client, None, label, &action).await?;
        names.extend(nodes.into_iter().filter_map(|n| n.metadata.name));
    }
    if names.is_empty() {
        return Err(Error::Refused(format!(
            "no node is labelled {CONTROL_PLANE_LABEL} (or master, or etcd): label the control-plane nodes, or drop --every-node"
        )));
    }
    Ok(names.into_iter().collect())
}

/// Creates each object, or replaces it when it exists (with its current resourceVersion, as
/// `kubectl replace` does): a second run updates and never duplicates. Lines as kubectl prints
/// them (`cronjob.batch/etcd-backup created`).
pub async fn apply(client: &kube::Client, objects: &Scheduled) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let sa = &objects.service_account;
    done.push(put(client, sa, "serviceaccount").await?);
    for cj in &objects.cron_jobs {
        done.push(put(client, cj, "cronjob.batch").await?);
    }
    Ok(done)
}

async fn put<K>(client: &kube::Client, obj: &K, kind: &str) -> Result<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    use kube::api::{Api, PostParams};
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let kube_err = |action: String| move |e: kube::Error| crate::reach::kube::api_error(&action, e);
    let current = api.get_opt(&name).await.map_err(kube_err(format!("get {kind} {ns}/{name}")))?;
    match current {
        None => {
            api.create(&PostParams::default(), obj).await.map_err(kube_err(format!("create {kind} {ns}/{name}")))?;
            Ok(format!("{kind}/{name} created"))
        }
        Some(cur) => {
            let mut next = obj.clone();
            next.meta_mut().resource_version = cur.meta().resource_version.clone();
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(kube_err(format!("replace {kind} {ns}/{name}")))?;
            Ok(format!("{kind}/{name} configured"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_as_the_controller_reads_them() {
        for ok in [
            "0 */6 * * *",
            "*/15 * * * *",
            "30 2 * * mon-fri",
            "0 0 1,15 * *",
            "0 3 * jan,jul 0",
            "5 4 * * 7",
            "@daily",
            "@hourly",
            "0 0-12/2 ? * *",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("0 */6 * *", "4 field(s)"),
            ("61 * * * *", "minute: \"61\" is not in 0-59"),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day of week"),
            ("*/0 * * * *", "step \"0\""),
            ("5-1 * * * *", "minute"),
            ("@every 5m", "unknown descriptor"),
            ("CRON_TZ=UTC 0 * * * *", "time zone"),
        ] {
            let e = check_cron(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_run_may_take_longer_for_a_bigger_database() {
        assert_eq!(active_deadline(0), 600);
        assert_eq!(active_deadline(1 << 30), 600 + 204);
        assert_eq!(active_deadline(1 << 50), 6 * 3600);
    }
}
