//! `kubectl etcd health` against real etcd clusters (3.4 or 3.5, by `E2E_ETCD_VERSION`).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";

fn health(c: &Cluster, extra: &[&str]) -> (std::process::Output, Value, Duration) {
    let mut args: Vec<String> = c.manifest_args();
    args.extend(["-o".to_string(), "json".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let o = run_plugin(HEALTH, &a, &[]);
    let took = start.elapsed();
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o, doc, took)
}

fn member<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing: {doc:#}"))
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("check {name} missing: {doc:#}"))
}

#[test]
fn healthy_cluster_reports_everything_consistent() {
    let c = Cluster::start(3);
    c.put("/registry/pods/default/a", "1");
    let (o, doc, _) = health(&c, &[]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["healthy"], true);
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m["is_leader"] == true).count(), 1, "exactly one leader");
    let leader = doc["leader"].as_str().unwrap();
    for m in members {
        for field in [
            "name",
            "id",
            "endpoint",
            "health",
            "latency_ms",
            "is_leader",
            "is_learner",
            "version",
            "db_size",
            "db_size_in_use",
            "raft_term",
            "raft_index",
            "raft_applied_index",
            "applied_lag",
            "leader",
            "revision",
            "errors",
            "peer_urls",
            "client_urls",
            "server_cert",
            "hash_kv",
            "quota_backend_bytes",
        ] {
            assert!(m.get(field).is_some(), "member field {field} missing: {m:#}");
        }
        assert_eq!(m["leader"], leader, "every member agrees on the leader");
        assert!(m["latency_ms"].as_f64().unwrap() > 0.0, "{m:#}");
        assert_eq!(m["version"].as_str().unwrap().split('.').take(2).collect::<Vec<_>>().join("."), etcd().version);
        assert_eq!(m["hash_kv"], members[0]["hash_kv"]);
        assert_eq!(m["server_cert"]["subject"], m["name"]);
    }
    // The disk check is judged against this machine's disk: consistent with the figures.
    // On a node: the local member's metrics through the manifest's --listen-metrics-urls.
    assert_disk_verdict(&doc, 1);
    for ch in doc["checks"].as_array().unwrap().iter().filter(|c| c["name"] != "disk") {
        assert_eq!(ch["status"], "ok", "{ch:#}");
    }
    assert!(check(&doc, "hash")["message"].as_str().unwrap().starts_with("3 voters agree at revision"));
    assert_eq!(check(&doc, "quorum")["message"], "3/3 voters in quorum, 2 needed, may lose 1 more");
    assert!(doc["cluster_id"].as_str().unwrap().len() == 16);
}

/// What a run costs here besides waiting: a health run of the healthy cluster, measured in the
/// test that then bounds a faulty run by one deadline plus this (and 500 ms of jitter).
fn allowance(c: &Cluster, seed: usize) -> Duration {
    let (o, doc, took) = health_seeded(c, seed, &["--command-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    took + Duration::from_millis(500)
}

/// The lines of `text` that are whole (a round still being written is left out).
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(str::trim_end)
}

fn health_seeded(c: &Cluster, seed: usize, extra: &[&str]) -> (std::process::Output, Value, Duration) {
    let manifest = c.nodes[seed].manifest().display().to_string();
    let mut args = vec!["--manifest", manifest.as_str(), "-o", "json"];
    args.extend(extra);
    let start = Instant::now();
    let o = run_plugin(HEALTH, &args, &[]);
    let took = start.elapsed();
    let doc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o, doc, took)
}

