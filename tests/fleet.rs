//! Fleet health: `kubectl etcd health --all-contexts` / `--context a,b` / `--context 'glob'`.
//! Each context is its own fake API server (harness/fakekube.rs) in front of its own real etcd
//! cluster (its own CA), reached through port-forward as from a workstation; the kubeconfig is
//! KUBECONFIG's list of one file per context, as kubectl merges them.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use harness::fakekube::{dead_api_server, workstation_pods, write_kubeconfig, FakeKube};
use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";

/// A copy of `c`'s node-0 `pki/etcd` at `dir/<context>`, as an operator keeps one per cluster.
fn pki_copy(c: &Cluster, dir: &Path, context: &str) {
    let to = dir.join(context);
    std::fs::create_dir_all(&to).unwrap();
    for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
        std::fs::copy(c.nodes[0].pki_etcd().join(f), to.join(f)).unwrap();
    }
}

/// The table's rows by their first cell (the context).
fn rows(table: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("CONTEXT ") && header.contains("   MEMBERS   LEADER"), "{table}");
    // Columns start where the header's titles start.
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|(i, c)| *c != ' ' && (*i == 0 || header[..*i].ends_with("   ")))
        .map(|(i, _)| i)
        .collect();
    lines
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<String> = starts
                .iter()
                .enumerate()
                .map(|(k, &s)| {
                    let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    l.get(s.min(l.len())..e).unwrap_or("").trim().to_string()
                })
                .collect();
            (cells[0].clone(), cells)
        })
        .collect()
}

