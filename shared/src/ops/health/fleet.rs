//! Fleet health: one health run per kubeconfig context, side by side (`kubectl etcd health
//! --all-contexts`, `--context a,b`, `--context 'prod-*'`).
//!
//! Every cluster is reached as workstation mode reaches one (discovery through its Kubernetes
//! API, members through port-forward unless `--transport` says otherwise), all of them at once,
//! at most `max_concurrent` at a time, each under its own deadline: a dead API server costs one
//! deadline, not one per cluster.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use super::{Options, Report, Status};
use crate::reach::cluster::Session;
use crate::reach::discovery::settings::Settings;

/// The default of `--max-concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 8;

/// True when a `--context` value selects several contexts: a comma-separated list or a glob
/// (`*`, `?`, `[…]`).
pub fn is_selection(context: &str) -> bool {
    context.contains([',', '*', '?', '['])
}

/// A shell-style glob: `*` any run of characters, `?` one, `[abc]`/`[a-z]`/`[!a]` one of a set.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length of the class including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!') | Some('^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((hit != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, len))) => go(&p[1 + len..], &n[1..]),
                (Some(_), Some((false, _))) | (None, _) => false,
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// The contexts `selection` names (comma-separated names and globs), in the kubeconfig's order,
/// each once. A name or glob that matches no context is a usage error naming the contexts there are.
pub fn select(available: &[String], selection: &str) -> crate::Result<Vec<String>> {
    let patterns: Vec<&str> = selection.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return Err(crate::Error::Usage(
            "--context: no context named: pass NAME, a,b,c or a glob such as 'prod-*'".into(),
        ));
    }
    for p in &patterns {
        if !available.iter().any(|c| glob_match(p, c)) {
            return Err(crate::Error::Usage(format!(
                "--context {p}: no such context in the kubeconfig (it has: {}); `kubectl config get-contexts` lists them",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            )));
        }
    }
    Ok(available.iter().filter(|c| patterns.iter().any(|p| glob_match(p, c))).cloned().collect())
}

/// How a fleet run goes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// At most this many clusters at once (`--max-concurrent`).
    pub max_concurrent: usize,
    /// The health run's options, the same for every cluster.
    pub health: Options,
}

/// What one context gave.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A health report.
    Report(Box<Report>),
    /// The cluster's API shows no etcd (a managed control plane runs it out of reach).
    NoEtcd {
        /// What was looked for.
        message: String,
    },
    /// The API refused us (RBAC): what to grant.
    Forbidden {
        /// The refusal and what to grant (`kubectl etcd health --print-rbac`).
        message: String,
    },
    /// The cluster could not be reached or read, within its deadline.
    Failed {
        /// What failed.
        message: String,
    },
}

/// One context's row.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterHealth {
    /// The kubeconfig context.
    pub context: String,
    /// The exit code this cluster alone would give (0 for a cluster with no visible etcd).
    #[serde(serialize_with = "exit_number")]
    pub exit_code: crate::ExitCode,
    /// What it gave.
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn exit_number<S: serde::Serializer>(c: &crate::ExitCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(*c as u8)
}

/// The whole fleet, in the kubeconfig's order of contexts.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Fleet {
    /// One entry per context.
    pub items: Vec<ClusterHealth>,
}

impl Fleet {
    /// The worst cluster's exit code (the highest).
    pub fn exit_code(&self) -> crate::ExitCode {
        self.items.iter().map(|c| c.exit_code).max_by_key(|c| *c as u8).unwrap_or(crate::ExitCode::Ok)
    }
}

/// The settings for one context: the API of `context` is the way to etcd, and `{context}` in
/// `--pki-dir` (and `--cacert`/`--cert`/`--key`) stands for its name, so that each cluster
/// can have its own copy of `pki/etcd`.
pub fn settings_for(base: &Settings, context: &str) -> Settings {
    let mut s = base.clone();
    s.context = Some(context.to_string());
    s.api_explicit = true;
    let subst =
        |p: &Option<PathBuf>| p.as_ref().map(|p| PathBuf::from(p.to_string_lossy().replace("{context}", context)));
    s.pki_dir = subst(&base.pki_dir);
    s.cacert = subst(&base.cacert);
    s.cert = subst(&base.cert);
    s.key = subst(&base.key);
    s
}

