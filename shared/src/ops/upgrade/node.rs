//! `kubectl etcd upgrade node --to VERSION`: this node's static-pod member on another version —
//! check gate, a verified snapshot first, leadership moved away, the manifest swapped whole
//! (image and flags), the member followed until it answers on the new version, healthy and
//! caught up; the original manifest put back (rollback) when it does not within the timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::check::{check, CheckOptions, UpgradeCheck};
use super::facts::{facts, Version};
use crate::base::units::{member_id, ser_hex};
use crate::ops::health::model::Status;
use crate::reach::cluster::{Member, Session};
use crate::reach::quorum::leader_of;
use crate::{Error, ExitCode, Result};

/// What `upgrade node` is asked.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The version to run.
    pub to: Version,
    /// The image (default: the manifest's repository, tag `VERSION-0`).
    pub image: Option<String>,
    /// Where the snapshot goes.
    pub snapshot_dir: PathBuf,
    /// The wait for the member on the new version, and then for the rollback.
    pub timeout: Duration,
    /// Checks to go on past.
    pub force: Vec<String>,
    /// Plan only.
    pub dry_run: bool,
    /// Where the original manifest is kept (default: beside the manifests folder).
    pub backup_dir: Option<PathBuf>,
}

/// A flag the new manifest drops or renames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagChange {
    /// The flag as it is (`--enable-v2=true`).
    pub from: String,
    /// What it becomes (`None`: dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The upgrade guide.
    pub source: String,
}

/// The plan of `upgrade node`.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    /// This node's member.
    pub member: String,
    /// Its ID.
    #[serde(serialize_with = "ser_hex")]
    pub member_id: u64,
    /// Its client URL (what is polled).
    pub endpoint: String,
    /// The version it runs.
    pub from: String,
    /// The version it will run.
    pub to: Version,
    /// The manifest.
    pub manifest: PathBuf,
    /// The image now.
    pub image_from: String,
    /// The image after.
    pub image_to: String,
    /// Flags dropped or renamed.
    pub flag_changes: Vec<FlagChange>,
    /// Where the original manifest is kept.
    pub backup: PathBuf,
    /// The snapshot taken first.
    pub snapshot: PathBuf,
    /// This member leads: leadership moves first.
    pub leader: bool,
    /// The wait before a rollback.
    pub timeout_seconds: u64,
    /// The steps in order.
    pub steps: Vec<String>,
    /// The check.
    pub check: UpgradeCheck,
    /// Checks overridden by `--force`.
    pub forced: Vec<String>,
    /// Nothing to do: the member runs the version already.
    pub nothing_to_do: bool,
    /// The gate passed (or was forced).
    pub ready: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// The new manifest, whole.
    #[serde(skip)]
    pub new_text: String,
    /// The original manifest, byte for byte.
    #[serde(skip)]
    pub old_text: Vec<u8>,
}

impl NodePlan {
    /// 0 ready (or nothing to do), 1 refused.
    pub fn exit_code(&self) -> ExitCode {
        if self.ready || self.nothing_to_do {
            ExitCode::Ok
        } else {
            ExitCode::Negative
        }
    }
}

/// The result of `upgrade node`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// The member.
    pub member: String,
    /// From.
    pub from: String,
    /// To.
    pub to: Version,
    /// The member answers on the new version.
    pub upgraded: bool,
    /// The original manifest was put back.
    pub rolled_back: bool,
    /// What happened.
    pub message: String,
    /// The snapshot taken first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
    /// Where the original manifest is kept.
    pub backup: PathBuf,
    /// Leadership moved to this member first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_moved_to: Option<String>,
    /// Seconds from the manifest swap to the member healthy on the new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// What to do next.
    pub next: Vec<String>,
}

impl NodeResult {
    /// 0 upgraded, 1 not (rolled back or failed).
    pub fn exit_code(&self) -> ExitCode {
        if self.upgraded {
            ExitCode::Ok
        } else {
            ExitCode::Negative
        }
    }
}

/// `repository:VERSION-0` from the manifest's image (`registry.k8s.io/etcd:3.5.1-0` →
/// `registry.k8s.io/etcd:3.5.33-0`; a registry port is kept; a digest is dropped).
pub fn image_for(current: &str, to: &Version) -> String {
    let no_digest = current.split('@').next().unwrap_or(current);
    let slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let repo = match no_digest[slash..].find(':') {
        Some(c) => &no_digest[..slash + c],
        None => no_digest,
    };
    format!("{repo}:{to}-0")
}