#[test]
fn every_context_at_once_one_row_each_and_the_worst_exit_code() {
    let t = Instant::now();
    let healthy = Cluster::start(1);
    let mut degraded = Cluster::start(3);
    degraded.kill(2);
    eprintln!("clusters started in {:?}", t.elapsed());
    let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-").tempdir().unwrap();
    let pki = dir.path().join("pki");
    let k_ok = FakeKube::start(workstation_pods(&healthy), vec![]);
    let k_degraded = FakeKube::start(workstation_pods(&degraded), vec![]);
    // A managed control plane: an API with no etcd pods and no etcd nodes.
    let k_managed = FakeKube::start(vec![], vec![]);
    // A cluster whose API refuses us the port-forward (RBAC).
    let k_forbidden = FakeKube::start(workstation_pods(&healthy), vec![]);
    k_forbidden.behaviour.forbid_portforward.store(true, Ordering::SeqCst);
    // Three dead API servers: in a row they would cost three deadlines.
    let dead: Vec<_> = (0..3).map(|_| dead_api_server()).collect();
    let mut servers = vec![
        ("prod-ok", k_ok.url.clone()),
        ("prod-degraded", k_degraded.url.clone()),
        ("managed", k_managed.url.clone()),
        ("locked", k_forbidden.url.clone()),
    ];
    let dead_names = ["prod-dead-1", "prod-dead-2", "prod-dead-3"];
    servers.extend(dead_names.iter().zip(&dead).map(|(n, (_, url))| (*n, url.clone())));
    let mut files = Vec::new();
    for (name, url) in &servers {
        let f = dir.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig(&f, name, url);
        files.push(f);
    }
    pki_copy(&healthy, &pki, "prod-ok");
    pki_copy(&degraded, &pki, "prod-degraded");
    pki_copy(&healthy, &pki, "locked");
    let kubeconfig = std::env::join_paths(&files).unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let pki_arg = format!("{}/{{context}}", pki.display());
    let timeouts = ["--dial-timeout", "1s", "--command-timeout", "1s"];

    // The allowance: one dead cluster alone (the binaries built first, outside the timing).
    bin(HEALTH);
    let t = Instant::now();
    let mut args = vec!["--context", "prod-dead-1", "--pki-dir", &pki_arg];
    args.extend(timeouts);
    let o = run_plugin(HEALTH, &args, &env);
    let one_dead = t.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    let t = Instant::now();
    let mut args = vec!["--all-contexts", "--pki-dir", &pki_arg];
    args.extend(timeouts);
    let o = run_plugin(HEALTH, &args, &env);
    let fleet = t.elapsed();
    let out = stdout(&o);
    eprintln!("one dead cluster alone: {one_dead:?}; the whole fleet (3 dead among 7): {fleet:?}\n{out}");
    // The worst cluster's exit code: the dead and the refused ones' (3).
    assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
    let rows = rows(&out);
    let names: Vec<&str> = servers.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        rows.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(),
        names.iter().copied().collect()
    );
    // In the kubeconfig's order.
    let order: Vec<&str> =
        out.lines().skip(1).take(names.len()).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(order, names, "{out}");
    let ok = &rows["prod-ok"];
    assert_eq!(&ok[1], "1/1", "{out}");
    assert_eq!(&ok[2], "node-0", "{out}");
    assert_eq!(&ok[5], "none", "{out}");
    assert!(ok[6].starts_with(&healthy.version), "{out}");
    assert_eq!(&ok[8], "port-forward", "{out}");
    let deg = &rows["prod-degraded"];
    assert_eq!(&deg[1], "2/3", "{out}");
    assert_eq!(&deg[3], "may lose 0", "{out}");
    assert!(deg[4].contains(" / "), "{out}");
    assert!(deg[7].starts_with("fail (") && deg[7].contains("members"), "{out}");
    assert_eq!(&rows["managed"][7], "no etcd visible", "{out}");
    assert_eq!(&rows["locked"][7], "fail (forbidden)", "{out}");
    for d in dead_names {
        assert_eq!(&rows[d][7], "fail (no report)", "{out}");
    }
    // Under the table, why: the dead API timed out, the refusal names the RBAC to grant.
    let notes = out.split("   PROBLEM\n").nth(1).unwrap_or_else(|| panic!("{out}"));
    assert!(notes.contains("managed control plane"), "{out}");
    assert!(notes.contains("--print-rbac") && notes.contains("pods/portforward"), "{out}");
    assert!(notes.contains("timed out"), "{out}");
    // One deadline, not three: the dead clusters waited side by side.
    assert!(fleet < one_dead * 2, "the fleet took {fleet:?}, one dead cluster {one_dead:?}");

    // A glob, -o json: a List of health reports with the context; the worst exit is the
    // degraded cluster's (1).
    let mut args = vec!["--context", "prod-o*,prod-deg*", "--pki-dir", &pki_arg, "-o", "json"];
    args.extend(timeouts);
    let o = run_plugin(HEALTH, &args, &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["kind"], "HealthReportList", "{doc:#}");
    let schema = harness::schema::load("health.schema.json");
    assert_eq!(harness::schema::violations(&schema, &doc), Vec::<String>::new(), "{doc:#}");
    let items = doc["items"].as_array().unwrap();
    let contexts: Vec<&str> = items.iter().map(|i| i["context"].as_str().unwrap()).collect();
    assert_eq!(contexts, ["prod-ok", "prod-degraded"]);
    assert_eq!(items[0]["exit_code"], 0);
    assert_eq!(items[0]["members"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(items[1]["exit_code"], 1);
    assert_eq!(items[1]["quorum"]["can_lose"], 0, "{doc:#}");
    assert_eq!(items[1]["transport"], "port-forward", "{doc:#}");

    // The contexts with no report follow the schema too: an outcome and a message.
    let mut args = vec!["--context", "managed,locked,prod-dead-1", "--pki-dir", &pki_arg, "-o", "json"];
    args.extend(timeouts);
    let o = run_plugin(HEALTH, &args, &env);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let none: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(harness::schema::violations(&schema, &none), Vec::<String>::new(), "{none:#}");
    let outcomes: Vec<&str> =
        none["items"].as_array().unwrap().iter().map(|i| i["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["no_etcd", "forbidden", "failed"], "{none:#}");
    // The checker holds a list's items to the schema: a report's field, a failure's message.
    let mut bad = doc.clone();
    bad["items"][1]["quorum"].as_object_mut().unwrap().remove("can_lose");
    let mut bad_none = none.clone();
    bad_none["items"][2].as_object_mut().unwrap().remove("message");
    assert_eq!(
        [harness::schema::violations(&schema, &bad), harness::schema::violations(&schema, &bad_none)],
        [
            vec!["$.items[1].quorum: required field can_lose missing".to_string()],
            vec!["$.items[2]: required field message missing".to_string()]
        ]
    );

    // One context alone: `{context}` in --pki-dir stands for its name there too.
    let o = run_plugin(HEALTH, &["--context", "prod-ok", "--pki-dir", &pki_arg, "-o", "json"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"transport\": \"port-forward\""), "{}", stdout(&o));

    // A name that matches no context: a usage error naming the ones there are.
    let o = run_plugin(HEALTH, &["--context", "prod-ok,qa-*"], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--context qa-*: no such context") && stderr(&o).contains("prod-degraded"),
        "{}",
        stderr(&o)
    );
    drop(dead);
}

/// `--context <TAB>` offers the kubeconfig's contexts (KUBECONFIG's list of files, or
/// `--kubeconfig`), in its order, through the real completion entry points: the dispatcher's
/// `__complete` (what the kubectl helpers and the shell scripts call) and a plugin's own. A
/// prefix and a glob narrow them; health's list (`a,b`) goes on after the last comma.
#[test]
fn context_names_complete_from_the_kubeconfig() {
    let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-").tempdir().unwrap();
    let names = ["prod-eu", "staging", "prod-us"];
    let files: Vec<_> = names
        .iter()
        .map(|n| {
            let f = dir.path().join(format!("{n}.kubeconfig"));
            write_kubeconfig(&f, n, "http://127.0.0.1:1");
            f
        })
        .collect();
    let kubeconfig = std::env::join_paths(&files).unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let complete = |plugin: &str, words: &[&str]| {
        let mut args = vec!["__complete"];
        args.extend(words);
        let o = run_plugin(plugin, &args, &env);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    // Every context, in the kubeconfig's order; no file names (4), that order kept (32), and in
    // health's list no space after a name (2).
    assert_eq!(complete("kubectl-etcd", &["health", "--context", ""]), "prod-eu\nstaging\nprod-us\n:38\n");
    assert_eq!(complete("kubectl-etcd", &["learner", "status", "--context", ""]), "prod-eu\nstaging\nprod-us\n:36\n");
    assert_eq!(complete("kubectl-etcd", &["health", "--context", "prod"]), "prod-eu\nprod-us\n:38\n");
    assert_eq!(complete("kubectl-etcd", &["health", "--context=st"]), "--context=staging\n:38\n");
    assert_eq!(complete("kubectl-etcd", &["health", "--context", "*-us"]), "prod-us\n:38\n");
    assert_eq!(complete(HEALTH, &["--context", "prod-*"]), "prod-eu\nprod-us\n:38\n");
    // After a comma: the others.
    assert_eq!(complete(HEALTH, &["--context", "prod-eu,"]), "prod-eu,staging\nprod-eu,prod-us\n:38\n");
    // --kubeconfig typed before names the file read.
    let one = files[1].to_str().unwrap();
    let o = run_plugin("kubectl-etcd", &["__complete", "defrag", "--kubeconfig", one, "--context", ""], &[]);
    assert_eq!(stdout(&o), "staging\n:36\n");
    // No kubeconfig: nothing offered, no file names.
    let o = run_plugin(HEALTH, &["__complete", "--context", ""], &[]);
    assert_eq!(stdout(&o), ":36\n", "{}", stderr(&o));
}

/// `--watch` over several contexts redraws the fleet's table each round under watch(1)'s header
/// (the interval, the round, its time), a row per context in each; SIGINT ends it at once, as
/// a shell reports a process ended by SIGINT (130), with nothing on stderr.
#[test]
fn watch_redraws_the_fleet_under_a_header_each_round() {
    let (a, b) = (Cluster::start(1), Cluster::start(1));
    let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-").tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (ka, kb) = (FakeKube::start(workstation_pods(&a), vec![]), FakeKube::start(workstation_pods(&b), vec![]));
    let mut files = Vec::new();
    for (name, url) in [("a", &ka.url), ("b", &kb.url)] {
        let f = dir.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig(&f, name, url);
        files.push(f);
    }
    pki_copy(&a, &pki, "a");
    pki_copy(&b, &pki, "b");
    let kubeconfig = std::env::join_paths(&files).unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let pki_arg = format!("{}/{{context}}", pki.display());
    let args = ["--context", "a,b", "--pki-dir", &pki_arg, "--watch", "--interval", "300ms"];
    let mut child = spawn_plugin(HEALTH, &args, &env);
    // Round 2 drawn whole: its header, a blank line, the table's header and both rows.
    let text = wait_for("two rounds of the fleet", std::time::Duration::from_secs(120), || {
        assert!(!child.exited(), "{}", child.stderr_now());
        let t = child.stdout_now();
        let second = t.split("Every 300ms: round 2, ").nth(1)?;
        (second.lines().count() >= 5).then_some(t)
    });
    let rounds: Vec<&str> = text.split("Every 300ms: round ").skip(1).collect();
    assert!(text.starts_with("Every 300ms: round 1, ") && rounds.len() >= 2, "{text}");
    for (n, r) in rounds.iter().take(2).enumerate() {
        let mut lines = r.lines();
        let head = lines.next().unwrap();
        // `2, 2026-12-06 02:10:00 UTC`
        let (number, at) = head.split_once(", ").unwrap_or_else(|| panic!("{head}"));
        assert_eq!(number, (n + 1).to_string(), "{text}");
        assert!(at.len() == 23 && at.ends_with(" UTC") && at.as_bytes()[10] == b' ', "{head}");
        assert_eq!(lines.next(), Some(""), "{text}");
        let table: String = lines.map(|l| format!("{l}\n")).collect();
        let rows = rows(&table);
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["a", "b"], "{text}");
        for (context, row) in rows {
            assert_eq!(
                (row[1].as_str(), row[2].as_str(), row[7].as_str()),
                ("1/1", "node-0", "ok"),
                "{context}: {text}"
            );
        }
    }
    child.signal(libc::SIGINT);
    let out = child.wait(std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}
