//! Membership operations with safety checks: add a learner, follow its catch-up, promote it the
//! moment etcd allows, remove members without losing quorum, replace a member.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::units::member_id;
use crate::error::{Error, Result};
use crate::reach::cluster::{find_member, Member, MemberList, Session};
use crate::reach::conn::{call, TransportError};
use crate::reach::quorum::{leader_of, MemberStatus};
use crate::reach::status::learner_readiness;
use crate::reach::url::{EtcdUrl, InitialCluster};

/// etcd's answer while a learner is behind.
pub const NOT_IN_SYNC: &str = "can only promote a learner member which is in sync with leader";
/// etcd's answer to a second learner.
pub const TOO_MANY_LEARNERS: &str = "too many learner members in cluster";

/// The settings the new member must start with.
#[derive(Debug, Clone, Serialize)]
pub struct JoinSettings {
    /// `--name`.
    pub name: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: String,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: String,
}

impl JoinSettings {
    /// As etcd flags, one per line.
    pub fn flags(&self) -> String {
        format!(
            "--name={}\n--initial-cluster={}\n--initial-cluster-state={}\n--initial-advertise-peer-urls={}\n",
            self.name, self.initial_cluster, self.initial_cluster_state, self.initial_advertise_peer_urls
        )
    }
}

/// `--initial-cluster` for a cluster that will contain `members` (in etcd's order), naming the
/// member `new_id` as `new_name` (as `etcdctl member add` prints it).
pub fn initial_cluster(
    members: &[Member],
    new_id: Option<u64>,
    new_name: &str,
    new_peer_urls: &[String],
) -> InitialCluster {
    let mut ic = InitialCluster::default();
    for m in members {
        ic.push(if Some(m.id) == new_id { new_name } else { m.name.as_str() }, &m.peer_urls);
    }
    if new_id.is_none() {
        ic.push(new_name, new_peer_urls);
    }
    ic
}

/// What `learner add` does with the new member's manifest.
#[derive(Debug, Clone, Default)]
pub struct ManifestOut {
    /// `--print-manifest`.
    pub print: bool,
    /// `--write-manifest PATH`.
    pub write: Option<std::path::PathBuf>,
}

/// The result of `learner add`.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// The new member's ID (`None` in a dry run).
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub id: Option<u64>,
    /// True when the learner already existed with these URLs (nothing was changed).
    pub already_existed: bool,
    /// True in a dry run.
    pub dry_run: bool,
    /// What the new member must start with.
    pub settings: JoinSettings,
    /// Warnings from the pre-checks that `--force` overrode.
    pub forced: Vec<String>,
    /// The new member's static pod manifest (`--print-manifest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Where the manifest was written (`--write-manifest`; in a dry run, where it would be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_written: Option<std::path::PathBuf>,
    /// This command promotes the learner itself (`add --promote`, `replace`): the text then
    /// does not tell the user to.
    #[serde(skip)]
    pub promote_follows: bool,
    /// `--promote`: the promotion that followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<Promoted>,
}

fn same_urls(a: &[String], b: &[String]) -> bool {
    let mut a: Vec<&str> = a.iter().map(|s| s.trim_end_matches('/')).collect();
    let mut b: Vec<&str> = b.iter().map(|s| s.trim_end_matches('/')).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn describe(m: &Member) -> String {
    let state = if m.name.is_empty() { "never started".to_string() } else { format!("named {}", m.name) };
    format!("{} (peer URLs {}, {state})", member_id(m.id), m.peer_urls.join(","))
}

/// Voter health pre-check: every voter is in the working quorum ([`crate::reach::quorum`]) and a leader
/// exists. Returns the problems.
pub fn voter_problems(statuses: &[MemberStatus]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in statuses.iter().filter(|s| !s.member.is_learner) {
        match &s.status {
            Err(e) => problems.push(format!(
                "voter {} ({}) does not answer: {}",
                s.member.display_name(),
                member_id(s.member.id),
                e.class.short()
            )),
            Ok(_) if !s.in_quorum() => problems.push(format!("voter {} is not in quorum", s.why_not())),
            Ok(_) => {}
        }
    }
    match leader_of(statuses) {
        None => problems.push("no leader: the cluster has no quorum or is electing".into()),
        Some(l) if !statuses.iter().any(|s| s.member.id == l && s.in_quorum()) => {
            problems.push(format!("the leader {} does not answer", member_id(l)))
        }
        _ => {}
    }
    problems
}

/// Options of `learner add`.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// The new member's name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Override the voter health pre-check.
    pub force: bool,
    /// Change nothing; print the plan.
    pub dry_run: bool,
}

