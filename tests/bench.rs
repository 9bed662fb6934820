//! Benchmarks (not tests): kubectl etcd side by side with etcdctl/etcdutl on the same real
//! clusters, printing wall time and peak memory. Run with
//! `cargo run --release -p kubectl-etcd-e2e --bin bench -- [health|port-forward|fleet|snapshot|objstore|defrag|doctor|logs|upgrade|usage|all] [--size-mib N]`.
//! `BENCH_BIN_DIR=DIR` measures the plugins built in DIR (a release build) when the driver
//! itself is a debug build.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

/// Runs a command under /usr/bin/time; returns (wall seconds, peak RSS KiB, success).
fn measure(cmd: &mut Command) -> (f64, u64, bool) {
    measure_with_stderr(cmd).0
}

/// [`measure`], with the command's stderr (its last line is /usr/bin/time's
/// `__TIME__ wall peak-KiB user-s system-s`: [`cpu_of_run`] reads the CPU time).
fn measure_with_stderr(cmd: &mut Command) -> ((f64, u64, bool), String) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f").arg("__TIME__ %e %M %U %S").arg(prog).args(args);
    for (k, v) in envs {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = t.output().expect("run /usr/bin/time");
    let wall = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("__TIME__")).unwrap_or("__TIME__ 0 0");
    let rss: u64 = line.split_whitespace().nth(2).and_then(|x| x.parse().ok()).unwrap_or(0);
    // "Command exited with non-zero status" is how time reports a failure.
    let ok = !err.contains("exited with non-zero status");
    ((wall, rss, ok), err.into_owned())
}

/// The CPU seconds (user + system) a run of [`measure_with_stderr`] took, from its stderr.
fn cpu_of_run(err: &str) -> f64 {
    let line = err.lines().find(|l| l.starts_with("__TIME__")).unwrap_or("__TIME__ 0 0 0 0");
    line.split_whitespace().skip(3).filter_map(|x| x.parse::<f64>().ok()).sum()
}

/// The CPU seconds (user + system) process `pid` has used so far, from /proc/PID/stat.
fn cpu_of_pid(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that ends the name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<f64>().ok()).sum();
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let per_second = TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf CLK_TCK");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("CLK_TCK is a number")
    });
    ticks / per_second
}

/// [`measure`] `n` times, each run's command made by `make(i)` (a fresh target each time):
/// the median wall time, the largest peak RSS, and whether every run succeeded.
fn measure_median(n: usize, mut make: impl FnMut(usize) -> Command) -> (f64, u64, bool) {
    summarize(&(0..n).map(|i| measure(&mut make(i))).collect::<Vec<_>>())
}

/// Several runs' [`measure`]s as one: the median wall time, the largest peak RSS, and whether
/// every run succeeded.
fn summarize(runs: &[(f64, u64, bool)]) -> (f64, u64, bool) {
    (median(runs.iter().map(|r| r.0).collect()), runs.iter().map(|r| r.1).max().unwrap_or(0), runs.iter().all(|r| r.2))
}

/// Makes a command writing to the given target path.
type MakeCmd<'a> = Box<dyn Fn(&str) -> Command + 'a>;

fn etcdctl(c: &Cluster, args: &[&str]) -> Command {
    let pki = c.nodes[0].pki_etcd();
    let mut cmd = Command::new(&etcd().etcdctl);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.nodes[0].client_url()))
        .arg(format!("--cacert={}", pki.join("ca.crt").display()))
        .arg(format!("--cert={}", pki.join("healthcheck-client.crt").display()))
        .arg(format!("--key={}", pki.join("healthcheck-client.key").display()))
        .args(args);
    cmd
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn health_bench() {
    println!("## health: 5-member cluster, etcd {}", etcd().version);
    println!("{:<10} {:>14} {:>14} {:>8}", "scenario", "kubectl etcd", "etcdctl x5", "ratio");
    let mut c = Cluster::start(5);
    for i in 0..200 {
        c.put(&format!("/k/{i}"), "v");
    }
    let leader = c.leader();
    let victim = (leader + 1) % 5;
    for scenario in ["healthy", "frozen", "killed"] {
        match scenario {
            "frozen" => c.freeze(victim),
            "killed" => {
                c.resume(victim);
                c.kill(victim);
            }
            _ => {}
        }
        let ours: Vec<f64> = (0..5)
            .map(|_| {
                let mut cmd = Command::new(bin("kubectl-etcd-health"));
                cmd.args(["--manifest", c.nodes[leader].manifest().to_str().unwrap(), "-o", "json"])
                    .env_remove("KUBECONFIG");
                measure(&mut cmd).0
            })
            .collect();
        let theirs: Vec<f64> = (0..3)
            .map(|_| {
                let cmds: [&[&str]; 5] = [
                    &["member", "list"],
                    &["endpoint", "health", "--cluster"],
                    &["endpoint", "status", "--cluster"],
                    &["alarm", "list"],
                    &["endpoint", "hashkv", "--cluster"],
                ];
                cmds.iter().map(|a| measure(&mut etcdctl(&c, a)).0).sum()
            })
            .collect();
        let (o, t) = (median(ours), median(theirs));
        println!("{:<10} {:>13.3}s {:>13.3}s {:>8.2}", scenario, o, t, o / t);
    }
}