/// The flags of `flags` the target no longer accepts, each dropped or renamed.
pub fn flag_changes(flags: &std::collections::BTreeMap<String, String>, to: &Version) -> Vec<FlagChange> {
    let mut out = Vec::new();
    for fact in &facts().flags {
        let Some(value) = flags.get(&fact.flag) else { continue };
        if fact.value.as_deref().is_some_and(|v| v != value) {
            continue;
        }
        let removed = fact
            .removed_in
            .as_deref()
            .and_then(Version::parse)
            .is_some_and(|m| (m.major, m.minor) <= (to.major, to.minor));
        if !removed {
            continue;
        }
        out.push(FlagChange {
            from: format!("--{}={value}", fact.flag),
            to: fact.replacement.as_ref().map(|r| {
                if r.contains('=') {
                    r.replace("VALUE", value)
                } else {
                    format!("{r}={value}")
                }
            }),
            source: fact.source.clone(),
        });
    }
    out
}

/// The manifest with the new image and the flag changes: every other byte as it was.
pub fn rewrite(text: &str, image: &str, changes: &[FlagChange]) -> Result<String> {
    let mut out = Vec::new();
    let mut image_done = false;
    let mut gates: Vec<String> = Vec::new();
    let mut gate_line: Option<usize> = None;
    let mut first_dropped: Option<(usize, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if !image_done && trimmed.starts_with("image:") {
            out.push(format!("{indent}image: {image}"));
            image_done = true;
            continue;
        }
        let item = trimmed.strip_prefix("- ").map(|s| s.trim().trim_matches(|c| c == '"' || c == '\''));
        if let Some(arg) = item {
            if arg.starts_with("--feature-gates=") {
                gate_line = Some(out.len());
            }
            if let Some(c) = changes.iter().find(|c| c.from == arg || c.from.split('=').next() == Some(arg)) {
                match &c.to {
                    Some(t) if t.starts_with("--feature-gates=") => {
                        gates.push(t.trim_start_matches("--feature-gates=").to_string());
                        first_dropped.get_or_insert((out.len(), indent.to_string()));
                    }
                    Some(t) => out.push(format!("{indent}- {t}")),
                    None => {}
                }
                continue;
            }
        }
        out.push(line.to_string());
    }
    if !image_done {
        return Err(Error::Refused("the manifest has no image: line to change".into()));
    }
    if !gates.is_empty() {
        match gate_line {
            Some(i) => {
                let l = out[i].clone();
                out[i] = format!("{},{}", l.trim_end().trim_end_matches(['"', '\'']), gates.join(","));
            }
            None => {
                let (i, indent) = first_dropped.unwrap_or((out.len(), "    ".into()));
                out.insert(i, format!("{indent}- --feature-gates={}", gates.join(",")));
            }
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// Puts `data` at `path` whole or not at all (a hidden `.part` beside it, fsynced, renamed over
/// the old file, the folder fsynced): kubelet sees the old manifest or the new one, never half.
pub fn replace(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let part = dir.join(format!(".{name}.part"));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
    if part.exists() {
        std::fs::remove_file(&part)
            .map_err(|source| Error::Io { action: format!("remove the stale {}", part.display()), source })?;
    }
    crate::base::fsio::write_new(&part, data, mode)?;
    std::fs::rename(&part, path)
        .map_err(|source| Error::Io { action: format!("rename {} to {}", part.display(), path.display()), source })?;
    crate::base::fsio::sync_dir(dir)
}

/// The distribution that sets this node's etcd version itself, from what discovery found: RKE2's
/// manifest folder, or (with no manifest) k3s's certificates.
pub fn managed_by(manifest: Option<&std::path::Path>, ca: Option<&std::path::Path>) -> Option<&'static str> {
    let under = |p: Option<&std::path::Path>, dir: &str| p.is_some_and(|p| p.starts_with(dir));
    let rke2_dir = std::path::Path::new(crate::reach::layouts::RKE2.manifest.unwrap_or_default());
    if manifest.is_some_and(|m| rke2_dir.parent().is_some_and(|d| m.starts_with(d))) {
        return Some("rke2");
    }
    if manifest.is_none() && under(ca, crate::reach::layouts::K3S.pki_dir) {
        return Some("k3s");
    }
    None
}

/// The refusal of `upgrade node` on k3s or RKE2: which etcd this node's release carries, and
/// what to upgrade instead.
pub fn managed_refusal(name: &str, running: Option<&str>) -> Error {
    let d = super::facts().distribution(name);
    let release = release_of(name);
    Error::Refused(format!(
        "etcd here{} comes with {}{}: {}; upgrade node changes nothing here: {} ({}); kubectl etcd upgrade check still applies",
        running.map(|v| format!(" (running {v})")).unwrap_or_default(),
        name,
        release.map(|r| format!(" {r}")).unwrap_or_default(),
        d.map(|d| d.fact.as_str()).unwrap_or("its release sets etcd's version"),
        d.map(|d| d.upgrade.as_str()).unwrap_or("upgrade the distribution itself"),
        d.map(|d| d.source.as_str()).unwrap_or_default(),
    ))
}

/// `k3s --version` / `rke2 --version`'s first line, when the binary is on PATH (bounded).
fn release_of(name: &str) -> Option<String> {
    let mut child = std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(child.stdout.take()?, 4096), &mut out).ok()?;
    out.lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
}

/// Refuses on k3s/RKE2 ([`managed_by`]), naming the etcd the cluster runs.
async fn refuse_if_managed(session: &Session) -> Result<()> {
    let manifest_path = session.discovery.manifest.as_ref().map(|m| m.path.as_path());
    let Some(name) = managed_by(manifest_path, session.discovery.tls.ca.as_ref().map(|c| c.path.as_path())) else {
        return Ok(());
    };
    let statuses = match session.member_list().await {
        Ok(l) => session.statuses(&l.members).await,
        Err(_) => Vec::new(),
    };
    let versions: std::collections::BTreeSet<String> =
        statuses.iter().filter_map(|s| s.status.as_ref().ok().map(|x| x.version.clone())).collect();
    let running = (!versions.is_empty()).then(|| versions.into_iter().collect::<Vec<_>>().join(" / "));
    Err(managed_refusal(name, running.as_deref()))
}

/// This node's member (the manifest's `--name` in the member list) and the client URL to poll.
async fn this_member(session: &Session, m: &crate::reach::discovery::manifest::Manifest) -> Result<(Member, String)> {
    let list = session.member_list().await?;
    let me: Member = m.name().and_then(|n| list.members.iter().find(|x| x.name == n).cloned()).ok_or_else(|| {
        Error::Refused(format!(
            "the manifest's member {:?} is not in the cluster's member list",
            m.name().unwrap_or("")
        ))
    })?;
    let endpoint = m
        .loopback_client_url()
        .or_else(|| me.client_urls.first().cloned())
        .ok_or_else(|| Error::Refused(format!("member {} has no client URL", me.name)))?;
    Ok((me, endpoint))
}

/// The gate: every failed check blocks unless forced by name; the flags the new manifest fixes
/// do not block. Returns (forced, blocking).
fn gate(check: &UpgradeCheck, flag_changes: &[FlagChange], force: &[String]) -> (Vec<String>, Vec<&'static str>) {
    let mut forced = Vec::new();
    let mut blocking = Vec::new();
    for c in check.checks.iter().filter(|c| c.status == Status::Fail) {
        if c.name == "flags" && !flag_changes.is_empty() {
            continue;
        }
        if force.iter().any(|f| f == c.name) {
            forced.push(format!("{}: {}", c.name, c.message));
        } else {
            blocking.push(c.name);
        }
    }
    (forced, blocking)
}

/// The plan's steps, as the output lists them.
fn plan_steps(plan: &NodePlan, timeout: Duration) -> Vec<String> {
    let mut steps = vec![format!("take a snapshot and verify it: {}", plan.snapshot.display())];
    if plan.leader {
        steps.push(format!("move leadership from {} to the most caught-up voter", plan.member));
    }
    steps.push(format!("keep the manifest as {}", plan.backup.display()));
    let mut swap = format!("write {} with image {}", plan.manifest.display(), plan.image_to);
    for c in &plan.flag_changes {
        match &c.to {
            Some(t) => swap.push_str(&format!("; {} → {t}", c.from)),
            None => swap.push_str(&format!("; drop {}", c.from)),
        }
    }
    steps.push(swap);
    steps.push(format!(
        "wait at most {} for {} to answer on {}, healthy and caught up with the leader; else put the original manifest back and wait for {}",
        crate::base::units::format_duration(timeout),
        plan.member,
        plan.to,
        plan.from
    ));
    steps
}

/// Plans `upgrade node`: this node's member, the gate, the new manifest.
pub async fn plan(session: &Session, opts: &NodeOptions) -> Result<NodePlan> {
    refuse_if_managed(session).await?;
    let m = session.discovery.manifest.clone().ok_or_else(|| {
        Error::Usage(
            "no static pod manifest on this node: upgrade node runs on a control-plane node (or pass --manifest PATH)"
                .into(),
        )
    })?;
    let (me, endpoint) = this_member(session, &m).await?;
    let check = check(session, &CheckOptions { to: Some(opts.to), ..CheckOptions::default() }).await?;
    let mine = check.members.iter().find(|x| x.id == me.id);
    let from = mine.and_then(|x| x.version.clone()).unwrap_or_else(|| "?".into());
    let leader = mine.is_some_and(|x| x.leader);
    let old_text = crate::base::fsio::read_bounded(&m.path, "static pod manifest", crate::base::fsio::MAX_MANIFEST)?;
    let text = String::from_utf8_lossy(&old_text).to_string();
    let image_from = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("image:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let image_to = opts.image.clone().unwrap_or_else(|| image_for(&image_from, &opts.to));
    let flag_changes = flag_changes(&m.flags, &opts.to);
    let new_text = rewrite(&text, &image_to, &flag_changes)?;
    let ts = crate::ops::restore::node::timestamp();
    let file_name = m.path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| "etcd.yaml".into());
    let backup_dir = opts.backup_dir.clone().unwrap_or_else(|| {
        m.path.parent().and_then(|d| d.parent()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
    });
    let (forced, blocking) = gate(&check, &flag_changes, &opts.force);
    let nothing_to_do = Version::parse(&from) == Some(opts.to) && image_to == image_from;
    let mut plan = NodePlan {
        member: me.name.clone(),
        member_id: me.id,
        endpoint,
        from,
        to: opts.to,
        manifest: m.path.clone(),
        image_from,
        image_to,
        flag_changes,
        backup: backup_dir.join(format!("{file_name}.bak-{ts}")),
        snapshot: opts.snapshot_dir.join(format!("etcd-{}-before-{}-{ts}.db", me.name, opts.to)),
        leader,
        timeout_seconds: opts.timeout.as_secs(),
        steps: Vec::new(),
        check,
        forced,
        nothing_to_do,
        ready: blocking.is_empty() && !nothing_to_do,
        dry_run: opts.dry_run,
        new_text,
        old_text,
    };
    plan.steps = plan_steps(&plan, opts.timeout);
    Ok(plan)
}

/// How far behind the leader a member may be and count as caught up.
const CAUGHT_UP: u64 = 1000;

/// Polls until the member at `plan.endpoint` answers on `version`, every voter is in quorum and
/// it is within [`CAUGHT_UP`] entries of the leader; `Err(last state)` at `deadline`.
async fn wait_for(
    session: &Session,
    plan: &NodePlan,
    version: &str,
    deadline: Instant,
) -> std::result::Result<(), String> {
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        match session.status_at(&plan.endpoint).await {
            Err(e) => last = format!("{} does not answer: {e}", plan.member),
            Ok(s) if s.version != version => last = format!("{} answers on {}", plan.member, s.version),
            Ok(_) => {
                let Ok(list) = session.member_list().await else { continue };
                let statuses = session.statuses(&list.members).await;
                let out: Vec<String> =
                    statuses.iter().filter(|s| !s.member.is_learner && !s.in_quorum()).map(|s| s.why_not()).collect();
                if !out.is_empty() {
                    last = format!("not every voter is in quorum: {}", out.join("; "));
                    continue;
                }
                let leader = leader_of(&statuses);
                let li = statuses
                    .iter()
                    .find(|s| Some(s.member.id) == leader)
                    .and_then(|s| s.status.as_ref().ok())
                    .map(|s| s.raft_index);
                let mine = statuses
                    .iter()
                    .find(|s| s.member.id == plan.member_id)
                    .and_then(|s| s.status.as_ref().ok())
                    .map(|s| s.raft_applied_index);
                match (li, mine) {
                    (Some(l), Some(a)) if l.saturating_sub(a) <= CAUGHT_UP => return Ok(()),
                    (Some(l), Some(a)) => last = format!("{} is {} entries behind the leader", plan.member, l - a),
                    _ => last = "no leader".into(),
                }
            }
        }
    }
    Err(last)
}

/// Step 1: a snapshot, verified.
async fn snapshot_first(
    session: &Session,
    plan: &NodePlan,
    opts: &NodeOptions,
    progress: &mut dyn FnMut(String),
) -> Result<PathBuf> {
    std::fs::create_dir_all(&opts.snapshot_dir)
        .map_err(|source| Error::Io { action: format!("create {}", opts.snapshot_dir.display()), source })?;
    progress(format!("taking a snapshot: {}", plan.snapshot.display()));
    let saved = crate::ops::snapshot::save(
        session,
        &plan.snapshot,
        &crate::ops::snapshot::SaveOptions::default(),
        &mut |_, _| {},
    )
    .await?;
    progress(format!(
        "snapshot saved and verified: revision {}, {}",
        saved.revision,
        crate::base::units::format_bytes(saved.size)
    ));
    Ok(saved.path)
}

/// Step 2: leadership away from this member, when it leads; the new leader's name.
async fn leadership_away(
    session: &Session,
    plan: &NodePlan,
    progress: &mut dyn FnMut(String),
) -> Result<Option<String>> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    if leader_of(&statuses) != Some(plan.member_id) {
        return Ok(None);
    }
    let to = crate::reach::quorum::move_leader(session, &statuses, plan.member_id).await?;
    let name =
        statuses.iter().find(|s| s.member.id == to).map(|s| s.member.display_name()).unwrap_or_else(|| member_id(to));
    progress(format!("moved leadership from {} to {name}", plan.member));
    Ok(Some(name))
}

