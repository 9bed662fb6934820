//! The one URL type of the suite: etcd's client and peer URLs (`http(s)://HOST:PORT`, and
//! `unix(s)://PATH` for clients), parsed once, checked the way etcd's `types.NewURLs` checks
//! them, and the `--initial-cluster` value (`NAME=URL,...`) built on it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// etcd's client port, used when a client URL names none (as etcdctl does).
pub const DEFAULT_CLIENT_PORT: u16 = 2379;

/// A parsed etcd URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `https` / `unixs` (TLS) or `http` / `unix`.
    pub tls: bool,
    /// A unix socket URL (`unix://` or `unixs://`); `host` then holds the socket path.
    pub unix: bool,
    /// Host name or IP, without the brackets of an IPv6 address.
    pub host: String,
    /// The port given, if any.
    pub explicit_port: Option<u16>,
    /// Whatever follows `host:port` (a path, query or user part makes a peer URL invalid).
    pub rest: String,
    raw: String,
}

impl EtcdUrl {
    /// Parses a URL leniently (the dialer's view): no scheme means `https`, no port 2379. The
    /// error says what is wrong.
    pub fn parse(s: &str) -> std::result::Result<EtcdUrl, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").unwrap_or(("https", s));
        let (tls, unix) = match scheme {
            "https" => (true, false),
            "http" => (false, false),
            "unixs" => (true, true),
            "unix" => (false, true),
            other => return Err(format!("scheme {other:?} is not http or https")),
        };
        if unix {
            if rest.is_empty() {
                return Err("no socket path".into());
            }
            return Ok(EtcdUrl {
                tls,
                unix,
                host: rest.to_string(),
                explicit_port: None,
                rest: String::new(),
                raw: s.to_string(),
            });
        }
        let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (hostport, tail) = rest.split_at(cut);
        if hostport.contains('@') {
            return Err("a URL here has no user part".into());
        }
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or("unclosed [ in an IPv6 address")?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("not an IPv6 address between [ ]".into());
            }
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let explicit_port = match port {
            None | Some("") => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
            },
        };
        Ok(EtcdUrl { tls, unix, host, explicit_port, rest: tail.to_string(), raw: s.to_string() })
    }

    /// A client endpoint (`--endpoints`, `--advertise-client-urls`): a scheme and, for TCP, a
    /// valid port; `source` names where it came from.
    pub fn client(s: &str, source: &str) -> Result<EtcdUrl> {
        let bad = |reason: String| Error::InvalidValue {
            what: format!("endpoint from {source}"),
            value: s.to_string(),
            reason,
        };
        if !s.contains("://") {
            return Err(bad("expected a URL such as https://10.0.0.1:2379".into()));
        }
        EtcdUrl::parse(s).map_err(|e| {
            if e.contains("1 to 65535") {
                bad("the port must be a number from 1 to 65535, such as https://10.0.0.1:2379".into())
            } else {
                bad(format!("{e}; expected a URL such as https://10.0.0.1:2379"))
            }
        })
    }

    /// A peer URL as etcd accepts it: `http(s)://HOST:PORT`, a valid IP or DNS name, an explicit
    /// port, no path, query or user part. `what` names the flag in the error.
    pub fn peer(s: &str, what: &str) -> Result<EtcdUrl> {
        let bad = |reason: &str| Error::InvalidValue {
            what: what.to_string(),
            value: s.to_string(),
            reason: format!("{reason}; expected a URL such as https://10.0.0.4:2380"),
        };
        let Some((scheme, _)) = s.split_once("://") else { return Err(bad("no scheme")) };
        if scheme != "https" && scheme != "http" {
            return Err(bad(&format!("scheme {scheme:?} is not http or https")));
        }
        let u = EtcdUrl::parse(s).map_err(|e| bad(&e))?;
        if !u.rest.trim_end_matches('/').is_empty() {
            return Err(bad("a peer URL has no path, query or user part"));
        }
        if u.explicit_port.is_none() {
            return Err(bad("no port"));
        }
        let valid_host = u.host.parse::<std::net::IpAddr>().is_ok()
            || u.host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
            });
        if !valid_host {
            return Err(bad(&format!("host {:?} is not an IP address or a DNS name", u.host)));
        }
        Ok(u)
    }

    /// The port, etcd's client port when none was given.
    pub fn port(&self) -> u16 {
        self.explicit_port.unwrap_or(DEFAULT_CLIENT_PORT)
    }

    /// `http`, `https`, `unix` or `unixs`.
    pub fn scheme(&self) -> &'static str {
        match (self.unix, self.tls) {
            (false, true) => "https",
            (false, false) => "http",
            (true, true) => "unixs",
            (true, false) => "unix",
        }
    }

    /// `host:port` for a socket address (IPv6 in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }

    /// True when both name the same host and port.
    pub fn same_socket(&self, other: &EtcdUrl) -> bool {
        self.host == other.host && self.port() == other.port() && self.unix == other.unix
    }

    /// The same URL with another host.
    pub fn with_host(&self, host: &str) -> String {
        let h = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        match self.explicit_port {
            Some(p) => format!("{}://{h}:{p}{}", self.scheme(), self.rest),
            None => format!("{}://{h}{}", self.scheme(), self.rest),
        }
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True for a listen address on every interface (`0.0.0.0`, `::`, or no host).
    pub fn is_any_address(&self) -> bool {
        !self.unix && matches!(self.host.as_str(), "0.0.0.0" | "::" | "")
    }

    /// True when a listener on this URL answers on the host's own loopback: a loopback host or
    /// every interface. The one rule for where a port-forward (kubelet dials the pod's
    /// localhost) and a scrape on the node reach a member's metrics.
    pub fn is_on_loopback(&self) -> bool {
        !self.unix
            && (self.is_any_address()
                || matches!(self.host.as_str(), "localhost" | "::1")
                || self.host.starts_with("127."))
    }
}