async fn fill(c: &Cluster, mib: usize) {
    let mut client = c.client(0).await;
    let value = vec![b'x'; 100 * 1024];
    let n = mib * 10;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let ops: Vec<etcd_client::TxnOp> =
            chunk.iter().map(|i| etcd_client::TxnOp::put(format!("/bench/{i:08}"), value.clone(), None)).collect();
        client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
    }
}

fn snapshot_bench(mib: usize) {
    println!("\n## snapshot and restore: 1-member cluster, ~{mib} MiB database, etcd {}", etcd().version);
    let c = Cluster::start(1);
    let start = Instant::now();
    tokio::runtime::Runtime::new().unwrap().block_on(fill(&c, mib));
    println!("(filled in {:.1}s)", start.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.db");
    let theirs = dir.path().join("theirs.db");
    println!("{:<28} {:>10} {:>12}", "command", "wall", "peak RSS");
    let row = |name: &str, r: (f64, u64, bool)| {
        println!("{:<28} {:>9.2}s {:>9} MiB{}", name, r.0, r.1 / 1024, if r.2 { "" } else { "  (FAILED)" });
    };
    let mut cmd = Command::new(bin("kubectl-etcd-restore"));
    cmd.args(["--manifest", c.nodes[0].manifest().to_str().unwrap(), "snapshot", "save", ours.to_str().unwrap()]);
    row("kubectl etcd snapshot save", measure(&mut cmd));
    row("etcdctl snapshot save", measure(&mut etcdctl(&c, &["snapshot", "save", theirs.to_str().unwrap()])));
    let zst = dir.path().join("ours.db.zst");
    let mut cmd = Command::new(bin("kubectl-etcd-restore"));
    cmd.args(["--manifest", c.nodes[0].manifest().to_str().unwrap(), "snapshot", "save", "--compress", "zstd"]);
    cmd.arg(&zst);
    row("  ... --compress zstd", measure(&mut cmd));
    // The reads and restores below take well under a second: each row is the median of 5 runs.
    const RUNS: usize = 5;
    println!("(below: median of {RUNS} runs each)");
    let restore_cmd = |args: &[&str]| {
        let mut cmd = Command::new(bin("kubectl-etcd-restore"));
        cmd.args(args);
        cmd
    };
    let status_tool = etcd().etcdutl.clone().unwrap_or(etcd().etcdctl.clone());
    let tool_name = if etcd().etcdutl.is_some() { "etcdutl" } else { "etcdctl" };
    let tool = |args: &[&str], file: &std::path::Path| {
        let mut cmd = Command::new(&status_tool);
        cmd.env("ETCDCTL_API", "3").args(args).arg(file);
        cmd
    };
    let o = ours.to_str().unwrap();
    let z = zst.to_str().unwrap();
    row("kubectl etcd snapshot status", measure_median(RUNS, |_| restore_cmd(&["snapshot", "status", o])));
    row(
        "  ... --skip-hash-check",
        measure_median(RUNS, |_| restore_cmd(&["snapshot", "status", "--skip-hash-check", o])),
    );
    row(&format!("{tool_name} snapshot status"), measure_median(RUNS, |_| tool(&["snapshot", "status"], &ours)));
    row("kubectl etcd status (zstd)", measure_median(RUNS, |_| restore_cmd(&["snapshot", "status", z])));
    // A snapshot directory of 4 (hard links to one file: the same bytes, 4 trailers checked).
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    for i in 0..4 {
        std::fs::hard_link(&ours, backups.join(format!("etcd-snapshot-2026120{}T000000Z-{}.db", i + 1, i + 1)))
            .unwrap();
    }
    row(
        "kubectl etcd snapshot ls (4)",
        measure_median(RUNS, |_| restore_cmd(&["snapshot", "ls", backups.to_str().unwrap()])),
    );
    let ic = "m1=https://127.0.0.1:2380";
    // The writers take turns, run by run (a disk that slows down after a burst of writes
    // slows them all alike), and each run's output is removed once measured.
    let writers: Vec<(String, MakeCmd<'_>)> = vec![
        (
            "kubectl etcd restore apply".into(),
            Box::new(|t| restore_cmd(&["apply", o, "--data-dir", t, "--name", "m1", "--initial-cluster", ic])),
        ),
        (
            "  ... from the zstd file".into(),
            Box::new(|t| restore_cmd(&["apply", z, "--data-dir", t, "--name", "m1", "--initial-cluster", ic])),
        ),
        // What apply is held against: copying the file and fsyncing the copy.
        (
            "cp + fsync (reference)".into(),
            Box::new(|t| {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(r#"cp --reflink=never "$1" "$2" && sync "$2""#).arg("sh").arg(&ours).arg(t);
                cmd
            }),
        ),
        (
            format!("{tool_name} snapshot restore"),
            Box::new(|t| {
                let mut cmd = tool(&["snapshot", "restore"], &ours);
                cmd.args([
                    "--data-dir",
                    t,
                    "--name",
                    "m1",
                    "--initial-cluster",
                    ic,
                    "--initial-advertise-peer-urls",
                    "https://127.0.0.1:2380",
                ]);
                cmd
            }),
        ),
    ];
    let mut runs: Vec<Vec<(f64, u64, bool)>> = vec![Vec::new(); writers.len()];
    for _ in 0..RUNS {
        for (w, (_, make)) in writers.iter().enumerate() {
            let t = dir.path().join("out");
            runs[w].push(measure(&mut make(t.to_str().unwrap())));
            let _ = std::fs::remove_dir_all(&t).or_else(|_| std::fs::remove_file(&t));
        }
    }
    for ((name, _), r) in writers.iter().zip(runs) {
        row(
            name,
            (median(r.iter().map(|x| x.0).collect()), r.iter().map(|x| x.1).max().unwrap_or(0), r.iter().all(|x| x.2)),
        );
    }
    let size = std::fs::metadata(&ours).map(|m| m.len()).unwrap_or(0);
    let zsize = std::fs::metadata(&zst).map(|m| m.len()).unwrap_or(0);
    println!("(snapshot size {} MiB; zstd {} MiB)", size / (1024 * 1024), zsize / (1024 * 1024));
    let _ = Duration::ZERO;
}

/// A Kubernetes-shaped keyspace of about `mib` MiB: half in many small objects (1 KiB, each
/// written twice, as controllers update what they create), half in a few large ones rewritten
/// over and over (an event storm's history).
async fn fill_kubernetes(c: &Cluster, mib: usize) -> usize {
    let mut client = c.client(0).await;
    let small = mib * 256;
    let mut keys = 0;
    for round in 0..2u8 {
        for chunk in (0..small).collect::<Vec<_>>().chunks(100) {
            let ops: Vec<etcd_client::TxnOp> = chunk
                .iter()
                .map(|i| {
                    let mut v = b"k8s\0".to_vec();
                    v.resize(1024, round);
                    etcd_client::TxnOp::put(format!("/registry/configmaps/ns-{}/cm-{i:08}", i % 50), v, None)
                })
                .collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    }
    keys += small;
    let mut v = b"k8s\0".to_vec();
    v.resize(100 * 1024, b'e');
    for i in 0..mib * 5 {
        client.put(format!("/registry/events/default/storm.{}", i % 20), v.clone(), None).await.unwrap();
    }
    keys + 20
}

/// `usage FILE` beside `snapshot status --skip-hash-check` on the same snapshot (the goal: at
/// most twice its time, memory flat in the database's size).
fn usage_bench(mib: usize) {
    println!("\n## usage: 1-member cluster, ~{mib} MiB Kubernetes-shaped database, etcd {}", etcd().version);
    let c = Cluster::start(1);
    let start = Instant::now();
    let keys = tokio::runtime::Runtime::new().unwrap().block_on(fill_kubernetes(&c, mib));
    println!("(filled in {:.1}s: {keys} keys)", start.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("etcd.db");
    assert!(measure(&mut etcdctl(&c, &["snapshot", "save", snap.to_str().unwrap()])).2);
    let zst = dir.path().join("etcd.db.zst");
    let mut cmd = Command::new(bin("kubectl-etcd-restore"));
    cmd.args(["--manifest", c.nodes[0].manifest().to_str().unwrap(), "snapshot", "save", "--compress", "zstd"]);
    cmd.arg(&zst);
    assert!(measure(&mut cmd).2);
    const RUNS: usize = 5;
    println!(
        "(median of {RUNS} runs each; snapshot {} MiB)",
        std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0) >> 20
    );
    println!("{:<48} {:>10} {:>12}", "command", "wall", "peak RSS");
    let row = |name: &str, r: (f64, u64, bool)| {
        println!("{:<48} {:>9.2}s {:>9} MiB{}", name, r.0, r.1 / 1024, if r.2 { "" } else { "  (FAILED)" });
    };
    let plugin = |name: &str, args: &[&str]| {
        let mut cmd = Command::new(bin(name));
        cmd.args(args).stdout(std::process::Stdio::null());
        cmd
    };
    let f = snap.to_str().unwrap();
    let status =
        measure_median(RUNS, |_| plugin("kubectl-etcd-restore", &["snapshot", "status", "--skip-hash-check", f]));
    row("kubectl etcd snapshot status --skip-hash-check", status);
    let usage = measure_median(RUNS, |_| plugin("kubectl-etcd-defrag", &["usage", f, "-o", "json"]));
    row("kubectl etcd usage FILE", usage);
    let tool = etcd().etcdutl.clone().unwrap_or(etcd().etcdctl.clone());
    row(
        "etcdutl/etcdctl snapshot status",
        measure_median(RUNS, |_| {
            let mut cmd = Command::new(&tool);
            cmd.env("ETCDCTL_API", "3").args(["snapshot", "status", f]).stdout(std::process::Stdio::null());
            cmd
        }),
    );
    row(
        "kubectl etcd usage FILE.zst",
        measure_median(RUNS, |_| plugin("kubectl-etcd-defrag", &["usage", zst.to_str().unwrap(), "-o", "json"])),
    );
    let d = c.nodes[0].data_dir();
    row(
        "kubectl etcd usage DATA_DIR (etcd running)",
        measure_median(RUNS, |_| plugin("kubectl-etcd-defrag", &["usage", d.to_str().unwrap(), "-o", "json"])),
    );
    let m = c.nodes[0].manifest();
    row(
        "kubectl etcd usage (live, streamed)",
        measure_median(RUNS, |_| {
            plugin("kubectl-etcd-defrag", &["--manifest", m.to_str().unwrap(), "usage", "-o", "json"])
        }),
    );
    println!("usage / status --skip-hash-check: {:.2}x", usage.0 / status.0.max(1e-9));
}

/// Writes `mib` MiB of values and deletes every other one, then compacts: every member's DB
/// keeps its size with half of it free and half live (what a defrag must copy).
async fn fragment(c: &Cluster, mib: usize) {
    let mut client = c.client(0).await;
    let _ = client.delete("/bench/", Some(etcd_client::DeleteOptions::new().with_prefix())).await;
    fill(c, mib).await;
    let n = mib * 10;
    let mut rev = 0;
    for chunk in (0..n).step_by(2).collect::<Vec<_>>().chunks(50) {
        let ops: Vec<etcd_client::TxnOp> =
            chunk.iter().map(|i| etcd_client::TxnOp::delete(format!("/bench/{i:08}"), None)).collect();
        let r = client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        rev = r.header().unwrap().revision();
    }
    client.compact(rev, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    for i in 0..20 {
        client.put("/bench-tick", i.to_string(), None).await.unwrap();
    }
}

/// A dialer with the node's healthcheck-client certificate from its etcd PKI folder.
fn dialer(pki: &std::path::Path, dial_timeout: Duration) -> kubectl_etcd::reach::conn::Dialer {
    let sourced = |f: &str| Some(kubectl_etcd::reach::tls::Sourced { path: pki.join(f), source: "bench".into() });
    let files = kubectl_etcd::reach::tls::TlsFiles {
        ca: sourced("ca.crt"),
        cert: sourced("healthcheck-client.crt"),
        key: sourced("healthcheck-client.key"),
    };
    let tls = kubectl_etcd::reach::tls::TlsContext::load(&files, false).unwrap();
    kubectl_etcd::reach::conn::Dialer::new(tls, dial_timeout)
}

/// A writer putting one small key every 10 ms through the leader until `stop`; returns the
/// longest time one write took (the write outage) and how many failed.
fn background_writer(
    c: &Cluster,
    leader: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Duration, usize)> {
    let pki = c.nodes[leader].pki_etcd();
    let url = c.nodes[leader].client_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let mut client = dialer(&pki, Duration::from_secs(2)).client(&url).await.unwrap();
            let (mut worst, mut failed) = (Duration::ZERO, 0);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                if client.put("/bench-writer", i.to_string(), None).await.is_err() {
                    failed += 1;
                }
                worst = worst.max(t.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (worst, failed)
        })
    })
}

fn defrag_bench(mib: usize) {
    println!("\n## defrag: 3-member cluster, ~{mib} MiB fragmented per member, etcd {}", etcd().version);
    let c = Cluster::start(3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("{:<32} {:>10} {:>18} {:>8}", "command", "wall", "longest write", "failed");
    let run = |name: &str, cmd: &mut Command| {
        let start = Instant::now();
        rt.block_on(fragment(&c, mib));
        let filled = start.elapsed().as_secs_f64();
        let leader = c.leader();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = background_writer(&c, leader, stop.clone());
        std::thread::sleep(Duration::from_millis(500));
        let (wall, _, ok) = measure(cmd);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (worst, failed) = writer.join().unwrap();
        println!(
            "{:<32} {:>9.2}s {:>16.0}ms {:>8}{}   (fragmented in {filled:.0}s)",
            name,
            wall,
            worst.as_secs_f64() * 1000.0,
            failed,
            if ok { "" } else { "  (FAILED)" }
        );
    };
    let manifest = c.nodes[0].manifest();
    let mut ours = Command::new(bin("kubectl-etcd-defrag"));
    ours.args(["--manifest", manifest.to_str().unwrap()]).env_remove("KUBECONFIG");
    run("kubectl etcd defrag", &mut ours);
    let mut pause = Command::new(bin("kubectl-etcd-defrag"));
    pause.args(["--manifest", manifest.to_str().unwrap(), "--wait-between", "2s"]).env_remove("KUBECONFIG");
    run("  ... --wait-between 2s", &mut pause);
    let mut theirs = etcdctl(&c, &["defrag", "--cluster", "--command-timeout=10m"]);
    run("etcdctl defrag --cluster", &mut theirs);
}

fn doctor_bench(mib: usize) {
    println!("\n## doctor: a stopped member's data dir, ~{mib} MiB database, etcd {}", etcd().version);
    let mut c = Cluster::start(1);
    tokio::runtime::Runtime::new().unwrap().block_on(fill(&c, mib));
    c.stop(0);
    let dir = c.nodes[0].data_dir();
    let segments = std::fs::read_dir(dir.join("member/wal")).map(|d| d.count()).unwrap_or(0);
    let db = std::fs::metadata(dir.join("member/snap/db")).map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(bin("kubectl-etcd-restore"));
    cmd.args(["doctor", dir.to_str().unwrap()]).env_remove("KUBECONFIG");
    let (wall, rss, ok) = measure(&mut cmd);
    println!("{:<28} {:>10} {:>12}", "command", "wall", "peak RSS");
    println!(
        "{:<28} {:>9.2}s {:>9} MiB{}   ({segments} WAL segments, {} MiB database)",
        "kubectl etcd restore doctor",
        wall,
        rss / 1024,
        if ok { "" } else { "  (FAILED)" },
        db >> 20
    );
}

/// A plugin binary: from `BENCH_BIN_DIR` when set, else the build's own.
fn plugin_bin(name: &str) -> std::path::PathBuf {
    std::env::var_os("BENCH_BIN_DIR").map(|d| std::path::PathBuf::from(d).join(name)).unwrap_or_else(|| bin(name))
}

/// `kubectl etcd doctor logs` over a ~`mib` MiB log made of real etcd lines (a 3-member
/// cluster at info level, in the version's native format, that lost a member: startup, raft,
/// peer-unreachable and stream-lost lines), repeated; raw and CRI-wrapped as kubelet writes
/// it. Beside it, `grep -c -F` of every catalogue string over the same file: the floor of
/// reading and matching it.
fn logs_bench(mib: usize) {
    println!("\n## doctor logs: a ~{mib} MiB log of real etcd {} lines", etcd().version);
    let native: Vec<(&str, &str)> = if etcd().version == "3.4" { vec![("logger", "capnslog")] } else { vec![] };
    let mut c = native.iter().fold(Cluster::builder(3).flag("log-level", "info"), |b, (k, v)| b.flag(k, v)).start();
    for i in 0..100 {
        c.put(&format!("/k/{i}"), "v");
    }
    let leader = c.leader();
    c.kill((leader + 1) % 3);
    let log = c.nodes[leader].root.join("etcd.log");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("unhealthy").count() >= 4 || text.matches("could not connect").count() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let seed = std::fs::read(&log).unwrap();
    let dir = c.dir.path();
    let (raw, cri) = (dir.join("big.log"), dir.join("big-cri.log"));
    {
        use std::io::Write;
        let mut r = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
        let mut k = std::io::BufWriter::new(std::fs::File::create(&cri).unwrap());
        let mut n = 0usize;
        while n < mib << 20 {
            r.write_all(&seed).unwrap();
            for line in seed.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                k.write_all(b"2026-12-06T03:50:36.669123456Z stderr F ").unwrap();
                k.write_all(line).unwrap();
                k.write_all(b"\n").unwrap();
            }
            n += seed.len();
        }
    }
    let lines = std::fs::read(&raw).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0);
    // Every string the catalogue matches on, for grep.
    let catalogue: serde_json::Value =
        serde_json::from_str(include_str!("../shared/data/etcd-log-signatures.json")).unwrap();
    let mut patterns = Vec::new();
    for sig in catalogue["signatures"].as_array().unwrap() {
        for m in sig["match"].as_array().unwrap() {
            for key in ["contains", "msg"] {
                if let Some(p) = m[key].as_str() {
                    patterns.push(p.to_string());
                }
            }
        }
    }
    let pat = dir.join("patterns");
    std::fs::write(&pat, patterns.join("\n") + "\n").unwrap();
    println!("{:<44} {:>9} {:>10} {:>12}", "command", "wall", "peak RSS", "lines/s");
    for (what, file) in [("raw", &raw), ("CRI", &cri)] {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let mut ours = Command::new(plugin_bin("kubectl-etcd-doctor"));
        ours.args(["logs", "--log-file", file.to_str().unwrap(), "-o", "json"]).env_remove("KUBECONFIG");
        let (wall, rss, _) = measure_median(3, |_| {
            let mut c = Command::new(ours.get_program());
            c.args(ours.get_args());
            c
        });
        println!(
            "{:<44} {:>8.2}s {:>6} MiB {:>12.0}   ({} MiB, {lines} lines)",
            format!("kubectl etcd doctor logs ({what})"),
            wall,
            rss / 1024,
            lines as f64 / wall,
            size >> 20
        );
        let (wall, rss, _) = measure_median(3, |_| {
            let mut g = Command::new("grep");
            g.args(["-c", "-F", "-f", pat.to_str().unwrap(), file.to_str().unwrap()]);
            g
        });
        println!(
            "{:<44} {:>8.2}s {:>6} MiB {:>12.0}",
            format!("grep -c -F -f <{} catalogue strings> ({what})", patterns.len()),
            wall,
            rss / 1024,
            lines as f64 / wall
        );
    }
    let (wall, rss, _) = measure_median(3, |_| {
        let mut g = Command::new("grep");
        g.args(["-c", "unhealthy", raw.to_str().unwrap()]);
        g
    });
    println!("{:<44} {:>8.2}s {:>6} MiB {:>12.0}", "grep -c unhealthy (raw)", wall, rss / 1024, lines as f64 / wall);
}