/// Checks new peer URLs against the cluster: the scheme its peers use (a plain http peer can
/// never join a cluster whose peers speak TLS, nor the reverse), and no client URL of a member.
pub fn check_peer_urls_against(new: &[String], members: &[Member]) -> Result<()> {
    let schemes: std::collections::BTreeSet<&str> = members
        .iter()
        .flat_map(|m| m.peer_urls.iter())
        .filter_map(|u| EtcdUrl::parse(u).ok().map(|u| u.scheme()))
        .collect();
    for u in new {
        let Ok(url) = EtcdUrl::parse(u) else { continue };
        let scheme = url.scheme();
        if schemes.len() == 1 && !schemes.contains(scheme) {
            let theirs = schemes.iter().next().copied().unwrap_or_default();
            return Err(Error::InvalidValue {
                what: "--peer-urls".into(),
                value: u.clone(),
                reason: format!(
                    "the cluster's peers use {theirs}://, so a {scheme}:// member could never join; use {theirs}://{}",
                    u.split_once("://").map(|(_, r)| r).unwrap_or(u)
                ),
            });
        }
        if let Some(m) =
            members.iter().find(|m| m.client_urls.iter().any(|c| EtcdUrl::parse(c).is_ok_and(|c| c.same_socket(&url))))
        {
            return Err(Error::InvalidValue {
                what: "--peer-urls".into(),
                value: u.clone(),
                reason: format!(
                    "it is a client URL of member {}; peers listen on their own port (2380 by convention)",
                    describe(m)
                ),
            });
        }
    }
    Ok(())
}

/// How long a started learner may fail to answer before `promote` gives up on it.
pub const LEARNER_SILENT_LIMIT: Duration = Duration::from_secs(10);

