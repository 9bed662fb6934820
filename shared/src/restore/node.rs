//! The on-node disaster-recovery flows, driven by the static pod manifest: stop etcd by moving
//! its manifest out of the manifests folder, move the data dir aside (never delete), restore,
//! put the manifest back, wait for the member. Any failure rolls back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{apply, Applied, ApplyOptions, Engine, DEFAULT_TOKEN};
use crate::conn::Target;
use crate::discovery::Manifest;
use crate::error::{Error, Result};

/// Where the snapshot comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A snapshot file (sha256 trailer verified unless skipped).
    Snapshot(PathBuf),
    /// A surviving member's data dir: its `member/snap/db` is restored with skip-hash-check
    /// semantics (a learner kept in a second site, typically).
    DataDir(PathBuf),
}

/// Options of the node flows.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The static pod manifest.
    pub manifest: PathBuf,
    /// What to restore.
    pub source: Source,
    /// Restore a one-member cluster (the path back when the other members are lost).
    pub single_member: bool,
    /// Skip the sha256 trailer check.
    pub skip_hash_check: bool,
    /// Raise the revision.
    pub bump_revision: Option<u64>,
    /// Mark it compacted.
    pub mark_compacted: bool,
    /// How long to wait for etcd to stop and to answer again.
    pub timeout: Duration,
    /// The new cluster's token [default: the manifest's token with a suffix derived from the
    /// snapshot's sha256, so that every node restoring the same snapshot agrees on it, and the
    /// restored members never take the old cluster's messages for their own].
    pub token: Option<String>,
}

/// A token suffix every node restoring the same file derives alike: the first 8 hex digits of
/// the file's sha256 (its trailer, when it has one).
pub fn snapshot_tag(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| Error::Input { what: "snapshot", path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let digest: Vec<u8> = if crate::snapshot::has_trailer(len) {
        let mut t = [0u8; 32];
        f.seek(SeekFrom::End(-32)).map_err(io)?;
        f.read_exact(&mut t).map_err(io)?;
        t.to_vec()
    } else {
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(io)?;
        h.finalize().to_vec()
    };
    Ok(digest[..4].iter().map(|b| format!("{b:02x}")).collect())
}

/// The plan, printed before anything is done.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Member name.
    pub name: String,
    /// The manifest.
    pub manifest: PathBuf,
    /// Where the manifest goes while etcd is stopped.
    pub manifest_aside: PathBuf,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Where the old data dir goes.
    pub backup: PathBuf,
    /// The cluster the restore creates.
    pub initial_cluster: String,
    /// Its token.
    pub token: String,
    /// This member's peer URLs.
    pub peer_urls: Vec<String>,
    /// The client URL to wait on.
    pub client_url: String,
    /// The snapshot used (for a data-dir source: a copy of its db, made first).
    pub snapshot: PathBuf,
    /// The steps.
    pub steps: Vec<String>,
}