/// `kubectl etcd health` from a "workstation" on one 5-member cluster: direct, through
/// port-forward tunnels with certificates, and through tunnels with none (the metrics report).
/// The API server is the harness's in-process fake, so the figures are the tunnels' own cost
/// (WebSocket framing, one tunnel per connection), not a real API server's and kubelet's hop.
fn port_forward_bench() {
    use harness::fakekube::{workstation_pods, FakeKube};
    println!("## health over port-forward: 5-member cluster, etcd {} (median of 5)", etcd().version);
    println!("{:<28} {:>10} {:>10} {:>8}", "route", "wall", "peak RSS", "ratio");
    let c = Cluster::start(5);
    for i in 0..200 {
        c.put(&format!("/k/{i}"), "v");
    }
    let kube = FakeKube::start(workstation_pods(&c), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let pki = c.nodes[0].pki_etcd();
    let (kc, pki) = (kc.to_str().unwrap().to_string(), pki.to_str().unwrap().to_string());
    let routes: [(&str, Vec<&str>); 3] = [
        ("direct (certificates)", vec!["--kubeconfig", &kc, "--pki-dir", &pki, "--transport", "direct"]),
        ("port-forward (certificates)", vec!["--kubeconfig", &kc, "--pki-dir", &pki]),
        ("port-forward (metrics only)", vec!["--kubeconfig", &kc]),
    ];
    let mut base = None;
    for (name, args) in routes {
        let runs: Vec<(f64, u64)> = (0..5)
            .map(|_| {
                let mut cmd = Command::new(bin("kubectl-etcd-health"));
                cmd.args(&args).args(["-o", "json"]).env_remove("KUBECONFIG").env("HOME", c.dir.path());
                let (wall, rss, ok) = measure(&mut cmd);
                assert!(ok, "{name} failed");
                (wall, rss)
            })
            .collect();
        let wall = median(runs.iter().map(|r| r.0).collect());
        let rss = runs.iter().map(|r| r.1).max().unwrap_or(0);
        let b = *base.get_or_insert(wall);
        println!("{:<28} {:>9.3}s {:>7} MiB {:>8.2}", name, wall, rss / 1024, wall / b);
    }
}

/// `snapshot save --dir` to a local directory beside `--dir s3://…` on the local S3 server
/// (s3s-fs): wall time, throughput and peak RSS (the upload's parts are bounded: 2 x 8 MiB).
fn objstore_bench(mib: usize) {
    println!(
        "\n## snapshot save to a bucket: 1-member cluster, ~{mib} MiB database, etcd {}, s3s-fs on loopback",
        etcd().version
    );
    let c = Cluster::start(1);
    tokio::runtime::Runtime::new().unwrap().block_on(fill(&c, mib));
    let s3 = S3::start();
    s3.create_bucket("bench");
    let dir = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    println!("{:<40} {:>9} {:>11} {:>10}", "command (median of 3)", "wall", "throughput", "peak RSS");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let save = |dirs: &str| {
        let mut cmd = Command::new(bin("kubectl-etcd-restore"));
        cmd.args(["--manifest", c.nodes[0].manifest().to_str().unwrap(), "snapshot", "save"]);
        for d in dirs.split(' ') {
            cmd.args(["--dir", d]);
        }
        cmd.args(["--keep", "1"]);
        // -v: the upload says how long the store took to complete it.
        if dirs.contains("s3://") {
            cmd.arg("-v");
        }
        for (k, v) in s3.env() {
            cmd.env(k, v);
        }
        cmd
    };
    let mut base = None;
    let mut local = None;
    for (name, d) in [
        ("snapshot save --dir LOCAL", dir.path().to_str().unwrap().to_string()),
        ("snapshot save --dir s3://bench/etcd", "s3://bench/etcd".to_string()),
        // The local save, fsynced, then the upload: the work of a bucket save before it skipped
        // the fsync of its private copy.
        ("snapshot save --dir LOCAL2 --dir s3://…", format!("{} s3://bench/both", dir2.path().display())),
    ] {
        // Each run's CPU seconds: the plugin's (from time), etcd's and the store's (from /proc).
        let (etcd_pid, store_pid) = (c.nodes[0].pid().unwrap(), s3.pid().unwrap());
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let (e0, s0) = (cpu_of_pid(etcd_pid), cpu_of_pid(store_pid));
                let (m, err) = measure_with_stderr(&mut save(&d));
                let cpu = (cpu_of_run(&err), cpu_of_pid(etcd_pid) - e0, cpu_of_pid(store_pid) - s0);
                (m, err, cpu)
            })
            .collect();
        let r = summarize(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
        // "… the store completed the upload in 0.90s", from -v.
        let completions: Vec<f64> = runs
            .iter()
            .filter_map(|(_, err, _)| {
                let at = err.find("the store completed the upload in ")? + "the store completed the upload in ".len();
                err[at..].split('s').next()?.parse().ok()
            })
            .collect();
        let completion = (!completions.is_empty()).then(|| median(completions));
        let cpu = |f: fn(&(f64, f64, f64)) -> f64| median(runs.iter().map(|r| f(&r.2)).collect());
        let (plugin, etcd_cpu, store) = (cpu(|x| x.0), cpu(|x| x.1), cpu(|x| x.2));
        let db =
            std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.metadata().unwrap().len()).max().unwrap_or(0);
        let mbs = db as f64 / (1 << 20) as f64 / r.0;
        let b = *base.get_or_insert(mbs);
        let local_wall = *local.get_or_insert(r.0);
        println!(
            "{:<40} {:>8.2}s {:>6.0} MiB/s {:>6} MiB{}  ({:.2}x local)",
            name,
            r.0,
            mbs,
            r.1 / 1024,
            if r.2 { "" } else { "  (FAILED)" },
            mbs / b,
        );
        // The floor this much work allows: everything but the store's completion spread over
        // every core with no core ever idle, then the completion, which only starts once the
        // last part has arrived and runs on one core.
        let tail = completion.unwrap_or(0.0);
        let floor = (plugin + etcd_cpu + store - tail) / cores as f64 + tail;
        println!(
            "{:<40} CPU: plugin {plugin:.2}s, etcd {etcd_cpu:.2}s, store {store:.2}s{}; on {cores} cores no schedule of that work ends before {floor:.2}s ({:.2}x local)",
            "",
            completion.map(|c| format!(" (its CompleteMultipartUpload {c:.2}s, after the last part)")).unwrap_or_default(),
            local_wall / floor
        );
    }
    // What the store itself costs: the saved file uploaded alone (same client, parts and
    // metadata; no etcd, no verification), in this process.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    for (k, v) in s3.env() {
        std::env::set_var(k, v);
    }
    let url = kubectl_etcd::store::objstore::BucketUrl::parse("s3://bench/plain").unwrap().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut walls: Vec<f64> = (0..3)
        .map(|i| {
            let b = kubectl_etcd::store::objstore::Bucket::open(&url, &Default::default()).unwrap();
            let meta = kubectl_etcd::store::objstore::ObjectMeta { sha256: "0".repeat(64), ..Default::default() };
            let t = Instant::now();
            rt.block_on(b.upload(&file, &format!("plain-{i}.db"), &meta)).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    walls.sort_by(f64::total_cmp);
    let mbs = len as f64 / (1 << 20) as f64 / walls[1];
    println!(
        "{:<40} {:>8.2}s {:>6.0} MiB/s {:>10}  ({:.2}x local)",
        "upload of that file alone (no etcd)",
        walls[1],
        mbs,
        "-",
        mbs / base.unwrap_or(mbs)
    );
}

/// Fleet health: 10 contexts (10 fake API servers, each in front of its own 1-member cluster,
/// reached through port-forward) with `--all-contexts`, against 10 `--context X` runs in a
/// row; then the same with three API servers dead (they accept connections and never answer:
/// each costs a deadline, 2s dial + 5s command timeout).
fn fleet_bench() {
    use harness::fakekube::{dead_api_server, workstation_pods, write_kubeconfig, FakeKube};
    println!("## fleet health: 10 contexts, each its own 1-member cluster, etcd {} (median of 3)", etcd().version);
    println!("{:<44} {:>10} {:>10} {:>8}", "run", "wall", "peak RSS", "ratio");
    let clusters: Vec<Cluster> = (0..10).map(|_| Cluster::start(1)).collect();
    let kubes: Vec<FakeKube> = clusters.iter().map(|c| FakeKube::start(workstation_pods(c), vec![])).collect();
    let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-").tempdir().unwrap();
    let dead_apis: Vec<_> = (0..3).map(|_| dead_api_server()).collect();
    let names: Vec<String> = (0..10).map(|i| format!("ctx-{i:02}")).collect();
    for (i, c) in clusters.iter().enumerate() {
        let to = dir.path().join("pki").join(&names[i]);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
            std::fs::copy(c.nodes[0].pki_etcd().join(f), to.join(f)).unwrap();
        }
    }
    let pki = format!("{}/pki/{{context}}", dir.path().display());
    for dead in [false, true] {
        let files: Vec<std::path::PathBuf> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let f = dir.path().join(format!("{n}.kubeconfig"));
                let url = if dead && i >= 7 { dead_apis[i - 7].1.clone() } else { kubes[i].url.clone() };
                write_kubeconfig(&f, n, &url);
                f
            })
            .collect();
        let kubeconfig = std::env::join_paths(&files).unwrap();
        let health = |extra: &[&str]| {
            let mut cmd = Command::new(bin("kubectl-etcd-health"));
            cmd.args(extra).args(["--pki-dir", &pki, "-o", "json"]);
            cmd.env("KUBECONFIG", &kubeconfig).env("HOME", dir.path());
            cmd
        };
        let title = if dead { "3 API servers dead" } else { "all healthy" };
        let fleet = summarize(&(0..3).map(|_| measure(&mut health(&["--all-contexts"]))).collect::<Vec<_>>());
        let in_a_row: Vec<(f64, u64, bool)> = (0..3)
            .map(|_| {
                let runs: Vec<_> = names.iter().map(|n| measure(&mut health(&["--context", n]))).collect();
                (runs.iter().map(|r| r.0).sum(), runs.iter().map(|r| r.1).max().unwrap_or(0), runs.iter().all(|r| r.2))
            })
            .collect();
        let row = summarize(&in_a_row);
        // The success flags say whether the exit codes were as expected (0, or 3 with a dead API).
        assert_eq!(fleet.2, !dead, "fleet exit code");
        assert_eq!(row.2, !dead, "exit codes in a row");
        println!("{:<44} {:>9.3}s {:>7} MiB {:>8.2}", format!("{title}: --all-contexts"), fleet.0, fleet.1 / 1024, 1.0);
        println!(
            "{:<44} {:>9.3}s {:>7} MiB {:>8.2}",
            format!("{title}: 10 x --context, in a row"),
            row.0,
            row.1 / 1024,
            row.0 / fleet.0
        );
    }
    let etcdctl_row: Vec<(f64, u64, bool)> = (0..3)
        .map(|_| {
            let runs: Vec<_> = clusters
                .iter()
                .map(|c| measure(&mut etcdctl(c, &["endpoint", "status", "--cluster", "-w", "json"])))
                .collect();
            (runs.iter().map(|r| r.0).sum(), runs.iter().map(|r| r.1).max().unwrap_or(0), runs.iter().all(|r| r.2))
        })
        .collect();
    let e = summarize(&etcdctl_row);
    println!("{:<44} {:>9.3}s {:>7} MiB {:>8}", "etcdctl endpoint status x 10, direct, in a row", e.0, e.1 / 1024, "-");
}