/// A cluster's deadline: discovery through its API (dial + command timeout) and then the
/// health run's own budget (the same again). Past it the cluster's row says it did not answer.
pub fn deadline(settings: &Settings) -> Duration {
    2 * (settings.dial_timeout + settings.command_timeout)
}

/// One context: open a session through its API and run the health checks, within its deadline.
pub async fn one(base: &Settings, context: &str, opts: &Options) -> ClusterHealth {
    let settings = settings_for(base, context);
    let limit = deadline(&settings);
    let start = Instant::now();
    let work = async {
        let session = Session::open(&settings).await?;
        super::run(&session, opts).await
    };
    let (exit_code, outcome) = match tokio::time::timeout(limit, work).await {
        Ok(Ok(report)) => (report.exit_code(), Outcome::Report(Box::new(report))),
        Ok(Err(e)) => classify(e),
        Err(_) => (
            crate::ExitCode::Discovery,
            Outcome::Failed {
                message: format!(
                    "no answer within {} (the cluster's deadline: 2 x (--dial-timeout + --command-timeout))",
                    crate::base::units::format_duration(start.elapsed())
                ),
            },
        ),
    };
    ClusterHealth { context: context.to_string(), exit_code, outcome }
}

fn classify(e: crate::Error) -> (crate::ExitCode, Outcome) {
    match &e {
        crate::Error::NothingFound { tried } if tried.iter().any(|t| t.contains("etcd is not visible")) => (
            crate::ExitCode::Ok,
            Outcome::NoEtcd {
                message: "no etcd visible through this cluster's API (no etcd pods, no etcd nodes): a managed control plane (EKS, GKE, AKS) runs it out of reach".into(),
            },
        ),
        crate::Error::Forbidden { .. } => (e.exit_code(), Outcome::Forbidden { message: e.report() }),
        _ => (e.exit_code(), Outcome::Failed { message: e.report() }),
    }
}

/// Every context at once, at most `opts.max_concurrent` at a time; the entries in the order
/// of `contexts`.
pub async fn run(base: &Settings, contexts: &[String], opts: &FleetOptions) -> Fleet {
    let max = opts.max_concurrent.max(1);
    let mut items: Vec<(usize, ClusterHealth)> = futures::stream::iter(contexts.iter().enumerate())
        .map(|(i, c)| async move { (i, one(base, c, &opts.health).await) })
        .buffer_unordered(max)
        .collect()
        .await;
    items.sort_by_key(|(i, _)| *i);
    Fleet { items: items.into_iter().map(|(_, c)| c).collect() }
}

/// The figures of one report a fleet row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Healthy members / members.
    pub members: String,
    /// The leader's name.
    pub leader: String,
    /// `may lose N`, or `lost`.
    pub quorum: String,
    /// The largest member's DB / the quota.
    pub db: String,
    /// `none`, the alarm kinds raised, or `?` when they could not be listed.
    pub alarms: String,
    /// The members' versions.
    pub versions: String,
    /// `ok`, or the worst status and the checks that have it.
    pub worst: String,
    /// The checks that are not ok, `name: message`.
    pub not_ok: Vec<String>,
}

