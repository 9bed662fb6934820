//! A session with an etcd cluster: discovery, TLS, and the authoritative member list from etcd.

use std::time::Duration;

use serde::Serialize;

use crate::base::units::{member_id, ser_hex};
use crate::error::{Error, Result};
use crate::reach::conn::{call, Dialer, TransportError};
use crate::reach::discovery::settings::{Endpoint, Settings};
use crate::reach::discovery::{self, Discovery};
use crate::reach::tls::TlsContext;

/// A member as etcd lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Member {
    /// Member ID (hex in output).
    #[serde(serialize_with = "ser_hex")]
    pub id: u64,
    /// Name; empty until a learner or new member has started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty until the member has started.
    pub client_urls: Vec<String>,
    /// True for a learner (non-voting) member.
    pub is_learner: bool,
}

impl From<&etcd_client::Member> for Member {
    fn from(m: &etcd_client::Member) -> Member {
        Member {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        }
    }
}

impl Member {
    /// A name to show: the name, or `(not started)` with the peer URL.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            "(not started)".to_string()
        } else {
            self.name.clone()
        }
    }
}

/// The member list and who answered it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberList {
    /// Cluster ID.
    #[serde(serialize_with = "ser_hex")]
    pub cluster_id: u64,
    /// The member that answered.
    #[serde(serialize_with = "ser_hex")]
    pub answered_by: u64,
    /// The endpoint that answered.
    pub endpoint: String,
    /// The members.
    pub members: Vec<Member>,
    /// Endpoints found beyond discovery's (this node's member did not answer), with their
    /// sources.
    pub extra_endpoints: Vec<Endpoint>,
}

/// Discovery plus a dialer: everything needed to talk to the cluster.
#[derive(Debug, Clone)]
pub struct Session {
    /// What the user asked for.
    pub settings: Settings,
    /// What discovery found.
    pub discovery: Discovery,
    /// The dialer (TLS context, dial timeout).
    pub dialer: Dialer,
}

/// Opens one tunnel before anything else, so that an RBAC refusal is one clear error (exit 3)
/// rather than every member failing alike. Other failures are the member's, found later.
async fn preflight(t: &crate::reach::tunnel::Tunnels, timeout: Duration) -> Result<()> {
    let Some((pod, port)) = t.first() else { return Ok(()) };
    match t.open("preflight", &pod, port, timeout).await {
        Err(e @ Error::Forbidden { .. }) => Err(e),
        _ => Ok(()),
    }
}

impl Session {
    /// Runs discovery and loads the TLS material.
    pub async fn open(settings: &Settings) -> Result<Session> {
        let discovery = discovery::discover(settings).await?;
        let tls = TlsContext::load(&discovery.tls, discovery.insecure)?;
        if discovery.insecure {
            crate::base::messages::message(
                "WARNING: server certificates are NOT verified (--insecure-skip-tls-verify)",
            );
        }
        let mut dialer = Dialer::new(tls, settings.dial_timeout);
        if let Some(t) = discovery.tunnels.clone() {
            preflight(&t, settings.dial_timeout).await?;
            dialer = dialer.through(t);
        }
        Ok(Session { settings: settings.clone(), dialer, discovery })
    }

    /// The per-call deadline.
    pub fn command_timeout(&self) -> Duration {
        self.settings.command_timeout
    }