/// A writer putting one small key every 10 ms, each through the next endpoint in turn and, when
/// that one fails, through the others (as a client configured with every endpoint does); records
/// the time of each acknowledged write and the keys acknowledged.
fn failover_writer(
    c: &Cluster,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Instant>, Vec<String>, usize)> {
    let pki = c.nodes[0].pki_etcd();
    let urls: Vec<String> = c.nodes.iter().map(|n| n.client_url()).collect();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let dialer = dialer(&pki, Duration::from_millis(500));
            let (mut acks, mut keys, mut failed) = (Vec::new(), Vec::new(), 0usize);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("/bench-upgrade/{i:08}");
                for k in 0..urls.len() {
                    let url = &urls[(i as usize + k) % urls.len()];
                    let put = async {
                        let mut c = dialer.client(url).await.map_err(|e| e.to_string())?;
                        c.put(key.as_str(), "v", None).await.map_err(|e| e.to_string())
                    };
                    match tokio::time::timeout(Duration::from_secs(2), put).await {
                        Ok(Ok(_)) => {
                            acks.push(Instant::now());
                            keys.push(key.clone());
                            break;
                        }
                        _ => failed += 1,
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acks, keys, failed)
        })
    })
}

/// The longest gap between two acknowledged writes that overlaps `[from, to]`.
fn longest_gap(acks: &[Instant], from: Instant, to: Instant) -> Duration {
    acks.windows(2).filter(|w| w[1] >= from && w[0] <= to).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// `upgrade node` on each of three members (3.4.23 → 3.5.1 under the kubelet emulation) beside
/// the same roll done by hand the kubeadm way (the manifest's image edited in place, no leader
/// move, then wait for the member): the longest write outage per member, seen by a client that
/// writes through every endpoint, and whether any acknowledged write was lost.
fn upgrade_bench() {
    println!("\n## upgrade: 3 members 3.4.23 → 3.5.1 under the kubelet emulation, a writer through every endpoint");
    println!("(--election-timeout 1000 ms, etcd's default; a member down longer than that without a leader move costs an election)");
    println!("{:<40} {:>8} {:>26} {:>8} {:>6}", "roll", "wall", "longest outage per member", "retries", "lost");
    for by_hand in [false, true] {
        let mut c = Cluster::builder(3).kubeadm_manifests().etcd_version("3.4").start();
        for i in 0..3 {
            c.kubelet(i);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = failover_writer(&c, stop.clone());
        std::thread::sleep(Duration::from_millis(500));
        let snaps = tempfile::tempdir().unwrap();
        let leader = c.leader();
        // kubectl etcd: the leader's node first (it moves leadership away); by hand: in order.
        let order: Vec<usize> = if by_hand {
            vec![0, 1, 2]
        } else {
            std::iter::once(leader).chain((0..3).filter(|i| *i != leader)).collect()
        };
        let start = Instant::now();
        let mut windows = Vec::new();
        for i in &order {
            let from = Instant::now();
            if by_hand {
                let m = c.nodes[*i].manifest();
                let text = std::fs::read_to_string(&m).unwrap().replace("etcd:3.4.23-0", "etcd:3.5.1-0");
                std::fs::write(&m, text).unwrap();
                let url = c.nodes[*i].client_url();
                wait_for("the member on 3.5.1", Duration::from_secs(120), || {
                    let o = c.etcdctl(&url, &["endpoint", "status", "-w", "json"]);
                    String::from_utf8_lossy(&o.stdout).contains("\"version\":\"3.5.1\"").then_some(())
                });
                wait_for("the member healthy", Duration::from_secs(120), || {
                    c.etcdctl(&url, &["endpoint", "health"]).status.success().then_some(())
                });
            } else {
                let manifest = c.nodes[*i].manifest();
                let o = Command::new(bin("kubectl-etcd-upgrade"))
                    .args(["node", "--to", "3.5.1", "--yes", "--timeout", "120s", "--manifest"])
                    .arg(&manifest)
                    .arg("--snapshot-dir")
                    .arg(snaps.path())
                    .env_remove("KUBECONFIG")
                    .output()
                    .unwrap();
                assert!(o.status.success(), "upgrade node: {}", String::from_utf8_lossy(&o.stderr));
            }
            windows.push((from, Instant::now()));
        }
        let wall = start.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (acks, keys, failed) = writer.join().unwrap();
        let got = c.etcdctl(&c.endpoints(), &["get", "/bench-upgrade/", "--prefix", "--keys-only"]);
        let have: std::collections::BTreeSet<String> =
            String::from_utf8_lossy(&got.stdout).lines().filter(|l| !l.is_empty()).map(String::from).collect();
        let lost = keys.iter().filter(|k| !have.contains(*k)).count();
        let gaps: Vec<String> =
            windows.iter().map(|(a, b)| format!("{:.0}", longest_gap(&acks, *a, *b).as_secs_f64() * 1000.0)).collect();
        let name = if by_hand { "by hand (image edited, no leader move)" } else { "kubectl etcd upgrade node" };
        println!("{:<40} {:>7.1}s {:>23} ms {:>8} {:>6}", name, wall, gaps.join(" / "), failed, lost);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().cloned().unwrap_or_else(|| "all".into());
    let mib = args
        .iter()
        .position(|a| a == "--size-mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    if what == "health" || what == "all" {
        health_bench();
    }
    if what == "port-forward" || what == "all" {
        port_forward_bench();
    }
    if what == "fleet" || what == "all" {
        fleet_bench();
    }
    if what == "snapshot" || what == "all" {
        snapshot_bench(mib);
    }
    if what == "objstore" || what == "all" {
        objstore_bench(mib);
    }
    if what == "defrag" || what == "all" {
        defrag_bench(mib);
    }
    if what == "doctor" || what == "all" {
        doctor_bench(mib);
    }
    if what == "logs" || what == "all" {
        // A log of 100 MiB unless asked otherwise for this bench alone.
        let sized = what == "logs" && args.iter().any(|a| a == "--size-mib");
        logs_bench(if sized { mib } else { 100 });
    }
    if what == "upgrade" || what == "all" {
        upgrade_bench();
    }
    if what == "usage" || what == "all" {
        usage_bench(mib);
    }
}