/// Step 3: the original kept, the new manifest written whole; when it was written.
fn swap_manifest(plan: &NodePlan, progress: &mut dyn FnMut(String)) -> Result<Instant> {
    if let Some(d) = plan.backup.parent() {
        std::fs::create_dir_all(d).map_err(|source| Error::Io { action: format!("create {}", d.display()), source })?;
    }
    crate::base::fsio::write_new(&plan.backup, &plan.old_text, 0o600)?;
    progress(format!("kept the manifest as {}", plan.backup.display()));
    replace(&plan.manifest, plan.new_text.as_bytes())?;
    progress(format!(
        "wrote {} with image {}; waiting for {} on {}",
        plan.manifest.display(),
        plan.image_to,
        plan.member,
        plan.to
    ));
    Ok(Instant::now())
}

/// The members still to do after this one, then the check that confirms the cluster version.
async fn still_to_do(session: &Session, plan: &NodePlan) -> Result<Vec<String>> {
    let to = plan.to.to_string();
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    let mut next: Vec<String> = statuses
        .iter()
        .filter(|s| s.member.id != plan.member_id && s.status.as_ref().map(|x| x.version != to).unwrap_or(true))
        .map(|s| format!("on {}: kubectl etcd upgrade node --to {}", s.member.display_name(), plan.to))
        .collect();
    next.push(format!(
        "then: kubectl etcd upgrade check --to {} (the cluster version moves once every member runs {})",
        plan.to,
        plan.to.minor_str()
    ));
    Ok(next)
}