/// The plain-HTTP URLs of a `--listen-metrics-urls` value, parsed (others are left out: a scrape
/// carries no client certificate).
pub fn plain_http_urls(flag: &str) -> Vec<EtcdUrl> {
    flag.split(',').map(str::trim).filter_map(|u| EtcdUrl::parse(u).ok()).filter(|u| !u.tls && !u.unix).collect()
}

impl fmt::Display for EtcdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for EtcdUrl {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        EtcdUrl::parse(s)
    }
}

/// The host of a URL (no brackets for IPv6), when it parses.
pub fn host(url: &str) -> Option<String> {
    EtcdUrl::parse(url).ok().map(|u| u.host)
}

/// True when two URL strings are the same but for a trailing slash.
pub fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// An `--initial-cluster` value: members by name, each with its peer URLs, in the order given
/// (etcd's: a name repeats for several URLs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialCluster {
    /// `(name, peer URL)` pairs in order.
    pub pairs: Vec<(String, String)>,
}

impl InitialCluster {
    /// Parses leniently (what a manifest holds): pairs without `=` are skipped.
    pub fn lenient(spec: &str) -> InitialCluster {
        InitialCluster {
            pairs: spec
                .split(',')
                .map(str::trim)
                .filter_map(|p| p.split_once('=').map(|(n, u)| (n.trim().to_string(), u.trim().to_string())))
                .collect(),
        }
    }

    /// Parses and checks: every part `NAME=URL`, names not empty, peer URLs valid and each
    /// listed once, at least one member.
    pub fn parse(spec: &str) -> Result<InitialCluster> {
        let bad =
            |reason: String| Error::InvalidValue { what: "--initial-cluster".into(), value: spec.to_string(), reason };
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not NAME=URL")))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad(format!("{part:?} has an empty member name: every member needs NAME=URL")));
            }
            let url = EtcdUrl::peer(url.trim(), "peer URL in --initial-cluster")?.to_string();
            if let Some((other, _)) = pairs.iter().find(|(_, u)| *u == url) {
                return Err(bad(format!(
                    "peer URL {url} is listed twice (for {other} and {name}): each member needs its own"
                )));
            }
            pairs.push((name.to_string(), url));
        }
        if pairs.is_empty() {
            return Err(bad("no members".into()));
        }
        Ok(InitialCluster { pairs })
    }

    /// One member per name, its peer URLs sorted (etcd derives member IDs from them).
    pub fn by_name(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (n, u) in &self.pairs {
            m.entry(n.clone()).or_default().push(u.clone());
        }
        for urls in m.values_mut() {
            urls.sort();
        }
        m
    }

    /// One member with these peer URLs.
    pub fn single(name: &str, urls: &[String]) -> InitialCluster {
        let mut ic = InitialCluster::default();
        ic.push(name, urls);
        ic
    }

    /// Adds a member's URLs.
    pub fn push(&mut self, name: &str, urls: &[String]) {
        self.pairs.extend(urls.iter().map(|u| (name.to_string(), u.clone())));
    }

    /// The same membership regardless of order.
    pub fn same_members(&self, other: &InitialCluster) -> bool {
        let mut a = self.pairs.clone();
        let mut b = other.pairs.clone();
        a.sort();
        b.sort();
        a == b
    }
}