    /// Asks every discovered endpoint for the member list at once; the first answer wins.
    ///
    /// When none answers and the endpoints came from this node's manifest (only its own member),
    /// the other members are tried: those the data dir's backend and `--initial-cluster` name
    /// ([`Discovery::fallback`]), then the etcd pods through kubeadm's admin.conf. The endpoints
    /// that led to members are returned in [`MemberList::extra_endpoints`], with their sources.
    pub async fn member_list(&self) -> Result<MemberList> {
        let urls: Vec<String> = self.discovery.endpoints.iter().map(|e| e.url.clone()).collect();
        let first = self.member_list_from(&urls).await;
        let Err(Error::Unreachable { errors }) = first else { return first };
        if self.discovery.manifest.is_none() || !self.settings.endpoints.is_empty() {
            return Err(Error::Unreachable { errors });
        }
        let mut all_errors = errors;
        let verbose = self.settings.verbose;
        let mut tried: Vec<Endpoint> = Vec::new();
        for round in 0..2 {
            let extra: Vec<Endpoint> = if round == 0 {
                self.discovery.fallback.clone()
            } else {
                discovery::admin_conf_endpoints(&self.settings).await
            };
            let extra: Vec<Endpoint> = extra
                .into_iter()
                .filter(|e| !urls.iter().chain(tried.iter().map(|t| &t.url)).any(|u| u == &e.url))
                .collect();
            if extra.is_empty() {
                continue;
            }
            if verbose {
                crate::base::messages::message(&format!(
                    "discovery: this node's member does not answer; trying {}",
                    extra.iter().map(|e| format!("{} (from {})", e.url, e.source)).collect::<Vec<_>>().join(", ")
                ));
            }
            let extra_urls: Vec<String> = extra.iter().map(|e| e.url.clone()).collect();
            tried.extend(extra);
            match self.member_list_from(&extra_urls).await {
                Ok(mut list) => {
                    // Keep the endpoints that are some member's client URL (or the one that
                    // answered): the rest are guesses that led nowhere.
                    list.extra_endpoints = tried
                        .into_iter()
                        .filter(|e| {
                            e.url == list.endpoint
                                || list.members.iter().any(|m| {
                                    m.client_urls.iter().any(|u| u.trim_end_matches('/') == e.url.trim_end_matches('/'))
                                })
                        })
                        .collect();
                    if verbose {
                        crate::base::messages::message(&format!(
                            "discovery: member list from {} (its source: {})",
                            list.endpoint,
                            list.extra_endpoints
                                .iter()
                                .find(|e| e.url == list.endpoint)
                                .map(|e| e.source.as_str())
                                .unwrap_or("?")
                        ));
                    }
                    return Ok(list);
                }
                Err(Error::Unreachable { errors }) => all_errors.extend(errors),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unreachable { errors: all_errors })
    }

    /// The member list from the first of `urls` to answer.
    pub async fn member_list_from(&self, urls: &[String]) -> Result<MemberList> {
        if urls.is_empty() {
            return Err(Error::NothingFound { tried: vec!["no endpoints to contact".into()] });
        }
        // All at once; the first answer wins, and when none answers every failure is reported.
        let mut pending: futures::stream::FuturesUnordered<_> =
            urls.iter().map(|u| self.member_list_one(u.clone())).collect();
        let mut errors = Vec::new();
        while let Some(r) = futures::StreamExt::next(&mut pending).await {
            match r {
                Ok(list) => return Ok(list),
                Err(e) => errors.push(e),
            }
        }
        Err(Error::Unreachable { errors })
    }

    async fn member_list_one(&self, url: String) -> std::result::Result<MemberList, TransportError> {
        self.dialer.probe(&url).await?;
        let mut client = self.dialer.client(&url).await?;
        let resp = call(&url, "member list", self.command_timeout(), client.member_list()).await?;
        crate::limits::check_members(&url, resp.members().len())?;
        let header = resp.header();
        let members = resp.members().iter().map(Member::from).collect();
        Ok(MemberList {
            cluster_id: header.map(|h| h.cluster_id()).unwrap_or(0),
            answered_by: header.map(|h| h.member_id()).unwrap_or(0),
            endpoint: url,
            members,
            extra_endpoints: Vec::new(),
        })
    }
}

/// Finds a member by name or hex ID; errors name the known members.
pub fn find_member<'a>(members: &'a [Member], key: &str) -> Result<&'a Member> {
    if let Some(m) = members.iter().find(|m| m.name == key) {
        return Ok(m);
    }
    if let Some(id) = crate::base::units::parse_member_id(key) {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            return Ok(m);
        }
    }
    if let Some(id) = crate::base::units::parse_member_id_decimal(key) {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            return Ok(m);
        }
    }
    if let Some(m) =
        members.iter().find(|m| m.peer_urls.iter().any(|u| u.trim_end_matches('/') == key.trim_end_matches('/')))
    {
        return Ok(m);
    }
    let known: Vec<String> = members.iter().map(|m| format!("{} ({})", m.display_name(), member_id(m.id))).collect();
    let hint = if members.iter().any(|m| m.name.is_empty()) {
        "; a member that never started has no name yet: use its ID"
    } else {
        ""
    };
    Err(Error::Usage(format!("no member named or with ID {key:?}; members are: {}{hint}", known.join(", "))))
}

/// The one learner, for a command given no member (`learner promote` alone): a name nobody has
/// is never taken to mean an unstarted learner, that is [`find_member`]'s usage error.
pub fn only_learner(members: &[Member]) -> Result<&Member> {
    let learners: Vec<&Member> = members.iter().filter(|m| m.is_learner).collect();
    match learners.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Usage("the cluster has no learner: name the member to promote".into())),
        many => Err(Error::Usage(format!(
            "the cluster has {} learners: name the one to promote ({})",
            many.len(),
            many.iter().map(|m| format!("{} ({})", m.display_name(), member_id(m.id))).collect::<Vec<_>>().join(", ")
        ))),
    }
}
