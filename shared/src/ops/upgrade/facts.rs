//! The facts an upgrade relies on — the upgrade policy, patch floors, the latest patch of each
//! minor, flags removed or renamed, kubeadm's etcd per Kubernetes minor — kept as data in
//! `shared/data/etcd-upgrade.json`, every entry with the page it was read from.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// An etcd version, `MAJOR.MINOR.PATCH` (a `v` prefix, a kubeadm image suffix `-0` and a
/// pre-release such as `-rc.0` are accepted and ignored for ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl Version {
    /// Parses `3.5.1`, `v3.5.1`, `3.5.1-0`, `3.5` (patch 0).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = match it.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if it.next().is_some() {
            return None;
        }
        Some(Version { major, minor, patch })
    }

    /// `3.5`.
    pub fn minor_str(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The same major and minor.
    pub fn same_minor(&self, o: &Version) -> bool {
        (self.major, self.minor) == (o.major, o.minor)
    }

    /// The next minor (`3.5` → `3.6.0`).
    pub fn next_minor(&self) -> Version {
        Version { major: self.major, minor: self.minor + 1, patch: 0 }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A rule of etcd's upgrade policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Policy {
    /// Short name.
    pub rule: String,
    /// What it says.
    pub text: String,
    /// Where it says so.
    pub source: String,
}

/// A patch floor: members on `from` must run `min` or later before moving to `to`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Floor {
    /// The current minor (`3.5`).
    pub from: String,
    /// The next minor (`3.6`).
    pub to: String,
    /// The lowest patch allowed.
    pub min: String,
    /// Why.
    pub why: String,
    /// Where it is written.
    pub source: String,
}

/// The newest patch release of a minor known to this build.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Latest {
    /// `3.5`.
    pub minor: String,
    /// `3.5.33`.
    pub patch: String,
    /// A remark (end of support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Release announcement.
    pub source: String,
}

/// A flag etcd deprecated (still accepted, with a replacement) or removed (etcd refuses to start).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FlagFact {
    /// Name without dashes.
    pub flag: String,
    /// Only this value is concerned (`--logger=capnslog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The minor that deprecated (renamed) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_in: Option<String>,
    /// The minor that no longer accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_in: Option<String>,
    /// What to use instead (`VALUE`: the flag's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// What to do before removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The upgrade guide.
    pub source: String,
}

/// The etcd image kubeadm installs for one Kubernetes minor.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Kubeadm {
    /// `1.34`.
    pub kubernetes: String,
    /// `3.6.5-0`.
    pub etcd: String,
    /// kubeadm's constants.
    pub source: String,
}

/// A fact about kubeadm's own upgrade.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct KubeadmBehaviour {
    /// What it does.
    pub fact: String,
    /// Where.
    pub source: String,
}

/// A distribution whose etcd version follows its own release (k3s, RKE2).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Distribution {
    /// `k3s` or `rke2` (as [`crate::reach::layouts`] names them).
    pub name: String,
    /// How its etcd's version is set.
    pub fact: String,
    /// What to do instead of swapping the image.
    pub upgrade: String,
    /// Where.
    pub source: String,
}

/// Everything in the data file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Facts {
    /// The policy.
    pub policy: Vec<Policy>,
    /// Patch floors (several per step: the highest applies, each says why).
    pub floors: Vec<Floor>,
    /// Latest patch per minor.
    pub latest: Vec<Latest>,
    /// Deprecated and removed flags.
    pub flags: Vec<FlagFact>,
    /// kubeadm's etcd per Kubernetes minor.
    pub kubeadm: Vec<Kubeadm>,
    /// kubeadm's upgrade.
    pub kubeadm_behaviour: Vec<KubeadmBehaviour>,
    /// Distributions that set etcd's version themselves.
    pub distributions: Vec<Distribution>,
}

/// The data file, compiled in.
pub const DATA: &str = include_str!("../../../data/etcd-upgrade.json");

/// The facts (parsed once; the file is checked by a unit test, so it parses).
pub fn facts() -> &'static Facts {
    static F: OnceLock<Facts> = OnceLock::new();
    F.get_or_init(|| serde_json::from_str(DATA).unwrap_or_else(|e| panic!("shared/data/etcd-upgrade.json: {e}")))
}

impl Facts {
    /// The floors for the step out of `from`'s minor, highest first.
    pub fn floors_from(&self, from: &Version) -> Vec<&Floor> {
        let mut f: Vec<&Floor> = self.floors.iter().filter(|f| f.from == from.minor_str()).collect();
        f.sort_by_key(|f| std::cmp::Reverse(Version::parse(&f.min)));
        f
    }

    /// The floor that applies (the highest) to leave `from`'s minor.
    pub fn floor_from(&self, from: &Version) -> Option<(&Floor, Version)> {
        self.floors_from(from).into_iter().next().and_then(|f| Version::parse(&f.min).map(|v| (f, v)))
    }

