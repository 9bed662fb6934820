//! Processes and ports: free loopback ports, polling, starting etcd processes that die with
//! the test, signals.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::*;

/// The ports tests take: below Linux's default ephemeral range (32768–60999), so that no
/// outgoing connection of this machine is handed one between the test choosing it and etcd
/// binding it.
const PORTS: std::ops::Range<u16> = 20000..32768;

/// A free TCP port on 127.0.0.1, outside the ephemeral range ([`PORTS`]), never the same twice in
/// one test process; processes start at different places in the range (by PID).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    let _ = NEXT.compare_exchange(u32::MAX, (std::process::id() * 389) % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let p = PORTS.start + (NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        // Free on every address (a member may bind 0.0.0.0 or another loopback address).
        if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in {PORTS:?}")
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts an etcd process for a node rooted at `root` (log in `root/etcd.log`); it dies with
/// the test process.
pub fn spawn_etcd(root: &Path, argv: &[String]) -> Child {
    spawn_etcd_in(root, None, argv)
}

/// [`spawn_etcd`] inside the network namespace `netns` (`ip netns exec NS etcd …`, which execs
/// etcd itself: the child's pid is etcd's, for signals), or in the test's own with `None`.
pub fn spawn_etcd_in(root: &Path, netns: Option<&str>, argv: &[String]) -> Child {
    spawn_etcd_bin(&etcd().etcd, root, netns, argv)
}

/// [`spawn_etcd_in`] with another etcd binary.
pub fn spawn_etcd_bin(bin: &Path, root: &Path, netns: Option<&str>, argv: &[String]) -> Child {
    std::fs::create_dir_all(root).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(root.join("etcd.log")).unwrap();
    let mut cmd = etcd_command_with(bin, netns, argv);
    cmd.stdout(log.try_clone().unwrap()).stderr(log);
    cmd.spawn().unwrap()
}

/// The command that runs etcd with `argv` (inside network namespace `netns` when given): stdin
/// closed, no `ETCD_*`/`ETCDCTL_*` variable of the test environment, and dying with the test
/// process. Output is the caller's to direct.
/// (`bin`: the selected etcd, a node's own, or the one a manifest's image names in the kubelet
/// emulation.)
pub(crate) fn etcd_command_with(bin: &Path, netns: Option<&str>, argv: &[String]) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(argv).stdin(Stdio::null());
    // etcd reads ETCD_* variables as flags; none of the test environment's may leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    dies_with_test(&mut cmd);
    cmd
}

/// Makes the process `cmd` starts die with the test process (`PR_SET_PDEATHSIG`), also when the
/// test is killed before any guard drops.
pub fn dies_with_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub(crate) fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a child we spawned.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// What [`run_measured`] saw of a process.
#[derive(Debug)]
pub struct Measured {
    /// Its exit status, stdout and stderr.
    pub output: std::process::Output,
    /// Its peak resident memory in KiB (`ru_maxrss` of wait4(2): the kernel's high-water mark,
    /// VmHWM, at its end).
    pub peak_rss_kib: u64,
    /// From spawn to exit.
    pub elapsed: Duration,
}

/// Runs `cmd` to its end, its output collected, and reaps it with wait4(2) to read its peak
/// resident memory.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child cannot see
pub fn run_measured(cmd: &mut Command) -> Measured {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let start = std::time::Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid pointers; the child is reaped here, not by
    // `Child` (which never waits on drop).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    let elapsed = start.elapsed();
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    Measured { output, peak_rss_kib: usage.ru_maxrss as u64, elapsed }
}

/// The text without ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