/// `learner add` whole: the manifest's preconditions checked before anything changes in the
/// cluster (a manifest that cannot be written must not leave a learner behind that nothing
/// starts), the learner added, its static pod manifest printed or published (whole or not at
/// all), `on_added` told, then with `promote` the wait and the promotion, carried in
/// [`Added::promoted`].
pub async fn add_learner(
    session: &Session,
    opts: &AddOptions,
    manifest: &ManifestOut,
    promote: Option<Duration>,
    on_added: &mut dyn FnMut(&Added) -> Result<()>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Added> {
    if let Some(path) = &manifest.write {
        // Before anything changes in the cluster: a manifest that cannot be written must not
        // leave a learner behind that nothing starts.
        if session.discovery.manifest.is_none() {
            return Err(Error::Usage("--write-manifest needs this node's static pod manifest: pass --manifest".into()));
        }
        if path.exists() {
            return Err(Error::Refused(format!(
                "{} already exists: move it aside first (--write-manifest never overwrites)",
                path.display()
            )));
        }
    }
    let mut added = add(session, opts).await?;
    if manifest.print || manifest.write.is_some() {
        added.manifest = Some(new_member_manifest(session, &added).ok_or_else(|| {
            Error::Usage("--print-manifest needs this node's static pod manifest: pass --manifest".into())
        })?);
    }
    if let (Some(path), Some(text)) = (&manifest.write, &added.manifest) {
        if !opts.dry_run {
            crate::base::fsio::publish(path, text.as_bytes(), 0o600)?;
        }
        added.manifest_written = Some(path.clone());
        if !manifest.print {
            added.manifest = None;
        }
    }
    added.promote_follows = promote.is_some() && !opts.dry_run;
    on_added(&added)?;
    let Some(timeout) = promote.filter(|_| added.promote_follows) else { return Ok(added) };
    let key = added.id.map(member_id).unwrap_or(added.settings.name.clone());
    let opts = PromoteOptions { timeout, ..Default::default() };
    added.promoted = Some(self::promote(session, Some(&key), &opts, progress).await?);
    Ok(added)
}

/// `learner add`'s arguments, before the cluster is asked anything.
fn check_add_input(opts: &AddOptions) -> Result<()> {
    if opts.peer_urls.is_empty() {
        return Err(Error::Usage("--peer-urls is required, such as https://10.0.0.4:2380".into()));
    }
    for u in &opts.peer_urls {
        EtcdUrl::peer(u, "--peer-urls")?;
    }
    if opts.name.trim().is_empty() {
        return Err(Error::Usage("the member name must not be empty".into()));
    }
    Ok(())
}

/// The same learner added before (an add is idempotent), or a refusal: a learner already
/// there (etcd allows one), a peer URL or a name already used.
fn same_learner_or_conflict(members: &[Member], opts: &AddOptions) -> Result<Option<Added>> {
    check_peer_urls_against(&opts.peer_urls, members)?;
    // Idempotence: the same learner, added before.
    if let Some(m) = members.iter().find(|m| m.is_learner && same_urls(&m.peer_urls, &opts.peer_urls)) {
        if m.name.is_empty() || m.name == opts.name {
            return Ok(Some(Added {
                id: Some(m.id),
                already_existed: true,
                dry_run: opts.dry_run,
                settings: settings_for(members, Some(m.id), &opts.name, &opts.peer_urls),
                forced: Vec::new(),
                manifest: None,
                manifest_written: None,
                promote_follows: false,
                promoted: None,
            }));
        }
    }
    if let Some(l) = members.iter().find(|m| m.is_learner) {
        return Err(Error::Refused(format!(
            "the cluster already has a learner: {}; etcd allows one learner at a time (\"{TOO_MANY_LEARNERS}\"): promote it (kubectl etcd learner promote {id}) or remove it (kubectl etcd learner remove {id})",
            describe(l),
            id = member_id(l.id)
        )));
    }
    for m in members {
        if let Some(u) = m
            .peer_urls
            .iter()
            .find(|u| opts.peer_urls.iter().any(|n| n.trim_end_matches('/') == u.trim_end_matches('/')))
        {
            return Err(Error::Refused(format!("peer URL {u} is already used by member {}", describe(m))));
        }
        if !m.name.is_empty() && m.name == opts.name {
            return Err(Error::Refused(format!(
                "a member named {:?} already exists: {}; choose another --name or remove it first",
                opts.name,
                describe(m)
            )));
        }
    }
    Ok(None)
}

/// `learner add`.
pub async fn add(session: &Session, opts: &AddOptions) -> Result<Added> {
    check_add_input(opts)?;
    let list = session.member_list().await?;
    if let Some(same) = same_learner_or_conflict(&list.members, opts)? {
        return Ok(same);
    }
    let statuses = session.statuses(&list.members).await;
    let problems = voter_problems(&statuses);
    let mut forced = Vec::new();
    if !problems.is_empty() {
        if !opts.force {
            return Err(Error::Refused(format!(
                "refusing to add a member to a degraded cluster: {}; fix the cluster first, or pass --force",
                problems.join("; ")
            )));
        }
        forced = problems;
    }
    if opts.dry_run {
        return Ok(Added {
            id: None,
            already_existed: false,
            dry_run: true,
            settings: settings_for(&list.members, None, &opts.name, &opts.peer_urls),
            forced,
            manifest: None,
            manifest_written: None,
            promote_follows: false,
            promoted: None,
        });
    }
    let (client, url) = session.any_client(&statuses, None).await?;
    let all_voters_up = !statuses.iter().any(|s| !s.member.is_learner && !s.in_quorum());
    let timeout = session.command_timeout();
    let added = through_unhealthy(all_voters_up, || {
        let (mut c, url, peers) = (client.clone(), url.clone(), opts.peer_urls.clone());
        async move {
            let add = c.member_add(peers, Some(etcd_client::MemberAddOptions::new().with_is_learner()));
            call(&url, "member add", timeout, add).await
        }
    })
    .await;
    let resp = match added {
        Ok(r) => r,
        Err(e) if is_unhealthy(&e) => {
            return Err(Error::Refused(format!(
                "etcd refused the member add: \"etcdserver: unhealthy cluster\": the member handling it is not connected to every voter{}; etcd's --strict-reconfig-check (on by default) forbids membership changes then: bring the missing voter back or remove it first",
                if forced.is_empty() { String::new() } else { format!(" ({})", forced.join("; ")) }
            )))
        }
        Err(e) => return Err(add_error(e)),
    };
    let id = resp.member().map(|m| m.id()).unwrap_or(0);
    crate::limits::check_members(&url, resp.member_list().len())?;
    let members: Vec<Member> = resp.member_list().iter().map(Member::from).collect();
    Ok(Added {
        id: Some(id),
        already_existed: false,
        dry_run: false,
        settings: settings_for(&members, Some(id), &opts.name, &opts.peer_urls),
        forced,
        manifest: None,
        manifest_written: None,
        promote_follows: false,
        promoted: None,
    })
}

/// How long a membership change waits through etcd's "unhealthy cluster".
const UNHEALTHY_WAIT: Duration = Duration::from_secs(15);

/// Runs a membership change, again every 500 ms for at most [`UNHEALTHY_WAIT`] while etcd
/// refuses it as "unhealthy cluster" and `wait` is true: etcd's `--strict-reconfig-check` (on
/// by default) refuses membership changes until the member handling them has been connected to
/// every voter for 5 s, which passes by itself right after a restart and never with a voter
/// down. The last refusal is returned as it is, for the caller's message.
async fn through_unhealthy<T, F, Fut>(wait: bool, mut change: F) -> std::result::Result<T, TransportError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, TransportError>>,
{
    let start = Instant::now();
    loop {
        match change().await {
            Err(e) if wait && is_unhealthy(&e) && start.elapsed() < UNHEALTHY_WAIT => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

fn is_unhealthy(e: &TransportError) -> bool {
    matches!(&e.class, crate::reach::conn::FailureClass::Rpc(m) if m.contains("unhealthy cluster"))
}

fn add_error(e: TransportError) -> Error {
    if let crate::reach::conn::FailureClass::Rpc(m) = &e.class {
        if m.contains(TOO_MANY_LEARNERS) {
            return Error::Refused(format!(
                "etcd refused: {m}: remove or promote the existing learner first (kubectl etcd learner status)"
            ));
        }
        if m.contains("Peer URLs already exists") || m.contains("peerURL exists") {
            return Error::Refused(format!("etcd refused: {m}"));
        }
    }
    Error::Transport(e)
}

fn settings_for(members: &[Member], id: Option<u64>, name: &str, peer_urls: &[String]) -> JoinSettings {
    JoinSettings {
        name: name.to_string(),
        initial_cluster: initial_cluster(members, id, name, peer_urls).to_string(),
        initial_cluster_state: "existing".into(),
        initial_advertise_peer_urls: peer_urls.join(","),
    }
}

/// A learner's catch-up progress.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The learner.
    pub member: Member,
    /// Its client URL, once started.
    pub started: bool,
    /// Its last log index.
    pub raft_index: Option<u64>,
    /// Its applied index.
    pub applied: Option<u64>,
    /// The leader's last log index.
    pub leader_index: Option<u64>,
    /// Percent of the leader's log the learner holds.
    pub percent: Option<f64>,
    /// Catch-up rate in entries per second (from two samples).
    pub rate: Option<f64>,
    /// Estimated time to reach the promotable point.
    #[serde(rename = "eta_ms", with = "crate::base::units::duration_ms::option")]
    pub eta: Option<Duration>,
    /// Whether etcd would accept a promote now (≥ 90 % of the leader's log).
    pub promotable: bool,
    /// Why not, when it did not answer.
    pub error: Option<String>,
}

/// One sample of every learner's progress (or of `only`).
pub async fn sample(session: &Session, only: Option<&str>) -> Result<(MemberList, Vec<Progress>)> {
    let list = session.member_list().await?;
    let learners: Vec<Member> = match only {
        Some(key) => {
            let m = find_member(&list.members, key)?;
            if !m.is_learner {
                return Err(Error::Refused(format!(
                    "member {} is already a voting member, not a learner",
                    describe(m)
                )));
            }
            vec![m.clone()]
        }
        None => list.members.iter().filter(|m| m.is_learner).cloned().collect(),
    };
    let statuses = session.statuses(&list.members).await;
    let leader_id = leader_of(&statuses);
    let leader_index = statuses
        .iter()
        .find(|s| Some(s.member.id) == leader_id)
        .and_then(|s| s.status.as_ref().ok())
        .map(|s| s.raft_index);
    let out = learners
        .into_iter()
        .map(|m| {
            let st = statuses.iter().find(|s| s.member.id == m.id);
            let (raft_index, applied, error) = match st.map(|s| &s.status) {
                Some(Ok(s)) => (Some(s.raft_index), Some(s.raft_applied_index), None),
                Some(Err(e)) => (None, None, Some(e.class.short())),
                None => (None, None, None),
            };
            let ready = learner_readiness(raft_index, leader_index);
            Progress {
                started: !m.client_urls.is_empty(),
                member: m,
                raft_index,
                applied,
                leader_index,
                percent: ready.percent,
                rate: None,
                eta: None,
                promotable: ready.promotable,
                error,
            }
        })
        .collect();
    Ok((list, out))
}

/// Fills rate and ETA from an earlier sample taken `dt` before.
pub fn with_rate(mut now: Vec<Progress>, before: &[Progress], dt: Duration) -> Vec<Progress> {
    for p in now.iter_mut() {
        let Some(b) = before.iter().find(|b| b.member.id == p.member.id) else { continue };
        if let (Some(a1), Some(a0)) = (p.raft_index, b.raft_index) {
            let rate = (a1.saturating_sub(a0)) as f64 / dt.as_secs_f64().max(0.001);
            p.rate = Some(rate);
            if let Some(target) = learner_readiness(Some(a1), p.leader_index).target {
                // Nothing to wait for once the promotable point is reached.
                p.eta = if a1 >= target {
                    None
                } else if rate > 0.0 {
                    Some(Duration::from_secs_f64((target - a1) as f64 / rate))
                } else {
                    None
                };
            }
        }
    }
    now
}

/// The result of a promote.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The member.
    pub member: Member,
    /// How long the wait took.
    #[serde(rename = "waited_ms", with = "crate::base::units::duration_ms")]
    pub waited: Duration,
    /// Promote attempts made.
    pub attempts: u32,
    /// Time from the learner first being seen promotable to the accepted promote.
    #[serde(rename = "since_in_sync_ms", with = "crate::base::units::duration_ms::option")]
    pub since_in_sync: Option<Duration>,
}

/// Options of `learner promote`.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Try once.
    pub no_wait: bool,
    /// Time between attempts (500 ms: etcd answers quickly, and the promote should follow the
    /// learner reaching sync closely).
    pub interval: Duration,
}

impl Default for PromoteOptions {
    fn default() -> Self {
        PromoteOptions { timeout: Duration::from_secs(600), no_wait: false, interval: Duration::from_millis(500) }
    }
}

fn not_started_message(m: &Member, list: &[Member]) -> String {
    let settings = settings_for(list, Some(m.id), "<NAME>", &m.peer_urls);
    format!(
        "learner {} has never started, so it can never catch up: start etcd on the new node with --initial-cluster-state=existing --initial-cluster={} --initial-advertise-peer-urls={}",
        describe(m),
        settings.initial_cluster,
        settings.initial_advertise_peer_urls
    )
}

/// One promote through a voter in quorum: `Ok(true)` promoted, `Ok(false)` etcd said the learner
/// is not in sync yet (worth another try); every other answer ends the wait.
async fn attempt_promote(
    session: &Session,
    m: &Member,
    list: &[Member],
    p: Option<&Progress>,
    no_wait: bool,
) -> Result<bool> {
    let statuses = session.statuses(list).await;
    let (mut client, url) = session.any_client(&statuses, Some(m.id)).await?;
    let rpc = |e: &crate::reach::conn::TransportError, what: &str| matches!(&e.class, crate::reach::conn::FailureClass::Rpc(msg) if msg.contains(what));
    match call(&url, "member promote", session.command_timeout(), client.member_promote(m.id)).await {
        Ok(_) => Ok(true),
        Err(e) if rpc(&e, NOT_IN_SYNC) && no_wait => Err(Error::Refused(format!(
            "etcd refused: {NOT_IN_SYNC} ({}); run without --no-wait to wait for it",
            p.and_then(|p| p.percent).map(|x| format!("{x:.0}% of the leader's log")).unwrap_or_default()
        ))),
        Err(e) if rpc(&e, NOT_IN_SYNC) => Ok(false),
        Err(e) if rpc(&e, "can only promote a learner member") => {
            Err(Error::Refused(format!("member {} is already a voting member: nothing to promote", describe(m))))
        }
        Err(e) if rpc(&e, "member not found") => {
            Err(Error::Refused(format!("member {} was removed while waiting", member_id(m.id))))
        }
        Err(e) => Err(Error::Transport(e)),
    }
}

/// The end of promote's wait: where the learner stood.
fn promote_timed_out(opts: &PromoteOptions, p: Option<&Progress>, current: &Member, members: &[Member]) -> Error {
    let why = match p {
        Some(p) if !p.started => not_started_message(current, members),
        Some(p) => format!(
            "learner {} holds {} of the leader's log",
            describe(current),
            p.percent.map(|x| format!("{x:.1}%")).unwrap_or_else(|| "an unknown share".into())
        ),
        None => String::new(),
    };
    Error::Refused(format!(
        "timed out after {} waiting to promote: {why}",
        crate::base::units::format_duration(opts.timeout)
    ))
}

/// `learner promote`: waits until etcd accepts the promote, then promotes. Retries only on
/// etcd's "not in sync" answer. `progress` is called after every sample.
pub async fn promote(
    session: &Session,
    key: Option<&str>,
    opts: &PromoteOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Promoted> {
    let start = Instant::now();
    let list = session.member_list().await?;
    let m = match key {
        Some(key) => find_member(&list.members, key)?.clone(),
        None => crate::reach::cluster::only_learner(&list.members)?.clone(),
    };
    if !m.is_learner {
        return Err(Error::Refused(format!("member {} is already a voting member: nothing to promote", describe(&m))));
    }
    let mut attempts = 0;
    let mut first_in_sync: Option<Instant> = None;
    let mut last: Option<(Instant, Vec<Progress>)> = None;
    let mut silent_since: Option<Instant> = None;
    loop {
        // Where is the learner? (also refreshes "never started")
        let (list_now, samples) = sample(session, Some(&member_id(m.id))).await?;
        let now = Instant::now();
        let samples = match &last {
            Some((t, before)) => with_rate(samples, before, now - *t),
            None => samples,
        };
        let p = samples.first().cloned();
        if let Some(p) = &p {
            progress(p);
            if p.promotable && first_in_sync.is_none() {
                first_in_sync = Some(now);
            }
        }
        last = Some((now, samples));
        let current = list_now.members.iter().find(|x| x.id == m.id).cloned().unwrap_or(m.clone());
        // A started learner that stops answering will not catch up: say so instead of waiting
        // out the whole timeout.
        match p.as_ref().filter(|p| p.started).and_then(|p| p.error.clone()) {
            Some(err) => {
                let since = *silent_since.get_or_insert(now);
                if now - since >= LEARNER_SILENT_LIMIT && !opts.no_wait {
                    return Err(Error::Refused(format!(
                        "learner {} stopped answering ({err}) {} ago: it is down and cannot catch up; start its etcd again and rerun promote, or remove it (kubectl etcd learner remove {})",
                        describe(&current),
                        crate::base::units::format_duration(now - since),
                        member_id(m.id)
                    )));
                }
            }
            None => silent_since = None,
        }
        if current.client_urls.is_empty() {
            if opts.no_wait {
                return Err(Error::Refused(not_started_message(&current, &list_now.members)));
            }
        } else {
            attempts += 1;
            if attempt_promote(session, &m, &list_now.members, p.as_ref(), opts.no_wait).await? {
                return Ok(Promoted {
                    member: current,
                    waited: start.elapsed(),
                    attempts,
                    since_in_sync: first_in_sync.map(|t| t.elapsed()),
                });
            }
        }
        if start.elapsed() + opts.interval > opts.timeout {
            return Err(promote_timed_out(opts, p.as_ref(), &current, &list_now.members));
        }
        tokio::time::sleep(opts.interval).await;
    }
}

/// Options of `learner remove`.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Override the quorum and leader checks.
    pub force: bool,
    /// Move leadership away first when removing the leader.
    pub move_leader: bool,
    /// Change nothing; print the plan.
    pub dry_run: bool,
}

/// The result of a remove.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The member removed (or to be removed in a dry run).
    pub member: Member,
    /// True in a dry run.
    pub dry_run: bool,
    /// Where leadership was moved first, if it was.
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub moved_leader_to: Option<u64>,
    /// The plan / what was done, step by step.
    pub steps: Vec<String>,
    /// What the removed node must do next.
    pub next_steps: Vec<String>,
}

