//! Network faults between etcd members: each member runs in a network namespace of its own,
//! joined by a veth pair to a bridge in the test's namespace, so the test (and the plugins it
//! runs) reaches every member's client URL while the members' traffic to each other can be cut.
//! Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range, routed nowhere): one /24 per
//! [`Net`], the bridge at `.1`, member `i` at `.1<i>`.
//!
//! Faults: frames from one member to another silently lost (a permanent neighbour entry that
//! maps the peer's address to a MAC no interface has: the bridge floods the frame and nobody
//! takes it), one way or both; freezing and killing are [`crate::Cluster`]'s. This kernel has
//! neither netem nor nftables, hence neighbour entries.
//!
//! Needs root and iproute2 (`ip netns`, `ip link … type veth|bridge`). Names carry the test
//! process's pid and a counter, so tests of one process and of several run side by side; a
//! [`Net`] removes every namespace, veth and bridge it made when dropped (also when a test
//! panics), and first removes leftovers of its own names and of every test process that was
//! killed before it could (each subnet's lock file names its holder's prefix until it is clean).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A locally administered MAC that no interface has: frames sent to it vanish.
const NOWHERE: &str = "02:00:00:00:00:01";

/// /24 subnets in 198.18.0.0/15.
const SUBNETS: u32 = 512;

/// At most this many members per [`Net`] (one digit in the interface names).
const MAX_MEMBERS: usize = 10;

/// Runs `ip ARGS`; panics with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's ip is needed (apt-get install iproute2)");
    assert!(
        out.status.success(),
        "ip {} failed (network namespaces need root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip ARGS` and returns its stdout, or nothing when it fails (cleanup of what may be gone).
fn ip_quiet(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The names a [`Net`] with `prefix` may create: (links in the test's namespace, namespaces).
fn names_of(prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut links = vec![format!("{prefix}b")];
    links.extend((0..MAX_MEMBERS).map(|i| format!("{prefix}h{i}")));
    let namespaces = (0..MAX_MEMBERS).map(|i| format!("{prefix}n{i}")).collect();
    (links, namespaces)
}

/// Removes whatever exists of the links and namespaces a [`Net`] with `prefix` makes. Deleting the
/// test-side end of a veth pair deletes the pair, so no interface outlives its namespace.
fn remove_leftovers(prefix: &str) {
    let (links, namespaces) = names_of(prefix);
    let present = ip_quiet(&["-o", "link", "show"]);
    // `7: kef1a2b3x0h1@if6: <…` → `kef1a2b3x0h1`
    let present: Vec<&str> =
        present.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n)).collect();
    // veths before the bridge they are enslaved to.
    for l in links.iter().rev().filter(|l| present.contains(&l.as_str())) {
        ip_quiet(&["link", "del", l]);
    }
    let listed = ip_quiet(&["netns", "list"]);
    for ns in listed.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| namespaces.iter().any(|x| x == n)) {
        ip_quiet(&["netns", "del", ns]);
    }
}

/// The first three octets of subnet `subnet`, with the dot: `198.18.7.`.
fn network(subnet: u32) -> String {
    format!("198.{}.{}.", 18 + subnet / 256, subnet % 256)
}

/// The address `host` (1 = the bridge, 10 + i = member i) in subnet `subnet`.
fn address(subnet: u32, host: u32) -> String {
    format!("{}{host}", network(subnet))
}

/// The lock files of the subnets, one per /24, in the temp dir.
fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("kubectl-etcd-netns");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Locks `path` (created if missing) unless a live process holds it. A lock dies with its
/// process; the file names the prefix of its last holder until that holder cleaned up.
fn try_lock(path: &Path) -> Option<File> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).unwrap();
    // SAFETY: flock(2) on a descriptor we own; the lock goes with the file.
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0).then_some(f)
}

/// Removes what the dead holder named in the locked file `f` left, and empties the file.
fn clean_after(f: &mut File) {
    let mut previous = String::new();
    let _ = f.read_to_string(&mut previous);
    if !previous.trim().is_empty() {
        remove_leftovers(previous.trim());
    }
    f.set_len(0).unwrap();
    f.rewind().unwrap();
}

/// Removes what every killed [`Net`] left (a test killed by a signal never runs its `Drop`):
/// the lock files that name a prefix while no live process holds them.
fn sweep_killed() {
    for e in std::fs::read_dir(lock_dir()).unwrap().flatten() {
        if e.metadata().is_ok_and(|m| m.len() > 0) {
            if let Some(mut f) = try_lock(&e.path()) {
                clean_after(&mut f);
            }
        }
    }
}

