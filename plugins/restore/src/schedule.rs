//! `snapshot schedule`: the options from the flags and what can be learned of the cluster, then
//! the manifests printed (YAML documents, or a JSON `List`) or applied through the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::cli::print::{Output, OutputFormat};
use kubectl_etcd::ops::schedule::{self, ScheduleOptions, Scheduled};
use kubectl_etcd::reach::discovery::manifest::Manifest;
use kubectl_etcd::{Error, ExitCode, Result};

use crate::ScheduleArgs;
use kubectl_etcd::store::snapdir::SnapDir;

/// etcd's largest recommended quota: the run's deadline when no member tells its size.
const FALLBACK_DB_SIZE: u64 = 8 << 30;

/// The folders of the certificates and keys the node's manifest names (read when the manifest
/// is on this machine), else `--pki-dir`, else kubeadm's `/etc/kubernetes/pki/etcd`.
fn pki_dirs(common: &CommonArgs, manifest: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(m) = Manifest::load(manifest) {
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
            common.pki_dir.clone().unwrap_or_else(|| PathBuf::from(kubectl_etcd::reach::layouts::KUBEADM.pki_dir)),
        );
    }
    dirs
}

/// The largest member database, if the cluster answers within a few seconds.
async fn db_size(common: &CommonArgs) -> Option<u64> {
    let mut settings = common.settings();
    settings.command_timeout = settings.command_timeout.min(Duration::from_secs(5));
    tokio::time::timeout(Duration::from_secs(10), async {
        let session = kubectl_etcd::reach::cluster::Session::open(&settings).await.ok()?;
        let list = session.member_list().await.ok()?;
        let statuses = session.statuses(&list.members).await;
        statuses.iter().filter_map(|s| s.status.as_ref().ok().map(|s| s.db_size)).max()
    })
    .await
    .ok()
    .flatten()
}

/// Runs `snapshot schedule`.
pub async fn run(common: &CommonArgs, out: Output, a: ScheduleArgs) -> Result<ExitCode> {
    let manifest = common
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(kubectl_etcd::reach::discovery::settings::DEFAULT_MANIFEST));
    let settings = common.settings();
    let client = if a.apply || a.every_node {
        Some(kubectl_etcd::reach::discovery::kubeapi::kube_client(&settings).await?.0)
    } else {
        None
    };
    let nodes = match (&client, a.every_node) {
        (Some(c), true) => schedule::control_plane_nodes(c).await?,
        _ => Vec::new(),
    };
    let size = db_size(common).await;
    if size.is_none() {
        eprintln!(
            "note: no member answered: the job's deadline assumes an {} database",
            kubectl_etcd::base::units::format_bytes(FALLBACK_DB_SIZE)
        );
    }
    let mut local = None;
    let mut buckets = Vec::new();
    for d in &a.dir {
        match d {
            SnapDir::Local(p) if local.is_none() => local = Some(p.clone()),
            SnapDir::Local(p) => {
                return Err(Error::Usage(format!(
                    "--dir {}: one local directory per node (and any number of buckets)",
                    p.display()
                )))
            }
            SnapDir::Bucket(u) => buckets.push(u.to_string()),
        }
    }
    if let Some(name) = &a.credentials_secret {
        if name.is_empty()
            || name.len() > 253
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(Error::Usage(format!(
                "--credentials-secret {name:?} is not a Secret name (lowercase letters, digits, '-', '.')"
            )));
        }
    }
    let opts = ScheduleOptions {
        buckets,
        credentials_secret: a.credentials_secret,
        schedule: a.schedule,
        keep: a.keep,
        compression: a.compress,
        dir: local.unwrap_or_else(|| PathBuf::from(kubectl_etcd::ops::schedule::DEFAULT_DIR)),
        image: a.image,
        namespace: common.namespace.clone(),
        name: a.name,
        pki_dirs: pki_dirs(common, &manifest),
        manifest,
        nodes,
        db_size: size.unwrap_or(FALLBACK_DB_SIZE),
    };
    let objects = schedule::build(&opts)?;
    if let Some(c) = client.filter(|_| a.apply) {
        for line in schedule::apply(&c, &objects).await? {
            println!("{line}");
        }
        return Ok(ExitCode::Ok);
    }
    kubectl_etcd::cli::print::write_stdout(&manifests(&objects, out.format)?)?;
    Ok(ExitCode::Ok)
}

/// The objects as Kubernetes manifests, for `kubectl apply -f`: YAML documents (the default),
/// or one JSON `List`.
pub fn manifests(objects: &Scheduled, format: OutputFormat) -> Result<String> {
    let mut items = vec![serde_json::to_value(&objects.service_account).map_err(|e| Error::Internal(e.to_string()))?];
    for cj in &objects.cron_jobs {
        items.push(serde_json::to_value(cj).map_err(|e| Error::Internal(e.to_string()))?);
    }
    match format {
        OutputFormat::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            kubectl_etcd::cli::print::document(OutputFormat::Json, &list)
        }
        OutputFormat::Table | OutputFormat::Yaml => {
            let mut s = String::new();
            for i in &items {
                s.push_str("---\n");
                s.push_str(&kubectl_etcd::cli::print::document(OutputFormat::Yaml, i)?);
            }
            Ok(s)
        }
        _ => Err(Error::Usage("snapshot schedule prints manifests: -o yaml (the default) or -o json".into())),
    }
}