#[test]
fn frozen_member_times_out_within_one_deadline() {
    let mut c = Cluster::start(3);
    // Freeze a follower, and ask another follower (through its manifest).
    let leader = c.leader();
    let frozen = (leader + 1) % 3;
    let seed = (leader + 2) % 3;
    let allowance = allowance(&c, seed);
    c.freeze(frozen);
    let (o, doc, took) = health_seeded(&c, seed, &["--command-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let m = member(&doc, &c.nodes[frozen].name);
    assert_eq!(m["failure"]["class"], "timed_out", "{m:#}");
    assert_eq!(m["errors"][0], "timed out");
    for n in [leader, seed] {
        assert_eq!(member(&doc, &c.nodes[n].name)["health"], "healthy", "{doc:#}");
    }
    assert_eq!(check(&doc, "quorum")["message"], "2/3 voters in quorum, 2 needed, may lose 0 more");
    assert_eq!(check(&doc, "members")["status"], "fail");
    assert_eq!(check(&doc, "leader")["status"], "ok");
    // One deadline for the whole run, not one per check or per member.
    assert!(took < Duration::from_millis(3000) + allowance, "took {took:?}, allowance {allowance:?}");
    c.resume(frozen);
}

#[test]
fn frozen_leader_is_named_and_costs_one_deadline() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let allowance = allowance(&c, (leader + 1) % 3);
    c.freeze(leader);
    let (o, doc, took) = health_seeded(&c, (leader + 1) % 3, &["--command-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(member(&doc, &c.nodes[leader].name)["failure"]["class"], "timed_out");
    let l = check(&doc, "leader");
    // The followers still name the frozen leader, or know none yet, or already elected another:
    // never "ok" with the frozen member as leader.
    let msg = l["message"].as_str().unwrap();
    assert!(
        (l["status"] == "fail" && (msg.contains("which does not answer") || msg.contains("no member knows a leader")))
            || (l["status"] == "ok" && !msg.contains(&c.nodes[leader].name)),
        "{l:#}"
    );
    // One deadline: the followers' reads wait out the election inside it.
    assert!(took < Duration::from_millis(3000) + allowance, "took {took:?}, allowance {allowance:?}");
    c.resume(leader);
}

#[test]
fn killed_member_is_refused_at_once() {
    let mut c = Cluster::start(3);
    // A follower other than node-0 (whose manifest the plugin reads): with the leader gone, the
    // others' reads would wait for an election, which is not what this test measures.
    let leader = c.leader();
    let victim = (1..3).find(|i| *i != leader).unwrap();
    let name = c.nodes[victim].name.clone();
    c.kill(victim);
    let (o, doc, took) = health(&c, &["--command-timeout", "10s"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let dead = member(&doc, &name);
    assert_eq!(dead["failure"]["class"], "connection_refused", "{dead:#}");
    assert_eq!(dead["errors"][0], "connection refused");
    assert!(took < Duration::from_secs(5), "a refused connection must not wait for the 10 s deadline: {took:?}");
    // The table names it too.
    let o = run_plugin(HEALTH, &c.manifest_args().iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with(&name) && l.contains("unhealthy") && l.contains("connection refused")),
        "{out}"
    );
}

#[test]
fn this_nodes_member_down_finds_the_others_through_the_data_dir() {
    // kubeadm's first control-plane node: its manifest lists only itself in --initial-cluster,
    // and its member is the one that is down. The others are found in its data dir's backend.
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    let m0 = kubectl_etcd::reach::discovery::Manifest::load(&c.nodes[0].manifest()).unwrap();
    assert_eq!(m0.flag("initial-cluster").unwrap().split(',').count(), 1, "first-node manifest lists only itself");
    c.kill(0);
    // When node-0 led, the other two elect a leader first (reads fail with "leader changed"
    // until then); health reports that correctly, but this test is about discovery.
    let others = format!("{},{}", c.nodes[1].client_url(), c.nodes[2].client_url());
    wait_for("a leader among node-1 and node-2", Duration::from_secs(10), || {
        c.etcdctl(&others, &["endpoint", "health"]).status.success().then_some(())
    });
    let (o, doc, _) = health_seeded(&c, 0, &["-v"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}\n{}", stderr(&o));
    assert_eq!(member(&doc, "node-0")["failure"]["class"], "connection_refused", "{doc:#}");
    for n in ["node-1", "node-2"] {
        assert_eq!(member(&doc, n)["health"], "healthy", "{doc:#}");
    }
    assert_eq!(check(&doc, "quorum")["message"], "2/3 voters in quorum, 2 needed, may lose 0 more", "{doc:#}");
    assert_eq!(
        check(&doc, "members")["message"].as_str().unwrap().split(';').next().unwrap(),
        "2/3 voting members healthy"
    );
    assert_eq!(check(&doc, "leader")["status"], "ok", "{doc:#}");
    // Which source gave the other members: in the report and with -v.
    let db = c.nodes[0].data_dir().join("member/snap/db").display().to_string();
    let found: Vec<&Value> =
        doc["discovered"].as_array().unwrap().iter().filter(|e| e["source"].as_str().unwrap().contains(&db)).collect();
    assert_eq!(found.len(), 2, "{doc:#}");
    assert!(check(&doc, "discovery")["message"].as_str().unwrap().contains("members bucket of"), "{doc:#}");
    assert!(stderr(&o).contains("this node's member does not answer; trying"), "{}", stderr(&o));
}

#[test]
fn endpoint_aliases_count_each_member_once() {
    let c = Cluster::start(3);
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let n0 = &c.nodes[0];
    let endpoints = format!(
        "https://localhost:{},{},{},{}",
        n0.client_port,
        n0.client_url(),
        c.nodes[1].client_url(),
        c.nodes[2].client_url()
    );
    let o = run_plugin(
        HEALTH,
        &tls_args(&endpoints, &p("ca.crt"), &p("healthcheck-client.crt"), &p("healthcheck-client.key")),
        &[],
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["members"].as_array().unwrap().len(), 3, "{doc:#}");
    assert_eq!(check(&doc, "quorum")["message"], "3/3 voters in quorum, 2 needed, may lose 1 more");
    assert_eq!(check(&doc, "members")["message"], "3/3 voting members healthy");
    assert!(check(&doc, "discovery")["message"].as_str().unwrap().contains("counted once"), "{doc:#}");
}

fn tls_args<'a>(url: &'a str, ca: &'a str, cert: &'a str, key: &'a str) -> Vec<&'a str> {
    vec!["--endpoints", url, "--cacert", ca, "--cert", cert, "--key", key, "-o", "json"]
}

#[test]
fn tls_failures_each_have_their_own_message() {
    let c = Cluster::builder(1).server_dns(&[]).start();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::foreign(other_dir.path());
    Pki::write_pair(
        other_dir.path(),
        "client",
        &other.issue("intruder", None, &[], &[], harness::pki::Usage::Client, false),
    );
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let (ca, cert, key) = (p("ca.crt"), p("healthcheck-client.crt"), p("healthcheck-client.key"));
    let url = c.nodes[0].client_url();
    let other_ca = other_dir.path().join("ca.crt").display().to_string();
    let other_cert = other_dir.path().join("client.crt").display().to_string();
    let other_key = other_dir.path().join("client.key").display().to_string();
    let by_name = format!("https://localhost:{}", c.nodes[0].client_port);
    let plain = url.replace("https://", "http://");
    Pki::write_pair(
        other_dir.path(),
        "expired",
        &c.pki.issue("old-client", None, &[], &[], harness::pki::Usage::Client, true),
    );
    let expired_cert = other_dir.path().join("expired.crt").display().to_string();
    let expired_key = other_dir.path().join("expired.key").display().to_string();

    let cases = [
        (tls_args(&url, &other_ca, &cert, &key), "tls: certificate signed by unknown authority", "--cacert"),
        (tls_args(&url, &ca, &other_cert, &other_key), "tls: client certificate rejected", "--trusted-ca-file"),
        (tls_args(&by_name, &ca, &cert, &key), "tls: certificate name mismatch", "SANs"),
        (
            tls_args(&url, &ca, &expired_cert, &expired_key),
            "tls: client certificate rejected",
            "our client certificate (old-client) expired on",
        ),
        (tls_args(&plain, &ca, &cert, &key), "tls: server requires TLS (use https://)", "use https://"),
    ];
    for (args, short, hint) in cases {
        // Every member refusing our TLS is a transport failure of ours, not a lost quorum.
        let o = run_plugin(HEALTH, &args, &[]);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{}", stdout(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(short) && err.contains(hint), "{err}");
        assert!(!err.contains("quorum"), "{err}");
    }
}

#[test]
fn running_learner_is_reported_with_progress_and_cluster_stays_healthy() {
    let mut c = Cluster::start(3);
    for i in 0..20 {
        c.put(&format!("/k/{i}"), "v");
    }
    let l = c.add_learner("learner-1", true);
    let name = c.nodes[l].name.clone();
    // The learner catches up within a moment; poll until it reports in sync.
    let doc = wait_for("the learner to be in sync", Duration::from_secs(20), || {
        let (o, doc, _) = health(&c, &[]);
        let m = member(&doc, &name).clone();
        (o.status.code() == Some(0) && m["learner"]["state"] == "in sync").then_some(doc)
    });
    let m = member(&doc, &name);
    assert_eq!(m["is_learner"], true);
    assert!(m["health"].as_str().unwrap().starts_with("learner: in sync"), "{m:#}");
    assert!(m["learner"]["percent"].as_f64().unwrap() >= 90.0);
    assert_eq!(m["learner"]["promotable"], true);
    assert_eq!(m["errors"].as_array().unwrap().len(), 0, "a learner refusing reads is not an error: {m:#}");
    assert_eq!(doc["healthy"], true);
    assert_eq!(check(&doc, "member-count")["status"], "ok", "learners do not count as voters");
}

#[test]
fn unstarted_learner_is_reported_as_not_started() {
    let mut c = Cluster::start(3);
    c.add_learner("learner-x", false);
    let (o, doc, _) = health(&c, &[]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    let m = doc["members"].as_array().unwrap().iter().find(|m| m["is_learner"] == true).unwrap();
    assert_eq!(m["health"], "learner: not started");
    assert_eq!(m["name"], "");
}

#[tokio::test(flavor = "multi_thread")]
async fn nospace_alarm_fails_and_names_the_member() {
    let c = Cluster::builder(3).quota(2 * 1024 * 1024).start();
    c.fill_until_nospace("/fill/", 200, 200).await;
    let (o, doc, _) = tokio::task::block_in_place(|| health(&c, &[]));
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let alarms = check(&doc, "alarms");
    assert_eq!(alarms["status"], "fail");
    let msg = alarms["message"].as_str().unwrap();
    assert!(msg.contains("NOSPACE on node-"), "{msg}");
    assert!(alarms["hint"].as_str().unwrap().contains("kubectl etcd defrag --compact --disarm"));
}

#[test]
fn output_formats_parse() {
    let c = Cluster::start(5);
    let base = c.manifest_args();
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
        a.extend(extra);
        let o = run_plugin(HEALTH, &a, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let yaml = run(&["-o", "yaml"]);
    let doc: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(doc["members"].as_array().unwrap().len(), 5);
    assert_eq!(doc["healthy"], true);

    // The default table fits a 120-column terminal with five members, kubectl's columns.
    let table = run(&[]);
    let header = table.lines().next().unwrap();
    let cols: Vec<&str> = header.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        cols,
        ["NAME", "ENDPOINT", "HEALTH", "LATENCY", "ROLE", "VERSION", "DB SIZE", "IN USE", "ERRORS"],
        "{header}"
    );
    for line in table.lines() {
        assert!(line.chars().count() <= 120, "{} columns: {line}\n{table}", line.chars().count());
    }
    assert_eq!(table.lines().filter(|l| l.contains(" leader ")).count(), 1, "{table}");
    assert_eq!(table.lines().filter(|l| l.contains(" follower ")).count(), 4, "{table}");

    // --no-headers: the members only, nine columns that awk splits, no blank inside a value.
    let bare = run(&["--no-headers"]);
    assert!(bare.lines().next().unwrap().starts_with("node-"), "{bare}");
    assert!(!bare.contains("NAME"), "{bare}");
    assert_eq!(bare.lines().count(), 5, "{bare}");
    for line in bare.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 9, "{line}");
        assert!(fields[1].starts_with("https://127.0.0.1:"), "{line}");
        assert!(fields[6].ends_with("KiB") || fields[6].ends_with("MiB"), "{line}");
        assert!(fields[7].ends_with('%'), "{line}");
    }

    // -o jsonpath, kubectl's syntax for the simple paths.
    assert_eq!(run(&["-o", "jsonpath={.quorum.can_lose}"]), "2");
    let leader = run(&["-o", "jsonpath={.members[?(@.is_leader==true)].name}"]);
    assert_eq!(leader, c.nodes[c.leader()].name);
    assert_eq!(run(&["-o", "jsonpath={.members[*].name}"]), "node-0 node-1 node-2 node-3 node-4");
    assert_eq!(run(&["-o", "jsonpath={.checks[?(@.status==\"fail\")].name}"]), "");
    let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
    a.extend(["-o", "jsonpath={range .members[*]}{.name}{end}"]);
    let o = run_plugin(HEALTH, &a, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("{range}/{end} is not supported"), "{}", stderr(&o));

    let wide = run(&["-o", "wide"]);
    let header = wide.lines().next().unwrap();
    for col in [
        "ID",
        "RAFT TERM",
        "RAFT INDEX",
        "APPLIED",
        "PEER URLS",
        "CLIENT URLS",
        "APPLIED LAG",
        "QUOTA",
        "WAL FSYNC P99",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(wide.contains(&c.nodes[1].peer_url()));

    // Colour: none into a pipe, none with --color never or NO_COLOR; with --color always the
    // same table, its health and check statuses in green (ok) or yellow/red, columns unmoved.
    let plain = run(&[]);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(!run(&["--color", "never"]).contains('\x1b'));
    let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
    a.extend(["--color", "auto"]);
    assert!(!stdout(&run_plugin(HEALTH, &a, &[("NO_COLOR", "1")])).contains('\x1b'));
    let colored = run(&["--color", "always"]);
    assert!(colored.contains("\x1b["), "{colored}");
    assert_eq!(strip_ansi(&colored).lines().next(), plain.lines().next());
    assert_eq!(strip_ansi(&colored).lines().count(), plain.lines().count(), "{}\n---\n{plain}", strip_ansi(&colored));
    let green =
        |word: &str| colored.lines().any(|l| l.contains(&format!("32m{word}")) || l.contains(&format!("2m{word}")));
    assert!(green("healthy") && green("ok"), "{colored:?}");
    assert!(!run(&["--color", "always", "-o", "json"]).contains('\x1b'));
    // CLICOLOR_FORCE colours a pipe too (anstream's choice), unless NO_COLOR says otherwise.
    assert!(stdout(&run_plugin(HEALTH, &a, &[("CLICOLOR_FORCE", "1")])).contains("\x1b["));
    assert!(!stdout(&run_plugin(HEALTH, &a, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])).contains('\x1b'));
}

/// Every round one JSON document; SIGINT or SIGTERM ends the watch as a shell reports a
/// process ended by that signal (130, 143), with nothing on stderr.
#[test]
fn watch_prints_one_json_document_per_round() {
    let c = Cluster::start(1);
    let mut args = c.manifest_args();
    args.extend(["--watch", "--interval", "200ms", "-o", "json"].map(String::from));
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = spawn_plugin(HEALTH, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        let rounds = wait_for("three watch rounds", Duration::from_secs(60), || {
            assert!(!child.exited(), "{}", child.stderr_now());
            let t = child.stdout_now();
            (complete_lines(&t).count() >= 3).then_some(t)
        });
        for line in complete_lines(&rounds) {
            let doc: Value = serde_json::from_str(line).unwrap();
            assert_eq!(doc["healthy"], true);
        }
        child.signal(sig);
        let out = child.wait(Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(code), "{sig}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{sig}: {}", stderr(&out));
    }
}

/// In a table, each `--watch` round is headed as watch(1) heads its screens: the interval, the
/// round's number and its time.
#[test]
fn watch_heads_each_table_round_with_its_number_and_time() {
    let c = Cluster::start(1);
    let mut args = c.manifest_args();
    args.extend(["--watch", "--interval", "200ms"].map(String::from));
    let mut child = spawn_plugin(HEALTH, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let text = wait_for("two table rounds", Duration::from_secs(60), || {
        assert!(!child.exited(), "{}", child.stderr_now());
        let t = child.stdout_now();
        t.contains("Every 200ms: round 2, ").then_some(t)
    });
    let first = text.find("Every 200ms: round 1, ").unwrap_or_else(|| panic!("{text}"));
    assert!(text[first..].lines().next().unwrap().ends_with(" UTC"), "{text}");
    assert!(text[first..].contains("ENDPOINT") || text[first..].contains("NAME"), "{text}");
    child.signal(libc::SIGINT);
    assert_eq!(child.wait(Duration::from_secs(30)).status.code(), Some(130));
}

/// `-o json` follows shared/docs/health.schema.json, healthy or not, and every `--watch` round is one
/// versioned document with its own time.
#[test]
fn json_follows_the_documented_schema() {
    let schema = harness::schema::load("health.schema.json");
    let mut c = Cluster::start(3);
    let (_, doc, _) = health(&c, &[]);
    assert_eq!(harness::schema::violations(&schema, &doc), Vec::<String>::new(), "{doc:#}");
    // The cluster version every member runs at, and in the versions check.
    let cv = format!("{}.0", etcd().version);
    assert!(doc["members"].as_array().unwrap().iter().all(|m| m["cluster_version"] == cv.as_str()), "{doc:#}");
    let versions = doc["checks"].as_array().unwrap().iter().find(|c| c["name"] == "versions").unwrap();
    assert!(versions["message"].as_str().unwrap().ends_with(&format!("cluster version {cv}")), "{versions}");
    assert_eq!(doc["apiVersion"], "kubectl-etcd/v1");
    assert_eq!(doc["kind"], "HealthReport");
    assert_eq!(
        doc["quorum"],
        serde_json::json!({"voters": 3, "answering": 3, "in_quorum": 3, "needed": 2, "can_lose": 1})
    );
    c.kill(2);
    let (o, doc, _) = health(&c, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(harness::schema::violations(&schema, &doc), Vec::<String>::new(), "{doc:#}");
    assert_eq!(
        doc["quorum"],
        serde_json::json!({"voters": 3, "answering": 2, "in_quorum": 2, "needed": 2, "can_lose": 0})
    );
    // The checker itself catches a wrong document.
    let mut bad = doc.clone();
    bad["members"][0]["latency_ms"] = "15.556ms".into();
    bad["quorum"].as_object_mut().unwrap().remove("needed");
    assert_eq!(harness::schema::violations(&schema, &bad).len(), 2, "{:?}", harness::schema::violations(&schema, &bad));

    let mut args = c.manifest_args();
    args.extend(["--watch", "--interval", "300ms", "-o", "json"].map(String::from));
    let mut child = spawn_plugin(HEALTH, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let text = wait_for("two watch rounds", Duration::from_secs(60), || {
        let t = child.stdout_now();
        (complete_lines(&t).count() >= 2).then_some(t)
    });
    assert!(!child.exited(), "{}", child.stderr_now());
    let rounds: Vec<Value> = complete_lines(&text).take(2).map(|l| serde_json::from_str(l).unwrap()).collect();
    drop(child);
    for r in &rounds {
        assert_eq!(harness::schema::violations(&schema, r), Vec::<String>::new(), "{r:#}");
    }
    assert_ne!(rounds[0]["time"], rounds[1]["time"]);
}

/// Issue 25 (3): a member that answers Status — following the quorum's leader, in its term, a few
/// entries behind — and serves serializable reads, but takes no writes and no linearizable reads,
/// is not healthy and not in quorum, and its row says why. The shape: its WAL disk hangs
/// (`--wal-dir` on a file system frozen with fsfreeze), so it cannot persist the entries it
/// receives, nor apply them, nor send the messages a read needs. etcd answers Status from memory,
/// so a health check on Status alone calls it healthy.
#[test]
fn a_member_whose_wal_disk_hangs_is_not_healthy() {
    let disk = HangingDisk::new(256);
    let wal = disk.path().join("wal");
    let c = Cluster::builder(3).node_flag(2, "wal-dir", wal.to_str().unwrap()).start();
    let hung = c.nodes[2].name.clone();
    let ids: std::collections::BTreeMap<String, u64> = c
        .member_list()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["ID"].as_u64().unwrap()))
        .collect();
    // A follower: the leader's own Status would not follow anyone else.
    if c.leader() == 2 {
        let o = c.etcdctl(&c.nodes[2].client_url(), &["move-leader", &format!("{:x}", ids["node-0"])]);
        assert!(o.status.success(), "move-leader: {}", stderr(&o));
        wait_for("a leader other than node-2", Duration::from_secs(10), || (c.leader() != 2).then_some(()));
    }
    let leader = c.leader();
    let frozen = disk.freeze();
    // A write the majority commits: node-2 must write it to its WAL before it can apply it or
    // serve any linearizable read after it.
    let majority = format!("{},{}", c.nodes[0].client_url(), c.nodes[1].client_url());
    let o = c.etcdctl(&majority, &["put", "/registry/after-freeze", "v"]);
    assert!(o.status.success(), "a write on the majority failed: {}", stderr(&o));
    // The shape: Status and serializable reads yes, writes no.
    let url = c.nodes[2].client_url();
    let o = c.etcdctl(&url, &["endpoint", "status", "-w", "json"]);
    assert!(o.status.success(), "Status: {}", stderr(&o));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st[0]["Status"]["leader"].as_u64(), Some(ids[&c.nodes[leader].name]), "{st:#}");
    let o = c.etcdctl(&url, &["get", "/registry", "--prefix", "--consistency=s"]);
    assert!(o.status.success(), "serializable read: {}", stderr(&o));
    let o = c.etcdctl(&url, &["put", "/registry/through-hung", "v", "--command-timeout=2s"]);
    assert!(!o.status.success(), "node-2 took a write with its WAL disk frozen");

    let (o, doc, _) = health_seeded(&c, leader, &["--command-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(doc["healthy"], false, "{doc:#}");
    let m = member(&doc, &hung);
    assert_eq!(
        (m["answered"].as_bool(), m["health"].as_str(), m["in_quorum"].as_bool()),
        (Some(true), Some("unhealthy"), Some(false)),
        "{m:#}"
    );
    assert_eq!(m["errors"][0], "takes no reads or writes: timed out", "{m:#}");
    let detail = m["failure"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("no linearizable read completed")
            && detail.contains(&format!("although it answers Status (following {:016x})", ids[&c.nodes[leader].name])),
        "{m:#}"
    );
    assert!(!m.to_string().contains("frozen or overloaded"), "{m:#}");
    for n in (0..2).map(|i| c.nodes[i].name.clone()) {
        assert_eq!(member(&doc, &n)["health"], "healthy", "{doc:#}");
    }
    assert_eq!(
        check(&doc, "quorum")["message"],
        format!(
            "2/3 voters in quorum, 2 needed, may lose 0 more; answering but not in quorum: {hung} (takes no reads or writes: timed out)"
        ),
        "{doc:#}"
    );
    // The table says it too.
    let manifest = c.nodes[leader].manifest().display().to_string();
    let o = run_plugin(HEALTH, &["--manifest", &manifest, "--command-timeout", "3s"], &[]);
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&hung) && l.contains("unhealthy") && l.contains("takes no reads or writes")),
        "{table}"
    );
    // Thawed before the cluster is dropped: a process blocked on a frozen disk cannot be killed.
    drop(frozen);
}

/// Issue 25 (3), the issue's own shape: a one-member cluster (a single control-plane node) whose
/// WAL lost its last entries after its database had applied them. etcd starts on it, answers
/// Status, serves linearizable reads even, but each new proposal lands on an index its database
/// already applied and is never answered: it takes no writes. etcdctl 3.5's `endpoint health`
/// calls it unhealthy (its alarm list is a proposal); health must too, and say why.
#[test]
fn a_member_whose_wal_lost_applied_entries_takes_no_writes_and_is_not_healthy() {
    let mut c = Cluster::start(1);
    for i in 0..60 {
        c.put(&format!("/registry/k/{i:02}"), "v");
    }
    c.stop(0);
    let wal = c.nodes[0].data_dir().join("member/wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    let seg = segments.pop().unwrap();
    let frames = wal_frames(&seg);
    // At a record boundary, 80 records (about 40 puts, each an entry and a hard state) before the
    // end: a clean WAL, just shorter than what the database applied. Every proposal uses up one
    // of the lost indexes; 40 are more than this test makes.
    assert!(frames.len() > 100, "{} records", frames.len());
    let cut = frames[frames.len() - 80].0;
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut as u64).unwrap();
    c.restart(0);
    // The shape: Status and linearizable reads yes, writes no.
    let url = c.nodes[0].client_url();
    let o = c.etcdctl(&url, &["get", "/registry/k/59"]);
    assert!(o.status.success() && stdout(&o).contains("/registry/k/59"), "a linearizable read: {}", stderr(&o));
    let o = c.etcdctl(&url, &["put", "/registry/after", "v", "--command-timeout=2s"]);
    assert!(!o.status.success(), "etcd took a write on a WAL behind its database:\n{}", c.nodes[0].log());

    let (o, doc, _) = health(&c, &["--command-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(doc["healthy"], false, "{doc:#}");
    let m = member(&doc, "node-0");
    assert_eq!(
        (m["answered"].as_bool(), m["health"].as_str(), m["in_quorum"].as_bool()),
        (Some(true), Some("unhealthy"), Some(false)),
        "{m:#}"
    );
    assert_eq!(m["errors"][0], "takes no reads or writes: timed out", "{m:#}");
    let detail = m["failure"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("a linearizable read completed but no proposal through it was applied")
            && detail.contains("it takes no writes"),
        "{m:#}"
    );
    assert_eq!(check(&doc, "quorum")["status"], "fail", "{doc:#}");
    assert_eq!(
        check(&doc, "quorum")["message"],
        "quorum lost: 0/1 voters in quorum, 1 needed, may lose 0 more; answering but not in quorum: node-0 (takes no reads or writes: timed out)",
        "{doc:#}"
    );
}

/// Issue 25: `--insecure-skip-tls-verify` is said where the report is read — under the table on
/// stdout and as `insecure` in `-o json` — not only on stderr; a verified run says nothing of it.
#[test]
fn insecure_skip_tls_verify_is_shown_with_the_report() {
    let c = Cluster::start(1);
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let (cert, key, ca) = (p("healthcheck-client.crt"), p("healthcheck-client.key"), p("ca.crt"));
    let url = c.nodes[0].client_url();
    let run = |extra: &[&str]| {
        let mut a = vec!["--endpoints", url.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
        a.extend(extra);
        let o = run_plugin(HEALTH, &a, &[]);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
        o
    };
    let warning = "WARNING: server certificates were NOT verified (--insecure-skip-tls-verify)";
    let o = run(&["--insecure-skip-tls-verify"]);
    let table = stdout(&o);
    assert!(table.starts_with("NAME "), "{table}");
    assert_eq!(table.lines().last(), Some(warning), "{table}");
    let o = run(&["--insecure-skip-tls-verify", "-o", "json"]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["insecure"], true, "{doc:#}");
    // Verified against the CA: no warning, `insecure: false`.
    let o = run(&["--cacert", ca.as_str()]);
    assert!(!stdout(&o).contains("NOT verified"), "{}", stdout(&o));
    let o = run(&["--cacert", ca.as_str(), "-o", "json"]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["insecure"], false, "{doc:#}");
}

/// `n` puts through node `i`, 16 at a time (each one raft entry).
async fn burst(c: &Cluster, i: usize, n: usize) {
    let client = c.client(i).await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for k in (t..n).step_by(16) {
                    client.put(format!("/registry/burst/{k}"), "v", None).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Issue 31: raft lag on real etcd. A follower that cannot persist what it receives (its WAL
/// disk hangs) while the others take more than the probe's reach of writes: its Status still
/// answers, at its old index; health reports it that many entries behind in the raft check and
/// in its row's applied lag, and out of quorum. (A follower stopped with SIGSTOP answers nothing,
/// so no lag can be read from it; once resumed it catches up in milliseconds.)
#[tokio::test(flavor = "multi_thread")]
async fn raft_lag_of_a_follower_under_writes_is_reported() {
    let disk = HangingDisk::new(256);
    let wal = disk.path().join("wal");
    let c = Cluster::builder(3).node_flag(2, "wal-dir", wal.to_str().unwrap()).start();
    let c = tokio::task::block_in_place(|| {
        if c.leader() == 2 {
            let o = c.etcdctl(&c.nodes[2].client_url(), &["move-leader", &leader_id_other_than(&c, 2)]);
            assert!(o.status.success(), "move-leader: {}", stderr(&o));
            wait_for("a leader other than node-2", Duration::from_secs(10), || (c.leader() != 2).then_some(()));
        }
        c
    });
    let frozen = disk.freeze();
    let writes = 1200;
    burst(&c, 0, writes).await;
    let (o, doc, _) = tokio::task::block_in_place(|| health_seeded(&c, 0, &["--command-timeout", "3s"]));
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let m = member(&doc, "node-2");
    let lag = m["applied_lag"].as_u64().unwrap_or_else(|| panic!("no applied lag: {m:#}"));
    assert!(lag >= writes as u64, "lag {lag} < {writes} writes: {m:#}");
    assert_eq!((m["answered"].as_bool(), m["in_quorum"].as_bool()), (Some(true), Some(false)), "{m:#}");
    let raft = check(&doc, "raft");
    assert_eq!(raft["status"], "warn", "{raft:#}");
    assert!(raft["message"].as_str().unwrap().contains(&format!("node-2 {lag} entries behind")), "{raft:#}");
    for n in ["node-0", "node-1"] {
        assert_eq!(member(&doc, n)["health"], "healthy", "{doc:#}");
    }
    drop(frozen);
}

/// The hex ID of a member other than node `i`, for `etcdctl move-leader`.
fn leader_id_other_than(c: &Cluster, i: usize) -> String {
    let list = c.member_list();
    let m = list.as_array().unwrap().iter().find(|m| m["name"] != c.nodes[i].name.as_str()).unwrap();
    format!("{:x}", m["ID"].as_u64().unwrap())
}

/// Issue 31: a learner catching up. Once in sync, its WAL disk hangs while the cluster takes a
/// thousand writes: it still answers Status, at its old index — "catching up", with its
/// percentage, not promotable — and the raft check names it.
#[tokio::test(flavor = "multi_thread")]
async fn a_learner_behind_is_reported_catching_up() {
    let disk = HangingDisk::new(256);
    let mut c = Cluster::start(3);
    let l = tokio::task::block_in_place(|| {
        let l = c.add_learner("learner-1", false);
        c.nodes[l].flags.push(("wal-dir".into(), disk.path().join("wal").display().to_string()));
        c.start_node(l);
        wait_for("the learner to be in sync", Duration::from_secs(30), || {
            let (_, doc, _) = health(&c, &[]);
            (member(&doc, "learner-1")["learner"]["state"] == "in sync").then_some(())
        });
        l
    });
    let frozen = disk.freeze();
    burst(&c, 0, 1200).await;
    let (_, doc, _) = tokio::task::block_in_place(|| health(&c, &["--command-timeout", "3s"]));
    let m = member(&doc, &c.nodes[l].name);
    assert_eq!(m["learner"]["state"], "catching up", "{m:#}");
    assert_eq!(m["learner"]["promotable"], false, "{m:#}");
    let pct = m["learner"]["percent"].as_f64().unwrap_or_else(|| panic!("no percentage: {m:#}"));
    assert!(pct < 50.0, "{m:#}");
    assert_eq!(m["health"], format!("learner: catching up ({pct:.0}%)"), "{m:#}");
    assert!(check(&doc, "raft")["message"].as_str().unwrap().contains("learner learner-1 catching up"), "{doc:#}");
    // The voters are not the worse for it.
    assert_eq!(check(&doc, "quorum")["message"], "3/3 voters in quorum, 2 needed, may lose 1 more", "{doc:#}");
    drop(frozen);
}

/// Issue 31: `--skip-hashkv` leaves HashKV out (the hash check says so, no member carries a
/// hash); without it every voter carries one.
#[test]
fn skip_hashkv_leaves_the_hash_out() {
    let c = Cluster::start(3);
    c.put("/registry/a", "1");
    let (o, doc, _) = health(&c, &["--skip-hashkv"]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    assert_eq!(check(&doc, "hash")["message"], "skipped (--skip-hashkv)", "{doc:#}");
    for m in doc["members"].as_array().unwrap() {
        assert!(m["hash_kv"].is_null(), "{m:#}");
    }
    let (_, doc, _) = health(&c, &[]);
    for m in doc["members"].as_array().unwrap() {
        assert!(m["hash_kv"].is_u64(), "{m:#}");
    }
}

/// Replaces, in a stopped member's database, every copy of `from` with `to` (same length: the
/// pages stay valid; bbolt keeps no checksum of leaf pages): data altered offline.
pub(crate) fn alter_db(data_dir: &std::path::Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let db = data_dir.join("member/snap/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let mut n = 0;
    let mut at = 0;
    while let Some(p) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + p..at + p + to.len()].copy_from_slice(to);
        at += p + to.len();
        n += 1;
    }
    assert!(n > 0, "{} does not hold {:?}", db.display(), String::from_utf8_lossy(from));
    std::fs::write(&db, bytes).unwrap();
}

/// Issue 31: a member whose data was altered offline. Its HashKV differs from the others' at
/// the same revision (the hash check fails, naming it), and etcd's own periodic corruption check
/// (`--experimental-corrupt-check-time`, run by the leader) raises the CORRUPT alarm on it,
/// which the alarms check reports with the corruption runbook.
#[test]
fn altered_data_fails_the_hash_check_and_raises_the_corrupt_alarm() {
    let mut c = Cluster::builder(3).flag("experimental-corrupt-check-time", "1s").start();
    c.put("/registry/secrets/default/token", "value-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    for i in 0..5 {
        c.put(&format!("/registry/k/{i}"), "v");
    }
    // A follower: the leader runs the check, and raises the alarm on the odd follower.
    let odd = (c.leader() + 1) % 3;
    c.stop(odd);
    alter_db(&c.nodes[odd].data_dir(), b"value-aaaaaaaaaaaaa", b"value-bbbbbbbbbbbbb");
    c.restart(odd);
    let name = c.nodes[odd].name.clone();
    let doc = wait_for("the CORRUPT alarm", Duration::from_secs(30), || {
        let (_, doc, _) = health(&c, &[]);
        (check(&doc, "alarms")["status"] == "fail").then_some(doc)
    });
    let alarms = check(&doc, "alarms");
    // etcd raises it with member ID 0 (it cannot tell which member is corrupt), or, where a
    // version names one, on the odd member.
    let msg = alarms["message"].as_str().unwrap();
    assert!(
        msg == "CORRUPT with no member named (etcd's corruption check cannot tell which; the hash check can)"
            || msg.starts_with(&format!("CORRUPT on {name} (")),
        "{alarms:#}"
    );
    assert!(alarms["hint"].as_str().unwrap().contains("data corruption detected"), "{alarms:#}");
    let hash = check(&doc, "hash");
    assert_eq!(hash["status"], "fail", "{hash:#}");
    let msg = hash["message"].as_str().unwrap();
    assert!(msg.starts_with("HashKV differs at revision ") && msg.ends_with("(data inconsistency)"), "{hash:#}");
    let odd_hash = member(&doc, &name)["hash_kv"].as_u64().unwrap();
    assert!(msg.contains(&format!("{odd_hash:08x} on {name}")), "{hash:#}");
    assert_eq!(doc["healthy"], false, "{doc:#}");
}

/// Issue 31: a member whose serving certificate has expired (etcd serves it regardless): its row
/// says so, the certificates check fails naming it, and the others stay in quorum.
#[test]
fn an_expired_serving_certificate_is_named() {
    let mut c = Cluster::start(3);
    let victim = (c.leader() + 1) % 3;
    let seed = (victim + 1) % 3;
    let name = c.nodes[victim].name.clone();
    c.stop(victim);
    let pair = c.pki.issue(&name, None, &["127.0.0.1"], &["localhost"], harness::pki::Usage::ServerClient, true);
    Pki::write_pair(&c.nodes[victim].pki_etcd(), "server", &pair);
    c.spawn_unchecked(victim);
    let port = c.nodes[victim].client_port;
    wait_for("the member to listen again", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let (o, doc, _) = health_seeded(&c, seed, &[]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let m = member(&doc, &name);
    assert_eq!(m["health"], "unhealthy", "{m:#}");
    assert!(m["errors"].to_string().contains("expired"), "{m:#}");
    let certs = check(&doc, "certificates");
    assert_eq!(certs["status"], "fail", "{certs:#}");
    assert!(certs["message"].as_str().unwrap().contains(&format!("{name} serving certificate expired")), "{certs:#}");
    assert!(check(&doc, "quorum")["message"].as_str().unwrap().starts_with("2/3 voters in quorum"), "{doc:#}");
}

/// Issue 31: version skew on real etcd: a 3.4 cluster with one member upgraded to 3.5 (etcd's
/// rolling upgrade: 3.5 joins a 3.4 cluster). The versions check warns, listing each member's
/// version, with the hint to finish the upgrade; the cluster itself is healthy otherwise.
#[test]
fn version_skew_of_a_rolling_upgrade_warns() {
    let mut c = Cluster::builder(3).planned();
    for n in c.nodes.iter_mut() {
        n.binary = Some(etcd_binary("3.4"));
    }
    c.start_all();
    c.put("/registry/a", "1");
    let up = (c.leader() + 1) % 3;
    c.stop(up);
    c.nodes[up].binary = Some(etcd_binary("3.5"));
    c.restart(up);
    let (o, doc, _) = health_seeded(&c, up, &[]);
    let v = check(&doc, "versions");
    assert_eq!(v["status"], "warn", "{v:#}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.starts_with("version skew: "), "{v:#}");
    for (i, n) in c.nodes.iter().enumerate() {
        let want = if i == up { "3.5.1" } else { "3.4.23" };
        assert!(msg.contains(&format!("{} {want}", n.name)), "{v:#}");
        assert_eq!(member(&doc, &n.name)["version"], want, "{doc:#}");
        assert_eq!(member(&doc, &n.name)["health"], "healthy", "{doc:#}");
    }
    // How far the rolling upgrade has got, and what is left.
    let hint = v["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("finish the upgrade: etcd supports mixed minor versions only while upgrading: 1 of 3 members on 3.5.1, still to do: "),
        "{v:#}"
    );
    for (i, n) in c.nodes.iter().enumerate() {
        assert_eq!(hint.contains(&n.name), i != up, "{v:#}");
    }
    // A warning, not a failure: exit 0.
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
}

/// Issue 31: DB size and fragmentation on real etcd. A database past 80 % of its quota warns
/// (from 95 %: fails), naming the member and its share; once its keys are deleted and the
/// history compacted, the file keeps its size but is mostly free pages, and the check says how
/// fragmented it is (what a defrag gives back).
#[tokio::test(flavor = "multi_thread")]
async fn db_size_near_the_quota_and_fragmentation_warn() {
    let quota: u64 = 96 << 20;
    let c = Cluster::builder(1).quota(quota).start();
    let mut client = c.client(0).await;
    let value = vec![b'x'; 512 * 1024];
    for i in 0.. {
        client.put(format!("/registry/big/{i}"), value.clone(), None).await.unwrap();
        if client.status().await.unwrap().db_size() as u64 > quota * 81 / 100 {
            break;
        }
    }
    let q = quota.to_string();
    let (o, doc, _) = tokio::task::block_in_place(|| health(&c, &["--quota-backend-bytes", &q]));
    let db = check(&doc, "db-size");
    let msg = db["message"].as_str().unwrap();
    let pct: u64 = msg
        .split("node-0 at ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no share named: {db:#}"));
    // bbolt grows its file in steps: where the last step lands decides warn (80-94 %) or fail.
    assert!(pct >= 80 && msg.contains("of 96.0 MiB quota"), "{db:#}");
    let (status, code) = if pct >= 95 { ("fail", 1) } else { ("warn", 0) };
    assert_eq!(db["status"], status, "{db:#}");
    assert_eq!(o.status.code(), Some(code), "{doc:#}");
    assert!(!msg.contains("fragmented"), "every page is in use yet: {db:#}");
    assert!(db["hint"].as_str().unwrap().contains("kubectl etcd defrag"), "{db:#}");

    let del = client.delete("/registry/big/", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    let rev = del.header().unwrap().revision();
    client.compact(rev, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    // etcd counts the freed pages in its in-use size once a later commit has run.
    client.put("/registry/after", "v", None).await.unwrap();
    let mut last = Value::Null;
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < end {
        let (_, doc, _) = tokio::task::block_in_place(|| health(&c, &["--quota-backend-bytes", &q]));
        last = check(&doc, "db-size").clone();
        if last["message"].as_str().unwrap_or_default().contains("fragmented") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last["status"], status, "{last:#}");
    let msg = last["message"].as_str().unwrap();
    assert!(msg.contains("node-0 ") && msg.contains("% fragmented ("), "{last:#}");
}