/// What a removed node must do, so that it does not loop with "rejected the stream from peer …
/// since it was removed". The data dir is the member's own when this node's manifest is that
/// member's, else named by its flag (kubeadm's default given as an example).
pub fn removed_node_next_steps(m: &Member, session: &Session) -> Vec<String> {
    let who = if m.name.is_empty() { format!("the node of {}", member_id(m.id)) } else { format!("node {}", m.name) };
    let manifest = session.discovery.manifest.as_ref().filter(|mf| !m.name.is_empty() && mf.name() == Some(&m.name));
    let dir = manifest.and_then(|mf| mf.flag("data-dir").map(str::to_string));
    let mv = match &dir {
        Some(d) => format!("mv {d} {d}.removed-$(date +%Y%m%d%H%M%S)"),
        None => "mv DATA_DIR DATA_DIR.removed-$(date +%Y%m%d%H%M%S), with DATA_DIR its etcd's --data-dir (kubeadm: /var/lib/etcd)".to_string(),
    };
    vec![
        format!("on {who}: stop etcd: move /etc/kubernetes/manifests/etcd.yaml out of the manifests folder (kubeadm), or stop the etcd service; left running, it keeps trying to rejoin and its peers log \"rejected the stream from peer ... since it was removed\""),
        format!("on {who}: move its data dir aside, never reuse it: {mv}"),
    ]
}