    /// The newest known patch of `v`'s minor.
    pub fn latest_of(&self, v: &Version) -> Option<(&Latest, Version)> {
        self.latest.iter().find(|l| l.minor == v.minor_str()).and_then(|l| Version::parse(&l.patch).map(|p| (l, p)))
    }

    /// The distribution named `name` (`k3s`, `rke2`).
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.distributions.iter().find(|d| d.name == name)
    }

    /// The policy rule named `rule`.
    pub fn policy(&self, rule: &str) -> Option<&Policy> {
        self.policy.iter().find(|p| p.rule == rule)
    }

    /// kubeadm's etcd for Kubernetes `k8s` (`v1.34`, `1.34`, `1.34.2`): the entry of that minor,
    /// else (as kubeadm does) the nearest listed one, flagged as a fallback.
    pub fn kubeadm_etcd(&self, k8s: &str) -> Option<(&Kubeadm, bool)> {
        let want = Version::parse(&format!(
            "{}.0",
            k8s.trim().trim_start_matches('v').split('.').take(2).collect::<Vec<_>>().join(".")
        ))?;
        let minor = |k: &Kubeadm| Version::parse(&k.kubernetes).map(|v| v.minor).unwrap_or(0);
        if let Some(k) = self.kubeadm.iter().find(|k| minor(k) == want.minor) {
            return Some((k, false));
        }
        let lowest = self.kubeadm.iter().min_by_key(|k| minor(k))?;
        let highest = self.kubeadm.iter().max_by_key(|k| minor(k))?;
        Some((if want.minor < minor(lowest) { lowest } else { highest }, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_has_a_source_and_parses() {
        let f: Facts = serde_json::from_str(DATA).expect("the data file parses");
        let url = |s: &str| s.starts_with("https://");
        assert!(f.policy.iter().all(|p| url(&p.source)));
        for fl in &f.floors {
            assert!(url(&fl.source), "floor {} has no source", fl.min);
            let min = Version::parse(&fl.min).expect("floor version");
            assert_eq!(min.minor_str(), fl.from, "floor {} is a patch of {}", fl.min, fl.from);
            assert_eq!(Version::parse(&fl.from).unwrap().next_minor().minor_str(), fl.to);
        }
        for l in &f.latest {
            assert!(url(&l.source));
            assert_eq!(Version::parse(&l.patch).unwrap().minor_str(), l.minor);
        }
        for fl in &f.flags {
            assert!(url(&fl.source), "flag {} has no source", fl.flag);
            assert!(
                fl.deprecated_in.is_some() || fl.removed_in.is_some(),
                "flag {} neither deprecated nor removed",
                fl.flag
            );
        }
        for k in &f.kubeadm {
            assert!(url(&k.source), "kubeadm {} has no source", k.kubernetes);
            assert!(Version::parse(&k.etcd).is_some());
        }
        assert!(f.kubeadm_behaviour.iter().all(|k| url(&k.source)));
        assert!(f.distributions.iter().all(|d| url(&d.source)));
        for name in ["k3s", "rke2"] {
            assert!(f.distribution(name).is_some(), "{name} is in the table");
        }
    }

    #[test]
    fn the_floor_to_3_6_is_the_highest_of_its_entries() {
        let f = facts();
        let (floor, v) = f.floor_from(&Version::parse("3.5.1").unwrap()).unwrap();
        assert_eq!(v, Version::parse("3.5.32").unwrap());
        assert!(floor.source.contains("upgrade_3_6"));
        assert_eq!(f.floors_from(&Version::parse("3.5.0").unwrap()).len(), 3);
        assert_eq!(f.floor_from(&Version::parse("3.6.2").unwrap()).unwrap().1.to_string(), "3.6.11");
    }

    #[test]
    fn versions_parse_as_etcd_and_kubeadm_write_them() {
        let v = |s| Version::parse(s);
        assert_eq!(v("v3.5.1"), v("3.5.1-0"));
        assert_eq!(v("3.5").unwrap().patch, 0);
        assert!(v("3.5.1") < v("3.5.10"));
        assert_eq!(v("3.6.0-rc.1").unwrap().to_string(), "3.6.0");
        assert!(v("x").is_none() && v("3").is_none() && v("3.5.1.2").is_none());
    }

    #[test]
    fn kubeadm_falls_back_to_the_nearest_minor() {
        let f = facts();
        let (k, fallback) = f.kubeadm_etcd("v1.34").unwrap();
        assert_eq!((k.etcd.as_str(), fallback), ("3.6.5-0", false));
        assert!(f.kubeadm_etcd("v1.99.1").unwrap().1);
        assert!(f.kubeadm_etcd("nonsense").is_none());
    }
}