/// Claims a /24 for `prefix`: the first of 198.18.0.0/15's, from `seed` on, whose lock file no
/// live process holds and that no interface of this namespace uses; the file then names
/// `prefix` until [`Net`]'s `Drop` has cleaned up.
fn claim_subnet(prefix: &str, seed: u32) -> (u32, File) {
    let dir = lock_dir();
    for k in 0..SUBNETS {
        let subnet = (seed + k) % SUBNETS;
        let Some(mut f) = try_lock(&dir.join(format!("subnet-{subnet}.lock"))) else { continue };
        clean_after(&mut f);
        // `inet 198.18.7.1/24 …`: an address of this subnet that no lock accounts for.
        if ip_quiet(&["-o", "-4", "addr", "show"]).contains(&format!(" {}", network(subnet))) {
            continue;
        }
        f.write_all(prefix.as_bytes()).unwrap();
        f.sync_all().unwrap();
        return (subnet, f);
    }
    panic!("every /24 of 198.18.0.0/15 is in use on this machine");
}

/// Members in network namespaces of their own on a bridge (see the module's doc). Dropping it
/// removes everything it made; drop the [`crate::Cluster`] running in it first (declare it after
/// the `Net`), so no etcd outlives its network.
pub struct Net {
    prefix: String,
    subnet: u32,
    members: usize,
    lock: File,
}

impl Net {
    /// A bridge and `members` namespaces, each with a veth on the bridge, its address and `lo`.
    pub fn new(members: usize) -> Net {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        assert!(members <= MAX_MEMBERS, "at most {MAX_MEMBERS} members");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let prefix = format!("kef{pid:x}x{n}");
        // Interface names have at most 15 bytes: `<prefix>h9`.
        assert!(prefix.len() + 2 <= 15, "interface names too long: {prefix}");
        remove_leftovers(&prefix);
        sweep_killed();
        let (subnet, lock) = claim_subnet(&prefix, pid.wrapping_mul(31).wrapping_add(n as u32 * 7));
        let net = Net { prefix, subnet, members, lock };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}/24", address(subnet, 1)), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..members {
            let (ns, host_if, ns_if) = (net.ns(i), format!("{}h{i}", net.prefix), net.interface(i));
            ip(&["netns", "add", &ns]);
            ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns]);
            ip(&["link", "set", &host_if, "master", &bridge, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.addr(i)), "dev", &ns_if]);
            ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
        }
        net
    }

    /// The bridge (in the test's namespace).
    pub fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    /// Member `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    /// Member `i`'s interface, inside its namespace.
    fn interface(&self, i: usize) -> String {
        format!("{}v{i}", self.prefix)
    }

    /// Member `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        address(self.subnet, 10 + i as u32)
    }

    /// Where each member runs, for [`crate::Builder::netns`]: (namespace, address).
    pub fn placement(&self) -> Vec<(String, String)> {
        (0..self.members).map(|i| (self.ns(i), self.addr(i))).collect()
    }

    /// From now on, frames from member `from` to member `to` vanish (one way: `to`'s frames
    /// still reach `from`, whose TCP acknowledgements then never arrive).
    pub fn drop_frames(&self, from: usize, to: usize) {
        let (ns, dev, to) = (self.ns(from), self.interface(from), self.addr(to));
        ip(&["-n", &ns, "neigh", "replace", &to, "lladdr", NOWHERE, "dev", &dev, "nud", "permanent"]);
    }

    /// Frames from `from` to `to` are delivered again (the neighbour is resolved anew).
    pub fn deliver_frames(&self, from: usize, to: usize) {
        ip_quiet(&["-n", &self.ns(from), "neigh", "del", &self.addr(to), "dev", &self.interface(from)]);
    }

    /// Cuts member `i` off from every other member, both ways. The test's namespace still
    /// reaches it: it answers clients.
    pub fn cut_off(&self, i: usize) {
        for j in (0..self.members).filter(|j| *j != i) {
            self.drop_frames(i, j);
            self.drop_frames(j, i);
        }
    }

    /// Undoes every fault between members.
    pub fn heal(&self) {
        for i in 0..self.members {
            for j in (0..self.members).filter(|j| *j != i) {
                self.deliver_frames(i, j);
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        remove_leftovers(&self.prefix);
        // Removed: the next holder of this subnet has nothing of ours to clean.
        let _ = self.lock.set_len(0);
    }
}