/// UTC timestamp for names: `20261123T081500Z`.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Builds the plan from the manifest; checks everything that can be checked without changing
/// anything (the snapshot included).
pub fn plan(opts: &NodeOptions) -> Result<Plan> {
    let m = Manifest::load(&opts.manifest)?;
    let need = |flag: &str| {
        m.flag(flag).map(String::from).ok_or_else(|| {
            Error::Usage(format!(
                "manifest {} has no --{flag}: it is needed to restore this member",
                opts.manifest.display()
            ))
        })
    };
    let name = need("name")?;
    let data_dir = PathBuf::from(need("data-dir")?);
    let peer_urls: Vec<String> = crate::discovery::manifest::split_list(&need("initial-advertise-peer-urls")?);
    let old_token = m.flag("initial-cluster-token").unwrap_or(DEFAULT_TOKEN).to_string();
    let token = match (&opts.token, &opts.source) {
        (Some(t), _) => t.clone(),
        (None, Source::Snapshot(p)) => format!("{old_token}-restored-{}", snapshot_tag(p)?),
        (None, Source::DataDir(d)) => format!("{old_token}-restored-{}", snapshot_tag(&d.join("member/snap/db"))?),
    };
    let initial_cluster = if opts.single_member {
        peer_urls.iter().map(|u| format!("{name}={u}")).collect::<Vec<_>>().join(",")
    } else {
        need("initial-cluster")?
    };
    let client_url = m
        .loopback_client_url()
        .or_else(|| m.client_urls().into_iter().next())
        .ok_or_else(|| Error::Usage(format!("manifest {} has no client URL to wait on", opts.manifest.display())))?;
    let ts = timestamp();
    let manifests_dir = opts.manifest.parent().unwrap_or(Path::new("/"));
    let aside_dir = manifests_dir.parent().unwrap_or(Path::new("/"));
    let file_name =
        opts.manifest.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| "etcd.yaml".into());
    let manifest_aside = aside_dir.join(format!("{file_name}.kubectl-etcd-{ts}"));
    let backup = with_suffix(&data_dir, &format!(".bak-{ts}"));
    let snapshot = match &opts.source {
        Source::Snapshot(p) => p.clone(),
        Source::DataDir(d) => {
            let db = d.join("member/snap/db");
            if !db.is_file() {
                return Err(Error::Usage(format!("{} has no member/snap/db: not an etcd data dir", d.display())));
            }
            with_suffix(&data_dir, &format!(".db-from-{ts}"))
        }
    };
    let mut steps = Vec::new();
    match &opts.source {
        Source::Snapshot(p) => steps.push(format!("verify snapshot {} (sha256 trailer and structure)", p.display())),
        Source::DataDir(d) => steps.push(format!(
            "copy {}/member/snap/db to {} and check its structure (no sha256: skip-hash-check semantics)",
            d.display(),
            snapshot.display()
        )),
    }
    steps.push(format!("move {} to {} (kubelet stops etcd)", opts.manifest.display(), manifest_aside.display()));
    steps.push(format!("wait until {client_url} is closed"));
    steps.push(format!("move data dir {} aside to {} (nothing is deleted)", data_dir.display(), backup.display()));
    steps.push(format!(
        "restore into {} as member {name} of {} (token {token})",
        data_dir.display(),
        if opts.single_member { "a one-member cluster".to_string() } else { format!("cluster {initial_cluster}") }
    ));
    steps.push(format!(
        "put the manifest back with --initial-cluster-token={token}{}",
        if opts.single_member { format!(" and --initial-cluster={initial_cluster}") } else { String::new() }
    ));
    steps.push(format!("wait until member {name} answers on {client_url}, then show its health"));
    Ok(Plan {
        name,
        manifest: opts.manifest.clone(),
        manifest_aside,
        data_dir,
        backup,
        initial_cluster,
        token,
        peer_urls,
        client_url,
        snapshot,
        steps,
    })
}