/// Step 4, failed: the original manifest back, the member followed on the old version.
async fn roll_back(
    session: &Session,
    plan: &NodePlan,
    opts: &NodeOptions,
    why: &str,
    progress: &mut dyn FnMut(String),
) -> Result<String> {
    progress(format!(
        "{} did not come back on {} within {}: {why}; putting the original manifest back",
        plan.member,
        plan.to,
        crate::base::units::format_duration(opts.timeout)
    ));
    replace(&plan.manifest, &plan.old_text)?;
    Ok(match wait_for(session, plan, &plan.from, Instant::now() + opts.timeout).await {
        Ok(()) => format!("rolled back: {} did not come back on {} ({why}); the original manifest is back and the member is healthy on {}", plan.member, plan.to, plan.from),
        Err(w2) => format!("rolled back, but {} is not healthy on {} yet ({w2}); after the new version failed: {why}. Look at its pod (crictl ps -a; crictl logs)", plan.member, plan.from),
    })
}

/// Runs the plan; `progress` gets one line per step (stderr).
pub async fn run(
    session: &Session,
    plan: NodePlan,
    opts: &NodeOptions,
    progress: &mut dyn FnMut(String),
) -> Result<NodeResult> {
    let snapshot = snapshot_first(session, &plan, opts, progress).await?;
    let leader_moved_to = leadership_away(session, &plan, progress).await?;
    let swapped = swap_manifest(&plan, progress)?;
    let waited = wait_for(session, &plan, &plan.to.to_string(), swapped + opts.timeout).await;
    let mut result = NodeResult {
        member: plan.member.clone(),
        from: plan.from.clone(),
        to: plan.to,
        upgraded: false,
        rolled_back: false,
        message: String::new(),
        snapshot: Some(snapshot),
        backup: plan.backup.clone(),
        leader_moved_to,
        seconds: None,
        next: Vec::new(),
    };
    match waited {
        Ok(()) => {
            result.upgraded = true;
            result.seconds = Some(swapped.elapsed().as_secs_f64());
            result.message = format!("{} runs {} and is caught up with the leader", plan.member, plan.to);
            result.next = still_to_do(session, &plan).await?;
        }
        Err(why) => {
            result.rolled_back = true;
            result.message = roll_back(session, &plan, opts, &why, progress).await?;
            result.next.push("kubectl etcd health".into());
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_and_rke2_are_told_apart_from_kubeadm() {
        use std::path::Path;
        let rke2 = Path::new("/var/lib/rancher/rke2/agent/pod-manifests/etcd.yaml");
        assert_eq!(managed_by(Some(rke2), None), Some("rke2"));
        let k3s_ca = Path::new("/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt");
        assert_eq!(managed_by(None, Some(k3s_ca)), Some("k3s"));
        let kubeadm = Path::new("/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(managed_by(Some(kubeadm), Some(Path::new("/etc/kubernetes/pki/etcd/ca.crt"))), None);
        assert_eq!(managed_by(None, Some(Path::new("/etc/kubernetes/pki/etcd/ca.crt"))), None);
        let e = managed_refusal("k3s", Some("3.5.13")).to_string();
        assert!(e.contains("etcd here (running 3.5.13) comes with k3s"), "{e}");
        assert!(e.contains("upgrade k3s itself") && e.contains("https://docs.k3s.io/upgrades/manual"), "{e}");
        let e = managed_refusal("rke2", None).to_string();
        assert!(e.contains("overwritten at the next start of rke2-server"), "{e}");
    }

    const MANIFEST: &str = "spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --enable-v2=true\n    - --experimental-initial-corrupt-check=true\n    - --experimental-compaction-batch-limit=1000\n    image: registry.k8s.io/etcd:3.5.1-0\n    imagePullPolicy: IfNotPresent\n";

    #[test]
    fn the_image_keeps_its_repository() {
        let v = Version::parse("3.5.33").unwrap();
        assert_eq!(image_for("registry.k8s.io/etcd:3.5.1-0", &v), "registry.k8s.io/etcd:3.5.33-0");
        assert_eq!(image_for("reg.local:5000/etcd:3.5.1-0", &v), "reg.local:5000/etcd:3.5.33-0");
        assert_eq!(image_for("reg.local:5000/etcd", &v), "reg.local:5000/etcd:3.5.33-0");
        assert_eq!(image_for("registry.k8s.io/etcd:3.5.1-0@sha256:abc", &v), "registry.k8s.io/etcd:3.5.33-0");
    }

    #[test]
    fn removed_flags_are_dropped_or_renamed_and_nothing_else_changes() {
        let m = crate::reach::discovery::Manifest::parse(Path::new("/x"), MANIFEST).unwrap();
        let to36 = Version::parse("3.6.14").unwrap();
        let c = flag_changes(&m.flags, &to36);
        assert_eq!(c.len(), 1, "3.6 removes --enable-v2 only: {c:?}");
        let t = rewrite(MANIFEST, "registry.k8s.io/etcd:3.6.14-0", &c).unwrap();
        assert!(!t.contains("enable-v2") && t.contains("image: registry.k8s.io/etcd:3.6.14-0"), "{t}");
        assert!(t.contains("--experimental-initial-corrupt-check=true"));
        assert_eq!(t.lines().count(), MANIFEST.lines().count() - 1);
        let to37 = Version::parse("3.7.1").unwrap();
        let c = flag_changes(&m.flags, &to37);
        let t = rewrite(MANIFEST, "registry.k8s.io/etcd:3.7.1-0", &c).unwrap();
        assert!(t.contains("- --feature-gates=InitialCorruptCheck=true"), "{t}");
        assert!(t.contains("- --compaction-batch-limit=1000") && !t.contains("experimental"), "{t}");
        let same = rewrite(MANIFEST, "registry.k8s.io/etcd:3.5.1-0", &[]).unwrap();
        assert_eq!(same, MANIFEST, "no change: byte-identical");
    }

    #[test]
    fn replace_is_whole_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etcd.yaml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        replace(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "no .part left");
    }
}