/// `learner remove`.
pub async fn remove(session: &Session, key: &str, opts: &RemoveOptions) -> Result<Removed> {
    let list = session.member_list().await?;
    let m = find_member(&list.members, key)?.clone();
    let statuses = session.statuses(&list.members).await;
    let mut steps = Vec::new();
    let mut moved = None;
    if !m.is_learner {
        let voters: Vec<&MemberStatus> = statuses.iter().filter(|s| !s.member.is_learner).collect();
        let remaining: Vec<&&MemberStatus> = voters.iter().filter(|s| s.member.id != m.id).collect();
        // Only voters in the working quorum count: one that answers clients but has no leader,
        // or is cut off, would not vote for the cluster that is left.
        let in_quorum = remaining.iter().filter(|s| s.in_quorum()).count();
        let needed = remaining.len() / 2 + 1;
        if remaining.is_empty() {
            return Err(Error::Refused(format!(
                "member {} is the only voter: removing it would destroy the cluster",
                describe(&m)
            )));
        }
        if in_quorum < needed {
            let out: Vec<String> = remaining.iter().filter(|s| !s.in_quorum()).map(|s| s.why_not()).collect();
            let msg = format!(
                "refusing to remove voter {}: the {} remaining voters need {needed} in quorum; {in_quorum} {} (not in quorum: {})",
                describe(&m),
                remaining.len(),
                if in_quorum == 1 { "is" } else { "are" },
                out.join("; ")
            );
            if !opts.force {
                return Err(Error::Refused(format!("{msg}; bring them back first, or pass --force")));
            }
            steps.push(format!("forced: {msg}"));
        }
        if leader_of(&statuses) == Some(m.id) {
            if opts.move_leader {
                let target = crate::reach::quorum::successor(&statuses, m.id)?;
                steps.push(format!("move leadership from {} to {}", m.display_name(), target.display_name()));
                if !opts.dry_run {
                    crate::reach::quorum::move_leader(session, &statuses, m.id).await?;
                }
                moved = Some(target.id);
            } else if !opts.force {
                return Err(Error::Refused(format!(
                    "refusing to remove voter {}: it is the leader; move leadership first (etcdctl move-leader) or pass --move-leader",
                    describe(&m)
                )));
            } else {
                steps.push("forced: removing the leader (an election follows)".into());
            }
        }
    }
    steps.push(format!("remove {} {}", if m.is_learner { "learner" } else { "voter" }, describe(&m)));
    if !opts.dry_run {
        let statuses = session.statuses(&list.members).await;
        let (client, url) = session.any_client(&statuses, Some(m.id)).await?;
        let timeout = session.command_timeout();
        let removed = through_unhealthy(true, || {
            let (mut c, url, id) = (client.clone(), url.clone(), m.id);
            async move { call(&url, "member remove", timeout, c.member_remove(id)).await }
        })
        .await;
        match removed {
            Ok(_) => {}
            Err(e) if is_unhealthy(&e) => {
                return Err(Error::Refused(format!(
                    "etcd refused the member remove: \"etcdserver: unhealthy cluster\" (removing {} would leave too few connected voters); bring the missing voters back first",
                    describe(&m)
                )))
            }
            Err(e) => return Err(Error::Transport(e)),
        }
    }
    Ok(Removed {
        next_steps: removed_node_next_steps(&m, session),
        member: m,
        dry_run: opts.dry_run,
        moved_leader_to: moved,
        steps,
    })
}