async fn port_closed(url: &str) -> bool {
    let Some(t) = Target::parse(url) else { return true };
    let addr = if t.host.contains(':') { format!("[{}]:{}", t.host, t.port) } else { format!("{}:{}", t.host, t.port) };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

async fn wait_closed(url: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while !port_closed(url).await {
        if start.elapsed() > timeout {
            return Err(Error::Refused(format!(
                "etcd still listens on {url} {} after its manifest was moved out: is kubelet running?",
                crate::util::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|source| Error::Io { action: format!("move {} to {}", from.display(), to.display()), source })
}

/// Rewrites the manifest's `--initial-cluster-token` (added when missing) and, when given,
/// `--initial-cluster` (with `--initial-cluster-state=new`) to describe the restored cluster.
pub fn adjust_manifest(text: &str, token: &str, initial_cluster: Option<&str>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut saw_token = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("- --initial-cluster-token=") {
            saw_token = true;
            out.push(format!("{indent}- --initial-cluster-token={token}"));
        } else if let (Some(ic), true) = (initial_cluster, trimmed.starts_with("- --initial-cluster=")) {
            out.push(format!("{indent}- --initial-cluster={ic}"));
        } else if initial_cluster.is_some() && trimmed.starts_with("- --initial-cluster-state=") {
            out.push(format!("{indent}- --initial-cluster-state=new"));
        } else {
            out.push(line.to_string());
        }
        if !saw_token && trimmed.starts_with("- --initial-cluster=") {
            saw_token = true;
            out.push(format!("{indent}- --initial-cluster-token={token}"));
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// What the flow did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The plan that was carried out.
    pub plan: Plan,
    /// The restore.
    pub applied: Applied,
    /// Whether the member answered before the timeout.
    pub answered: bool,
}

/// Carries out a plan. `answers` tells whether the member answers (a Status RPC).
pub async fn execute<F, Fut>(opts: &NodeOptions, plan: &Plan, answers: F) -> Result<Outcome>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // 0. The snapshot, before anything is moved.
    let skip = opts.skip_hash_check || matches!(opts.source, Source::DataDir(_));
    let mut temp_copy = None;
    if let Source::DataDir(d) = &opts.source {
        let src = d.join("member/snap/db");
        std::fs::copy(&src, &plan.snapshot).map_err(|source| Error::Io {
            action: format!("copy {} to {}", src.display(), plan.snapshot.display()),
            source,
        })?;
        temp_copy = Some(plan.snapshot.clone());
    }
    let apply_opts = ApplyOptions {
        snapshot: plan.snapshot.clone(),
        data_dir: plan.data_dir.clone(),
        name: plan.name.clone(),
        initial_cluster: plan.initial_cluster.clone(),
        initial_advertise_peer_urls: Some(plan.peer_urls.clone()),
        token: plan.token.clone(),
        skip_hash_check: skip,
        bump_revision: opts.bump_revision,
        mark_compacted: opts.mark_compacted,
        engine: Engine::Native,
    };
    // Validate everything but the (still occupied) data dir now.
    let check_opts =
        ApplyOptions { data_dir: with_suffix(&plan.data_dir, ".kubectl-etcd-does-not-exist"), ..apply_opts.clone() };
    if let Err(e) = super::prepare(&check_opts) {
        if let Some(t) = &temp_copy {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    let original_manifest = std::fs::read_to_string(&plan.manifest).map_err(|source| Error::ReadFile {
        what: "static pod manifest",
        path: plan.manifest.clone(),
        source,
    })?;

    // 1. Stop etcd.
    rename(&plan.manifest, &plan.manifest_aside)?;
    let mut moved_data = false;
    let mut restored = false;
    let result: Result<(Applied, bool)> = async {
        wait_closed(&plan.client_url, opts.timeout).await?;
        // 2. Move the data dir aside.
        if plan.data_dir.exists() {
            rename(&plan.data_dir, &plan.backup)?;
            moved_data = true;
        }
        // 3. Restore.
        let a = tokio::task::block_in_place(|| apply(&apply_opts))?;
        restored = true;
        // 4. The manifest back, adjusted when membership changed.
        let text = adjust_manifest(
            &original_manifest,
            &plan.token,
            opts.single_member.then_some(plan.initial_cluster.as_str()),
        );
        std::fs::write(&plan.manifest_aside, text)
            .map_err(|source| Error::Io { action: format!("write {}", plan.manifest_aside.display()), source })?;
        rename(&plan.manifest_aside, &plan.manifest)?;
        // 5. Wait for the member. A member restored into a cluster of several serves clients only
        // once a quorum of restored members runs: until the others are restored too, that it
        // started and listens is all there is to wait for.
        let start = Instant::now();
        let mut answered = false;
        let mut listening_since: Option<Instant> = None;
        while start.elapsed() < opts.timeout {
            if answers().await {
                answered = true;
                break;
            }
            if !opts.single_member && !port_closed(&plan.client_url).await {
                let since = *listening_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !answered && listening_since.is_none() {
            return Err(Error::Refused(format!(
                "member {} did not answer on {} within {} after the restore",
                plan.name,
                plan.client_url,
                crate::util::format_duration(opts.timeout)
            )));
        }
        Ok((a, answered))
    }
    .await;
    if let Some(t) = &temp_copy {
        let _ = std::fs::remove_file(t);
    }
    match result {
        Ok((applied, answered)) => Ok(Outcome { plan: plan.clone(), applied, answered }),
        Err(e) => {
            // Roll back: etcd stopped, the restored dir aside (kept), the old data dir and the
            // original manifest back.
            let mut notes = Vec::new();
            if plan.manifest.exists() {
                if let Err(err) = rename(&plan.manifest, &plan.manifest_aside) {
                    notes.push(err.to_string());
                }
                let _ = wait_closed(&plan.client_url, opts.timeout).await;
            }
            if restored && plan.data_dir.exists() {
                let failed = with_suffix(&plan.data_dir, &format!(".failed-{}", timestamp()));
                if let Err(err) = rename(&plan.data_dir, &failed) {
                    notes.push(err.to_string());
                } else {
                    notes.push(format!("the restored data dir was kept at {}", failed.display()));
                }
            }
            if moved_data {
                if let Err(err) = rename(&plan.backup, &plan.data_dir) {
                    notes.push(err.to_string());
                }
            }
            let _ = std::fs::write(&plan.manifest_aside, &original_manifest);
            if let Err(err) = rename(&plan.manifest_aside, &plan.manifest) {
                notes.push(err.to_string());
            }
            let extra = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
            Err(Error::Refused(format!("{e}; rolled back: the old data dir and manifest are back in place{extra}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_rewrite() {
        let text = "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-cluster=a=https://1:2380,b=https://2:2380\n    - --initial-cluster-state=existing\n    - --name=a\n";
        let out = adjust_manifest(text, "tok-restored-1234", Some("a=https://1:2380"));
        assert!(out.contains("    - --initial-cluster=a=https://1:2380\n"));
        assert!(out.contains("    - --initial-cluster-token=tok-restored-1234\n"));
        assert!(out.contains("    - --initial-cluster-state=new\n"));
        assert!(out.contains("    - --name=a\n"));
    }
}