impl fmt::Display for InitialCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.pairs.iter().map(|(n, u)| format!("{n}={u}")).collect();
        f.write_str(&s.join(","))
    }
}

impl FromStr for InitialCluster {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        InitialCluster::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parse_is_the_dialers_view() {
        let u = EtcdUrl::parse("https://127.0.0.1:2379").unwrap();
        assert!(u.tls && u.host == "127.0.0.1" && u.port() == 2379);
        let u = EtcdUrl::parse("http://[::1]:12379").unwrap();
        assert!(!u.tls && u.host == "::1" && u.port() == 12379 && u.addr() == "[::1]:12379");
        assert_eq!(EtcdUrl::parse("https://etcd").unwrap().port(), 2379);
        assert_eq!(EtcdUrl::parse("10.0.0.1:2379").unwrap().scheme(), "https");
        assert!(EtcdUrl::parse("ftp://x:1").is_err());
        assert!(EtcdUrl::parse("https://x:0").is_err());
        assert_eq!(host("https://etcd-0.example:2379/").as_deref(), Some("etcd-0.example"));
        assert_eq!(EtcdUrl::parse("https://10.0.0.1:2380").unwrap().with_host("::2"), "https://[::2]:2380");
    }

    #[test]
    fn client_urls_need_a_scheme_and_a_port_in_range() {
        assert!(EtcdUrl::client("https://127.0.0.1:2379", "t").is_ok());
        assert!(EtcdUrl::client("unix://localhost:0", "t").is_ok());
        let e = EtcdUrl::client("https://127.0.0.1:99999", "flag --endpoints").unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Usage);
        assert!(e.to_string().contains("from 1 to 65535"), "{e}");
        assert!(EtcdUrl::client("10.0.0.1:2379", "t").is_err());
    }

    #[test]
    fn peer_urls_follow_etcds_rules() {
        for ok in ["https://10.0.0.4:2380", "https://[fd00::4]:2380", "https://cp-4.example.com:2380", "http://a:1/"] {
            assert!(EtcdUrl::peer(ok, "--peer-urls").is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("https://10.0.0.4", "no port"),
            ("10.0.0.4:2380", "no scheme"),
            ("unix://x:1", "is not http or https"),
            ("https://10.0.0.4:99999", "1 to 65535"),
            ("https://bad_host!:2380", "not an IP address or a DNS name"),
            ("https://h:2380/path", "no path"),
            ("https://u@h:2380", "no user part"),
        ] {
            let e = EtcdUrl::peer(bad, "--peer-urls").unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("--peer-urls"), "{e}");
        }
    }

    #[test]
    fn initial_cluster_round_trips_and_checks() {
        let ic: InitialCluster = "b=https://2:2380,a=https://1:2380,a=https://1b:2380".parse().unwrap();
        assert_eq!(ic.to_string(), "b=https://2:2380,a=https://1:2380,a=https://1b:2380");
        assert_eq!(ic.by_name()["a"], vec!["https://1:2380".to_string(), "https://1b:2380".to_string()]);
        assert!(ic.same_members(&InitialCluster::lenient("a=https://1:2380,a=https://1b:2380,b=https://2:2380")));
        assert!(!ic.same_members(&InitialCluster::lenient("a=https://1:2380")));
        for bad in ["n1", "", "=https://h:2380", "n1=ftp://h:2380", "n1=https://h:2380/path"] {
            assert!(InitialCluster::parse(bad).is_err(), "{bad}");
        }
        let e = InitialCluster::parse("a=https://h:2380,b=https://h:2380").unwrap_err().to_string();
        assert!(e.contains("peer URL https://h:2380 is listed twice (for a and b)"), "{e}");
        assert_eq!(InitialCluster::lenient("a=https://1:2380, junk ,b = https://2:2380").pairs.len(), 2);
    }
}