/// Every learner's progress (or one's): the result of `learner status`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Learners(pub Vec<Progress>);

/// `learner status`: samples every learner (or one), with rate and ETA from the previous
/// sample.
#[derive(Debug, Default)]
pub struct Follower {
    only: Option<String>,
    prev: Option<(Instant, Vec<Progress>)>,
}

impl Follower {
    /// Follows every learner, or `only`.
    pub fn new(only: Option<String>) -> Follower {
        Follower { only, prev: None }
    }

    /// One round. The first round of a one-shot run (`again`) takes a second sample 500 ms
    /// later while a learner catches up, for its rate and ETA.
    pub async fn round(&mut self, session: &Session, again: bool) -> Result<Learners> {
        let only = self.only.as_deref();
        let (_, now) = sample(session, only).await?;
        let t = Instant::now();
        let rows = match &self.prev {
            Some((t0, before)) => with_rate(now, before, t - *t0),
            None if again && now.iter().any(|p| p.started && !p.promotable) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (_, later) = sample(session, only).await?;
                with_rate(later, &now, t.elapsed())
            }
            None => now,
        };
        self.prev = Some((t, rows.clone()));
        Ok(Learners(rows))
    }
}

/// The new member's static pod manifest, derived from this node's (`None` without one).
pub fn new_member_manifest(session: &Session, a: &Added) -> Option<String> {
    let m = session.discovery.manifest.as_ref()?;
    let text =
        crate::base::fsio::read_bounded_string(&m.path, "static pod manifest", crate::base::fsio::MAX_MANIFEST).ok()?;
    let first = |urls: &str| urls.split(',').next().and_then(crate::reach::url::host).unwrap_or_default();
    let old_host = m.flag("initial-advertise-peer-urls").map(first).unwrap_or_default();
    let new_host = first(&a.settings.initial_advertise_peer_urls);
    let flags = crate::reach::discovery::manifest::NewMemberFlags {
        name: &a.settings.name,
        initial_cluster: &a.settings.initial_cluster,
        initial_advertise_peer_urls: &a.settings.initial_advertise_peer_urls,
    };
    Some(crate::reach::discovery::manifest::for_new_member(
        &text,
        m.name().unwrap_or_default(),
        &old_host,
        &new_host,
        &flags,
    ))
}