/// What a fleet row shows of a report.
pub fn summary(r: &Report) -> Summary {
    use crate::base::units::format_bytes;
    let members: Vec<_> = r.members.iter().filter(|m| m.is_member).collect();
    let healthy = members.iter().filter(|m| m.health == "healthy").count();
    let leader =
        r.leader
            .and_then(|l| r.members.iter().find(|m| m.id == Some(l)))
            .map(|m| {
                if m.name.is_empty() {
                    crate::base::units::member_id(m.id.unwrap_or_default())
                } else {
                    m.name.clone()
                }
            })
            .unwrap_or_else(|| "none".into());
    let quorum = if r.quorum.voters == 0 {
        String::new()
    } else if r.quorum.in_quorum < r.quorum.needed {
        "lost".into()
    } else {
        format!("may lose {}", r.quorum.can_lose)
    };
    let largest = r.members.iter().filter_map(|m| m.db_size).max();
    let quota = r.members.iter().map(|m| m.quota_backend_bytes).max();
    let db = match (largest, quota) {
        (Some(d), Some(q)) => format!("{} / {}", format_bytes(d), format_bytes(q)),
        _ => String::new(),
    };
    let alarms = match r.checks.iter().find(|c| c.name == "alarms") {
        None => String::new(),
        Some(c) if c.status == Status::Ok => "none".into(),
        Some(c) if c.status == Status::Warn => "?".into(),
        Some(c) => {
            let kinds: Vec<&str> = ["NOSPACE", "CORRUPT"].into_iter().filter(|k| c.message.contains(k)).collect();
            if kinds.is_empty() {
                "raised".into()
            } else {
                kinds.join(",")
            }
        }
    };
    let versions: std::collections::BTreeSet<&str> = r.members.iter().filter_map(|m| m.version.as_deref()).collect();
    let worst_status = r.checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    let worst = if worst_status == Status::Ok {
        "ok".to_string()
    } else {
        let names: Vec<&str> = r.checks.iter().filter(|c| c.status == worst_status).map(|c| c.name).collect();
        format!("{} ({})", worst_status.as_str(), names.join(","))
    };
    let not_ok =
        r.checks.iter().filter(|c| c.status != Status::Ok).map(|c| format!("{}: {}", c.name, c.message)).collect();
    Summary {
        members: format!("{healthy}/{}", members.len()),
        leader,
        quorum,
        db,
        alarms,
        versions: versions.into_iter().collect::<Vec<_>>().join(","),
        worst,
        not_ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_a_shell_does() {
        assert!(glob_match("prod-*", "prod-eu-1"));
        assert!(glob_match("prod-*", "prod-"));
        assert!(!glob_match("prod-*", "staging-prod-1"));
        assert!(glob_match("*-1", "prod-eu-1"));
        assert!(glob_match("prod-??-1", "prod-eu-1"));
        assert!(!glob_match("prod-?-1", "prod-eu-1"));
        assert!(glob_match("prod-[ae]*", "prod-eu-1"));
        assert!(!glob_match("prod-[!e]*", "prod-eu-1"));
        assert!(glob_match("kind-[a-c]", "kind-b"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn a_selection_keeps_the_kubeconfigs_order_and_refuses_what_matches_nothing() {
        let all: Vec<String> = ["prod-b", "staging", "prod-a", "dev"].map(String::from).to_vec();
        assert_eq!(select(&all, "prod-*").unwrap(), ["prod-b", "prod-a"]);
        assert_eq!(select(&all, "dev, prod-a,prod-*").unwrap(), ["prod-b", "prod-a", "dev"]);
        let e = select(&all, "prod-*,qa").unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Usage);
        assert!(
            e.to_string().contains("--context qa: no such context") && e.to_string().contains("prod-b, staging"),
            "{e}"
        );
        assert!(is_selection("a,b") && is_selection("prod-*") && !is_selection("kind-kind"));
    }

    #[test]
    fn the_worst_cluster_sets_the_exit_code() {
        let row = |exit_code| ClusterHealth {
            context: "x".into(),
            exit_code,
            outcome: Outcome::NoEtcd { message: String::new() },
        };
        let fleet = Fleet {
            items: vec![row(crate::ExitCode::Ok), row(crate::ExitCode::Discovery), row(crate::ExitCode::Negative)],
        };
        assert_eq!(fleet.exit_code(), crate::ExitCode::Discovery);
        assert_eq!(Fleet { items: vec![] }.exit_code(), crate::ExitCode::Ok);
    }

    #[test]
    fn each_context_gets_its_own_pki_dir() {
        let mut base = crate::reach::discovery::settings::Settings::new();
        base.pki_dir = Some("/pki/{context}".into());
        base.cacert = Some("/pki/{context}/ca.crt".into());
        let s = settings_for(&base, "prod-1");
        assert_eq!(s.pki_dir.unwrap(), PathBuf::from("/pki/prod-1"));
        assert_eq!(s.cacert.unwrap(), PathBuf::from("/pki/prod-1/ca.crt"));
        assert_eq!(s.context.as_deref(), Some("prod-1"));
        assert!(s.api_explicit);
    }
}