/// Options of `learner replace`.
#[derive(Debug, Clone)]
pub struct ReplaceOptions {
    /// The member to replace (name or ID).
    pub old: String,
    /// The new member's name.
    pub name: String,
    /// The new member's peer URLs.
    pub peer_urls: Vec<String>,
    /// How long to wait for the new member to start and catch up.
    pub timeout: Duration,
    /// Change nothing; return the plan.
    pub dry_run: bool,
}

/// The result of `learner replace` (or its plan).
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    /// True in a dry run.
    pub dry_run: bool,
    /// The plan, or what was done.
    pub steps: Vec<String>,
    /// What the old member's node must do next.
    pub next_steps: Vec<String>,
    /// What the new member must start with.
    pub settings: JoinSettings,
}

/// `learner replace`: add the new member as a learner, wait for it and promote it, then
/// remove the old one (moving leadership away first). `added` is told the new learner's
/// settings as soon as it is added (the user must start it with them); `progress` follows its
/// catch-up. A failure after the first change says what was done and what is left, and keeps
/// the cause's exit code.
pub async fn replace(
    session: &Session,
    opts: &ReplaceOptions,
    added: &mut dyn FnMut(&Added) -> Result<()>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Replaced> {
    let list = session.member_list().await?;
    let old_m = find_member(&list.members, &opts.old)?.clone();
    if old_m.is_learner {
        return Err(Error::Refused(format!(
            "{} is a learner: remove it with kubectl etcd learner remove",
            old_m.display_name()
        )));
    }
    let old_ref = member_id(old_m.id);
    let name = opts.name.as_str();
    let mut done: Vec<String> = Vec::new();
    let fail = |done: &[String], e: Error, next: String| -> Error {
        let steps = if done.is_empty() { "nothing".to_string() } else { done.join("; ") };
        Error::Stopped { what: "replace", cause: Box::new(e), done: format!("done so far: {steps}"), next }
    };
    let add_opts =
        AddOptions { name: name.to_string(), peer_urls: opts.peer_urls.clone(), force: false, dry_run: opts.dry_run };
    let mut new = add(session, &add_opts)
        .await
        .map_err(|e| fail(&done, e, "fix the cause and run the replace again".to_string()))?;
    if opts.dry_run {
        return Ok(Replaced {
            dry_run: true,
            steps: vec![
                format!("add {name} ({}) as a learner", opts.peer_urls.join(",")),
                "wait for it to start with the settings and catch up".to_string(),
                "promote it".to_string(),
                format!("move leadership away from {} if it leads", old_m.display_name()),
                format!("remove {} ({old_ref})", old_m.display_name()),
            ],
            next_steps: removed_node_next_steps(&old_m, session),
            settings: new.settings,
        });
    }
    let new_id = new.id.map(member_id).unwrap_or_else(|| name.to_string());
    done.push(format!("added learner {name} ({new_id})"));
    new.promote_follows = true;
    added(&new)?;
    let promote_opts = PromoteOptions { timeout: opts.timeout, ..Default::default() };
    let p = promote(session, Some(&new_id), &promote_opts, progress).await.map_err(|e| {
        fail(&done, e, format!("start the new member, then: kubectl etcd learner promote {new_id} && kubectl etcd learner remove {old_ref} --move-leader"))
    })?;
    done.push(format!("promoted {name} after {}", crate::base::units::format_duration(p.waited)));
    let remove_opts = RemoveOptions { force: false, move_leader: true, dry_run: false };
    let r = remove(session, &old_ref, &remove_opts)
        .await
        .map_err(|e| fail(&done, e, format!("kubectl etcd learner remove {old_ref} --move-leader")))?;
    done.push(format!("removed {} ({old_ref})", old_m.display_name()));
    Ok(Replaced { dry_run: false, steps: done, next_steps: r.next_steps, settings: new.settings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(peer: &str, client: &str) -> Member {
        Member {
            id: 1,
            name: "cp-1".into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![client.into()],
            is_learner: false,
        }
    }

    #[test]
    fn peer_urls_checked_against_the_cluster() {
        let ms = [member("https://10.0.0.1:2380", "https://10.0.0.1:2379")];
        let e = check_peer_urls_against(&["http://10.0.0.4:2380".into()], &ms).unwrap_err().to_string();
        assert!(e.contains("use https://10.0.0.4:2380"), "{e}");
        let e = check_peer_urls_against(&["https://10.0.0.1:2379".into()], &ms).unwrap_err().to_string();
        assert!(e.contains("client URL of member") && e.contains("cp-1"), "{e}");
        assert!(check_peer_urls_against(&["https://10.0.0.4:2380".into()], &ms).is_ok());
    }
}
