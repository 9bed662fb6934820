//! Discovery end to end: static pod manifests (kubeadm, RKE2), the Kubernetes API (served by
//! the harness's fake API server, since no API server can be installed here: objects are shaped
//! exactly like a real cluster's), flags and `ETCDCTL_*` precedence, and every bad input with
//! its exact message and exit code. Clusters are real etcd processes with mTLS.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use harness::fakekube::{cluster_pods, etcd_node, kubeadm_pod, FakeKube};
use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Every member listed with a 16-hex-digit ID, its name, its endpoint, and answered.
fn assert_all_members_answer(c: &Cluster, doc: &Value) {
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), c.nodes.len(), "{doc:#}");
    for n in &c.nodes {
        let m = members
            .iter()
            .find(|m| m["name"] == n.name.as_str())
            .unwrap_or_else(|| panic!("{} missing: {doc:#}", n.name));
        let id = m["id"].as_str().unwrap();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(m["endpoint"], n.client_url().as_str());
        assert_eq!(m["answered"], true, "{m:#}");
        assert_eq!(m["health"], "healthy");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn kubeadm_manifest_alone_finds_the_cluster_over_mtls() {
    let c = Cluster::start(3);
    let o = run_plugin(HEALTH, &["--manifest", s(&c.nodes[0].manifest()), "-o", "json", "-v"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_all_members_answer(&c, &json(&o));
    let err = stderr(&o);
    assert!(err.contains("endpoints from manifest"), "{err}");
    assert!(err.contains("client certificate: kubeadm healthcheck client beside the CA"), "{err}");
    // The table form lists the same members.
    let o = run_plugin(HEALTH, &["--manifest", s(&c.nodes[0].manifest())], &[]);
    let out = stdout(&o);
    for n in &c.nodes {
        assert!(
            out.lines().any(|l| l.starts_with(&n.name) && l.contains(&n.client_url()) && l.contains("healthy")),
            "{out}"
        );
    }
}

#[test]
fn default_manifest_is_used_when_it_exists_and_no_endpoints_are_given() {
    let c = Cluster::start(1);
    let o = run_plugin(HEALTH, &["-v", "-o", "json"], &[("KUBECTL_ETCD_DEFAULT_MANIFEST", s(&c.nodes[0].manifest()))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("(default path)"), "{}", stderr(&o));
    assert_all_members_answer(&c, &json(&o));
}

#[test]
fn falls_back_to_apiserver_etcd_client_when_no_healthcheck_client() {
    let c = Cluster::start(1);
    let pki = c.nodes[0].pki_etcd();
    std::fs::remove_file(pki.join("healthcheck-client.crt")).unwrap();
    let o = run_plugin(HEALTH, &["--manifest", s(&c.nodes[0].manifest()), "-v", "-o", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("apiserver-etcd-client in the CA's parent folder"), "{}", stderr(&o));
}

/// RKE2 runs etcd as a static pod whose only argument is `--config-file`; the certificates are
/// in `/var/lib/rancher/rke2/server/tls/etcd/` (`server-ca.crt`, `client.crt`, `client.key`).
#[test]
fn rke2_manifest_with_config_file() {
    let c = Cluster::start(3);
    let n = &c.nodes[1];
    let root = c.dir.path().join("rke2");
    let tls = root.join("server/tls/etcd");
    std::fs::create_dir_all(&tls).unwrap();
    let pki = n.pki_etcd();
    std::fs::copy(pki.join("ca.crt"), tls.join("server-ca.crt")).unwrap();
    std::fs::copy(pki.join("server.crt"), tls.join("server-client.crt")).unwrap();
    std::fs::copy(pki.join("server.key"), tls.join("server-client.key")).unwrap();
    std::fs::copy(pki.join("healthcheck-client.crt"), tls.join("client.crt")).unwrap();
    std::fs::copy(pki.join("healthcheck-client.key"), tls.join("client.key")).unwrap();
    let config = root.join("server/db/etcd/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "advertise-client-urls: {url}\nclient-transport-security:\n  cert-file: {t}/server-client.crt\n  client-cert-auth: true\n  key-file: {t}/server-client.key\n  trusted-ca-file: {t}/server-ca.crt\ndata-dir: {data}\nelection-timeout: 5000\nheartbeat-interval: 500\nlisten-client-urls: {url},https://127.0.0.1:2379\nname: {name}-a1b2c3d4\npeer-transport-security:\n  cert-file: {t}/peer-server-client.crt\n  client-cert-auth: true\n  key-file: {t}/peer-server-client.key\n  trusted-ca-file: {t}/peer-ca.crt\nsnapshot-count: 10000\n",
            url = n.client_url(),
            t = tls.display(),
            data = n.data_dir().display(),
            name = n.name
        ),
    )
    .unwrap();
    let manifest = root.join("agent/pod-manifests/etcd.yaml");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    etcd.k3s.io/initial: '{{\"initial-advertise-peer-urls\":\"{peer}\",\"initial-cluster\":\"{name}=https://127.0.0.1:{pp}\",\"initial-cluster-state\":\"new\"}}'\n  creationTimestamp: null\n  labels:\n    component: etcd\n    tier: control-plane\n  name: etcd\n  namespace: kube-system\n  uid: 0c1a8a8f3b2f4e0a9b7f\nspec:\n  containers:\n  - args:\n    - --config-file={config}\n    command:\n    - etcd\n    env:\n    - name: FILE_HASH\n      value: 4a5c2b0f\n    - name: NO_PROXY\n      value: .svc,.cluster.local,10.42.0.0/16,10.43.0.0/16\n    image: index.docker.io/rancher/hardened-etcd:v3.5.13-k3s1-build20240531\n    imagePullPolicy: IfNotPresent\n    name: etcd\n    resources:\n      requests:\n        cpu: 200m\n        memory: 512Mi\n    securityContext:\n      privileged: false\n    volumeMounts:\n    - mountPath: /var/lib/rancher/rke2/server/db/etcd\n      name: dir\n  hostNetwork: true\n  priorityClassName: system-cluster-critical\n  securityContext:\n    runAsGroup: 1001\n    runAsNonRoot: true\n    runAsUser: 1001\n  volumes:\n  - hostPath:\n      path: /var/lib/rancher/rke2/server/db/etcd\n      type: DirectoryOrCreate\n    name: dir\nstatus: {{}}\n",
            peer = n.peer_url(),
            name = n.name,
            pp = n.peer_port,
            config = config.display()
        ),
    )
    .unwrap();
    let o = run_plugin(HEALTH, &["--manifest", s(&manifest), "-o", "json", "-v"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("config file {}", config.display())), "{err}");
    assert!(err.contains("k3s/RKE2 client beside the CA"), "{err}");
    assert_all_members_answer(&c, &json(&o));
}

#[test]
fn api_pods_with_kubeadm_annotation() {
    let c = Cluster::start(3);
    let kube = FakeKube::start(cluster_pods(&c, true, true), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-o", "json", "-v"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_all_members_answer(&c, &json(&o));
    let err = stderr(&o);
    assert!(err.contains("from annotation kubeadm.kubernetes.io/etcd.advertise-client-urls"), "{err}");
    let reqs = kube.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /api/v1/namespaces/kube-system/pods?")
            && r.contains("labelSelector=component%3Detcd%2Ctier%3Dcontrol-plane")),
        "{reqs:?}"
    );
}

#[test]
fn api_pods_without_annotation_use_the_command_flag_and_kubeconfig_env() {
    let c = Cluster::start(3);
    let kube = FakeKube::start(cluster_pods(&c, false, true), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let o = run_plugin(HEALTH, &["-o", "json", "-v"], &[("KUBECONFIG", s(&kc))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_all_members_answer(&c, &json(&o));
    assert!(stderr(&o).contains("(from --advertise-client-urls in the pod's command)"), "{}", stderr(&o));
}

/// Settings for API discovery through `kube`, with certificate flags (the files need not
/// exist: discovery only names them) and no default manifest.
fn api_settings(kube: &FakeKube, dir: &Path) -> kubectl_etcd::reach::discovery::settings::Settings {
    let mut settings = kubectl_etcd::reach::discovery::settings::Settings::new();
    settings.kubeconfig = Some(kube.kubeconfig(dir));
    settings.default_manifest = dir.join("none.yaml");
    settings.cacert = Some("/ca.crt".into());
    settings.cert = Some("/c.crt".into());
    settings.key = Some("/c.key".into());
    settings
}

#[tokio::test]
async fn api_pod_ip_is_the_last_resort_for_pods() {
    let mut pod =
        kubeadm_pod("cp-1", &[("trusted-ca-file".into(), "/nonexistent/ca.crt".into())], "", false, "10.0.0.11");
    pod["metadata"]["namespace"] = "kube-system".into();
    let kube = FakeKube::start(vec![pod], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let settings = api_settings(&kube, dir.path());
    let d = kubectl_etcd::reach::discovery::discover(&settings).await.unwrap();
    assert_eq!(d.endpoints.len(), 1);
    assert_eq!(d.endpoints[0].url, "https://10.0.0.11:2379");
    assert_eq!(d.endpoints[0].name.as_deref(), Some("cp-1"));
    assert!(d.endpoints[0].source.contains("pod IP"), "{:?}", d.endpoints);
    assert!(d.endpoints_complete);
}

#[tokio::test]
async fn etcd_labelled_nodes_when_there_are_no_etcd_pods() {
    let kube =
        FakeKube::start(vec![], vec![etcd_node("rke-node-1", "10.0.0.21"), etcd_node("rke-node-2", "10.0.0.22")]);
    let dir = tempfile::tempdir().unwrap();
    let settings = api_settings(&kube, dir.path());
    let d = kubectl_etcd::reach::discovery::discover(&settings).await.unwrap();
    let urls: Vec<&str> = d.endpoints.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(urls, ["https://10.0.0.21:2379", "https://10.0.0.22:2379"]);
    assert_eq!(d.endpoints[0].name.as_deref(), Some("rke-node-1"));
    let reqs = kube.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /api/v1/nodes?") && r.contains("labelSelector=node-role.kubernetes.io%2Fetcd")),
        "{reqs:?}"
    );
}

#[test]
fn api_with_neither_pods_nor_nodes_says_what_was_tried() {
    let kube = FakeKube::start(vec![], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let kc = kube.kubeconfig(dir.path());
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-n", "etcd-system"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: failed to find etcd: "), "{err}");
    assert!(
        err.contains("no pods labelled component=etcd,tier=control-plane in namespace etcd-system (server http"),
        "{err}"
    );
    assert!(err.contains(&format!("context \"fake-admin@fake\" of kubeconfig {})", kc.display())), "{err}");
    assert!(err.contains("no nodes labelled node-role.kubernetes.io/etcd"), "{err}");
    assert!(err.contains("etcd is not visible from this cluster's API: managed control planes"), "{err}");
    assert!(err.contains("pass --endpoints with --cacert, --cert and --key, or --manifest PATH"), "{err}");

    // An API server that does not answer: said so, exit 3, one line.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let text = std::fs::read_to_string(&kc).unwrap().replace(&kube.url, &url);
    std::fs::write(&kc, text).unwrap();
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc)], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("failed to list etcd pods in namespace kube-system"), "{err}");
    assert!(
        err.contains(&url.replace("http://", ""))
            || err.contains("Connection refused")
            || err.contains("connection refused"),
        "{err}"
    );
}

/// An API server that answers the etcd pod list without end, or with 400,000 small pods: each
/// cut at its bound (16 MiB of body, 128 items) with one line naming the bound and what was
/// listed, exit 4, well within the deadline, the process staying small.
#[test]
fn endless_or_oversized_api_answers_are_cut_at_their_bound() {
    let pod = kubeadm_pod("cp-1", &[], "https://127.0.0.1:2379", true, "127.0.0.1");
    let kube = FakeKube::start(vec![pod], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let kc = kube.kubeconfig(dir.path());
    let deadline = std::time::Duration::from_secs(3); // --dial-timeout + --command-timeout
    let run = || {
        let args = ["--kubeconfig", s(&kc), "--dial-timeout", "1s", "--command-timeout", "2s"];
        run_measured(&mut plugin_command(HEALTH, &args, &[]))
    };
    let cases = [("endless", "16777216 bytes (16.0 MiB)"), ("400,000 pods", "128 items")];
    for (case, bound) in cases {
        match case {
            "endless" => kube.behaviour.endless_pod_list.store(true, std::sync::atomic::Ordering::SeqCst),
            _ => {
                kube.behaviour.endless_pod_list.store(false, std::sync::atomic::Ordering::SeqCst);
                kube.behaviour.pod_list_padding.store(400_000, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let m = run();
        let err = stderr(&m.output);
        eprintln!("{case}: {:?}, peak RSS {} KiB: {err}", m.elapsed, m.peak_rss_kib);
        assert_eq!(m.output.status.code(), Some(4), "{case}: {err}");
        assert_eq!(err.lines().count(), 1, "{case}: one line: {err}");
        assert!(err.contains("the Kubernetes API's answer to list etcd pods in namespace kube-system"), "{err}");
        assert!(err.contains(&format!("went past {bound}")), "{case}: {err}");
        assert!(m.elapsed < deadline, "{case}: {:?}", m.elapsed);
        assert!(m.peak_rss_kib < 160 * 1024, "{case}: peak RSS {} KiB", m.peak_rss_kib);
    }
}

#[test]
fn explicit_kubeconfig_or_context_selects_the_api_over_the_default_manifest() {
    let c = Cluster::start(1);
    let kube = FakeKube::start(vec![], vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let manifest = c.nodes[0].manifest().display().to_string();
    // The default manifest exists, but --kubeconfig names the API: its (empty) answer is used.
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc)], &[("KUBECTL_ETCD_DEFAULT_MANIFEST", &manifest)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no pods labelled component=etcd"), "{}", stderr(&o));
    // Both an explicit manifest and an explicit context: which one is meant? Say so.
    let o = run_plugin(HEALTH, &["--manifest", &manifest, "--context", "fake-admin@fake"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--manifest and --kubeconfig/--context name two different ways"), "{}", stderr(&o));
    // KUBECONFIG in the environment (common on nodes) does not override the node's manifest.
    let o =
        run_plugin(HEALTH, &["-o", "json"], &[("KUBECTL_ETCD_DEFAULT_MANIFEST", &manifest), ("KUBECONFIG", s(&kc))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn this_nodes_member_down_and_no_data_dir_finds_the_others_through_admin_conf() {
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    let kube = FakeKube::start(cluster_pods(&c, true, true), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    // node-0's manifest with a data dir that holds nothing (a fresh disk, a wiped node).
    let text = std::fs::read_to_string(c.nodes[0].manifest()).unwrap();
    let data = c.nodes[0].data_dir().display().to_string();
    let copy = c.dir.path().join("etcd-no-data.yaml");
    std::fs::write(&copy, text.replace(&data, &c.dir.path().join("empty").display().to_string())).unwrap();
    c.kill(0);
    let others = format!("{},{}", c.nodes[1].client_url(), c.nodes[2].client_url());
    wait_for("a leader among node-1 and node-2", std::time::Duration::from_secs(10), || {
        c.etcdctl(&others, &["endpoint", "health"]).status.success().then_some(())
    });
    let o = run_plugin(HEALTH, &["--manifest", s(&copy), "-o", "json"], &[("KUBECTL_ETCD_ADMIN_KUBECONFIG", s(&kc))]);
    let doc = json(&o);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let quorum = doc["checks"].as_array().unwrap().iter().find(|c| c["name"] == "quorum").unwrap();
    assert_eq!(quorum["message"], "2/3 voters in quorum, 2 needed, may lose 0 more", "{doc:#}");
    let via_api = doc["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"].as_str().unwrap().contains("Kubernetes API pods"))
        .count();
    assert_eq!(via_api, 2, "{doc:#}");
}

#[test]
fn nothing_found_lists_what_was_tried() {
    let o = run_plugin(HEALTH, &[], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no static pod manifest at"), "{err}");
    assert!(err.contains("no --endpoints flag or ETCDCTL_ENDPOINTS"), "{err}");
    assert!(err.contains("no kubeconfig for the Kubernetes API"), "{err}");
}

#[test]
fn flags_beat_env_and_env_works_alone() {
    let c = Cluster::start(1);
    let pki = c.nodes[0].pki_etcd();
    let ca = pki.join("ca.crt");
    let cert = pki.join("healthcheck-client.crt");
    let key = pki.join("healthcheck-client.key");
    let url = c.nodes[0].client_url();
    let env = [
        ("ETCDCTL_ENDPOINTS", "https://127.0.0.1:1"),
        ("ETCDCTL_CACERT", s(&ca)),
        ("ETCDCTL_CERT", s(&cert)),
        ("ETCDCTL_KEY", s(&key)),
    ];
    // The flag wins over ETCDCTL_ENDPOINTS (which points at a closed port).
    let o = run_plugin(HEALTH, &["--endpoints", &url, "-v", "-o", "json"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("endpoints from flag --endpoints: {url}")), "{}", stderr(&o));
    assert!(stderr(&o).contains("(from env ETCDCTL_CACERT)"), "{}", stderr(&o));
    // The environment alone.
    let mut env2 = env;
    env2[0].1 = &url;
    let o = run_plugin(HEALTH, &["-v", "-o", "json"], &env2);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("endpoints from env ETCDCTL_ENDPOINTS: {url}")), "{}", stderr(&o));
    // Flags placed after the subcommand-less command line, and a manifest giving only certs.
    let o =
        run_plugin(HEALTH, &["-o", "json", "--endpoints", &url, "--manifest", s(&c.nodes[0].manifest()), "-v"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("endpoints from flag --endpoints"), "{}", stderr(&o));
    assert!(stderr(&o).contains("beside the CA"), "{}", stderr(&o));
}

#[test]
fn missing_and_unreadable_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let ok_cert = dir.path().join("c.crt");
    std::fs::write(&ok_cert, "").unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--cacert".into(),
                "/nonexistent/ca.crt".into(),
                "--cert".into(),
                s(&ok_cert).into(),
                "--key".into(),
                s(&ok_cert).into(),
            ],
            "error: failed to read CA certificate /nonexistent/ca.crt: No such file or directory (os error 2)".into(),
        ),
        (
            vec![
                "--cacert".into(),
                s(dir.path()).into(),
                "--cert".into(),
                s(&ok_cert).into(),
                "--key".into(),
                s(&ok_cert).into(),
            ],
            format!(
                "error: failed to read CA certificate {}: it is a directory, not a regular file: name the file itself",
                dir.path().display()
            ),
        ),
        (
            vec![
                "--cacert".into(),
                s(&garbage).into(),
                "--cert".into(),
                s(&ok_cert).into(),
                "--key".into(),
                s(&ok_cert).into(),
            ],
            format!("error: failed to load CA certificate from {}: no CERTIFICATE block found", garbage.display()),
        ),
        (
            vec!["--cacert".into(), "/etc/ssl/certs/ca-certificates.crt".into(), "--cert".into(), s(&ok_cert).into()],
            "error: --cert and --key must be given together (or ETCDCTL_CERT and ETCDCTL_KEY)".into(),
        ),
    ];
    for (args, want) in cases {
        let mut a: Vec<&str> = vec!["--endpoints", "https://127.0.0.1:1"];
        a.extend(args.iter().map(String::as_str));
        let o = run_plugin(HEALTH, &a, &[]);
        let err = stderr(&o);
        assert_eq!(err.trim_end(), want, "args {args:?}");
        let code = if want.contains("must be given together") { 2 } else { 3 };
        assert_eq!(o.status.code(), Some(code), "args {args:?}: {err}");
    }
}

#[test]
fn manifest_that_is_not_yaml_or_has_no_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("etcd.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nspec: [unclosed\n").unwrap();
    let o = run_plugin(HEALTH, &["--manifest", s(&bad)], &[]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("error: failed to parse static pod manifest {}: ", bad.display())), "{err}");
    assert!(
        err.trim_end().ends_with("expected a Pod in YAML, such as kubeadm's /etc/kubernetes/manifests/etcd.yaml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let other = dir.path().join("kube-apiserver.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver-cp1\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.31.0\n    command:\n    - kube-apiserver\n    - --etcd-servers=https://127.0.0.1:2379\n",
    )
    .unwrap();
    let o = run_plugin(HEALTH, &["--manifest", s(&other)], &[]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o).trim_end(),
        format!("error: static pod manifest {} has no etcd container (looked for a container named \"etcd\" or running the etcd binary); pass --endpoints and certificates instead", other.display())
    );

    let missing = dir.path().join("nope.yaml");
    let o = run_plugin(HEALTH, &["--manifest", s(&missing)], &[]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "error: failed to read static pod manifest {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let o = run_plugin(HEALTH, &["-o", "xml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run_plugin(HEALTH, &["--dial-timeout", "soon"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
    let o =
        run_plugin(HEALTH, &["--endpoints", "127.0.0.1 2379", "--cacert", "/x", "--cert", "/x", "--key", "/x"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("expected a URL such as https://10.0.0.1:2379"), "{}", stderr(&o));
}

/// `kubectl etcd health` reaches the same command through the dispatcher and through kubectl's
/// own plugin discovery (binaries on PATH).
#[test]
fn dispatcher_and_kubectl_plugin_discovery() {
    let o = run_plugin("kubectl-etcd", &[], &[]);
    assert_eq!(o.status.code(), Some(0));
    for (sub, _) in kubectl_etcd::PLUGINS {
        assert!(stdout(&o).contains(sub), "{}", stdout(&o));
    }
    let direct = run_plugin(HEALTH, &["--help"], &[]);
    let via = run_plugin("kubectl-etcd", &["health", "--help"], &[]);
    assert_eq!(via.status.code(), Some(0), "{}", stderr(&via));
    assert_eq!(stdout(&via), stdout(&direct));
    // kubectl's manners: a plugin's help shows its own flags and one line for the global ones,
    // which `kubectl etcd options` lists; they still work anywhere.
    for (sub, _) in kubectl_etcd::PLUGINS {
        let h = stdout(&run_plugin(&format!("kubectl-etcd-{sub}"), &["--help"], &[]));
        assert!(h.contains("Use \"kubectl etcd options\" for a list of global command-line options"), "{sub}: {h}");
        for global in
            ["--kubeconfig", "--manifest", "--endpoints", "--cacert", "--no-headers", "--dial-timeout", "--output"]
        {
            let defined = h.lines().any(|l| l.trim_start().trim_start_matches("-o, ").starts_with(global));
            assert!(!defined, "{sub}: {global} listed in its help\n{h}");
        }
    }
    assert!(stdout(&via).contains("--skip-hashkv"), "{}", stdout(&via));
    let options = run_plugin("kubectl-etcd", &["options"], &[]);
    assert_eq!(options.status.code(), Some(0), "{}", stderr(&options));
    for global in ["--kubeconfig", "--context", "--manifest", "--endpoints", "--pki-dir", "--output", "--no-headers"] {
        assert!(stdout(&options).contains(global), "{global}: {}", stdout(&options));
    }
    // Hidden from the help, not from completion.
    let o = run_plugin(HEALTH, &["__complete", "--kube"], &[]);
    assert!(stdout(&o).starts_with("--kubeconfig\t"), "{}", stdout(&o));
    let o = run_plugin(HEALTH, &["--manifest", "/nonexistent.yaml", "-o", "json"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent.yaml"), "{}", stderr(&o));
    // Exit codes pass through the dispatcher.
    let o = run_plugin("kubectl-etcd", &["health", "--manifest", "/nonexistent.yaml"], &[]);
    assert_eq!(o.status.code(), Some(3));
    let o = run_plugin("kubectl-etcd", &["frobnicate"], &[]);
    assert_eq!(o.status.code(), Some(2));

    // Every help page has kubectl-style examples, each a real command of that plugin.
    let usage = stdout(&run_plugin("kubectl-etcd", &[], &[]));
    assert!(usage.contains("\nExamples:\n"), "{usage}");
    for (sub, _) in kubectl_etcd::PLUGINS {
        let h = stdout(&run_plugin(&format!("kubectl-etcd-{sub}"), &["--help"], &[]));
        let examples = h.split("\nExamples:\n").nth(1).unwrap_or_else(|| panic!("{sub}: no examples\n{h}"));
        assert!(
            examples.lines().any(|l| l.trim_start().starts_with(&format!("kubectl etcd {sub}"))),
            "{sub}: {examples}"
        );
    }
    // The nouns people look for: snapshot and member run the same binaries; help COMMAND.
    for noun in ["snapshot", "member", "help"] {
        assert!(
            stdout(&run_plugin("kubectl-etcd", &[], &[])).lines().any(|l| l.trim_start().starts_with(noun)),
            "{noun}"
        );
    }
    let pairs: [(&[&str], &str, &[&str]); 5] = [
        (
            &["snapshot", "status", "/nonexistent.db"],
            "kubectl-etcd-restore",
            &["snapshot", "status", "/nonexistent.db"],
        ),
        (&["-v", "snapshot", "--help"], "kubectl-etcd-restore", &["-v", "snapshot", "--help"]),
        (&["member", "--help"], "kubectl-etcd-learner", &["--help"]),
        (&["help", "health"], HEALTH, &["--help"]),
        (&["help", "snapshot", "save"], "kubectl-etcd-restore", &["snapshot", "save", "--help"]),
    ];
    for (via, plugin, direct) in pairs {
        let a = run_plugin("kubectl-etcd", via, &[]);
        let b = run_plugin(plugin, direct, &[]);
        assert_eq!(a.status.code(), b.status.code(), "{via:?}: {}", stderr(&a));
        assert_eq!((stdout(&a), stderr(&a)), (stdout(&b), stderr(&b)), "{via:?}");
    }

    // Through a real kubectl (a declared test dependency: missing, the test fails).
    let kubectl = harness::kubectl();
    let dir = bin(HEALTH).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out =
        std::process::Command::new(&kubectl).args(["etcd", "health", "--help"]).env("PATH", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout(&direct));
    let list = std::process::Command::new(&kubectl).args(["plugin", "list"]).env("PATH", &path).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-etcd-health"));
}

/// A krew-like install: only `kubectl-etcd` on PATH (a link into a store holding the plugins),
/// the completion helpers written by `kubectl etcd completion kubectl --install-dir`, and a
/// working directory holding two snapshots and a folder.
struct Install {
    root: tempfile::TempDir,
}

impl Install {
    fn new() -> Install {
        let root = tempfile::tempdir().unwrap();
        let (store, path, work) = (root.path().join("store"), root.path().join("bin"), root.path().join("work"));
        for d in [&store, &path, &work.join("sub")] {
            std::fs::create_dir_all(d).unwrap();
        }
        for b in [
            "kubectl-etcd",
            "kubectl-etcd-health",
            "kubectl-etcd-learner",
            "kubectl-etcd-restore",
            "kubectl-etcd-defrag",
            "kubectl-etcd-doctor",
        ] {
            std::fs::copy(bin(b), store.join(b)).unwrap();
        }
        std::os::unix::fs::symlink(store.join("kubectl-etcd"), path.join("kubectl-etcd")).unwrap();
        for f in ["snap-a.db", "snap-b.db"] {
            std::fs::write(work.join(f), b"x").unwrap();
        }
        let i = Install { root };
        let o = i.run(&i.path().join("kubectl-etcd"), &["completion", "kubectl", "--install-dir", s(&i.path())]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), kubectl_etcd::PLUGINS.len() + 1, "{}", stdout(&o));
        i
    }

    fn path(&self) -> std::path::PathBuf {
        self.root.path().join("bin")
    }

    /// Runs `exe` in the working directory with only this install and the system on PATH.
    fn run(&self, exe: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(exe)
            .args(args)
            .current_dir(self.root.path().join("work"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.path().display()))
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    }

    /// What kubectl (1.26+) does for `kubectl <plugin words> WORDS…<TAB>`: the helper
    /// `kubectl_complete-<plugin>` from PATH, given the words after the plugin and the word under
    /// the cursor; its stdout.
    fn kubectl_helper(&self, plugin: &str, words: &[&str]) -> String {
        let o = self.run(&self.path().join(format!("kubectl_complete-{plugin}")), words);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    }

    /// bash driving `kubectl etcd completion bash` for COMP_WORDS as bash splits the line
    /// (at spaces, and at `=`): the COMPREPLY it gets, one per line.
    fn bash(&self, comp_words: &[&str]) -> String {
        let quoted: Vec<String> = comp_words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(kubectl-etcd completion bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n_kubectl_etcd\n(( ${{#COMPREPLY[@]}} )) && printf '%s\\n' \"${{COMPREPLY[@]}}\"\ntrue\n",
            quoted.join(" "),
            comp_words.len() - 1,
            comp_words.iter().enumerate().fold(String::new(), |mut l, (i, w)| {
                if i > 0 && *w != "=" && comp_words[i - 1] != "=" {
                    l.push(' ');
                }
                l.push_str(w);
                l
            }),
        );
        let o = self.run(Path::new("/bin/bash"), &["-c", &script]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    }
}

/// Completion as kubectl's plugin completion and bash drive it, from a krew-like install: flag
/// values (`-o <TAB>`), file and directory arguments (left to the shell), subcommands and the
/// dispatcher's nouns, all from the plugins' own clap commands.
#[test]
fn completion_as_kubectl_and_bash_drive_it() {
    let i = Install::new();
    let formats = "table\nwide\njson\nyaml\njsonpath=\n";
    // kubectl etcd health -o <TAB>: the formats, in order, no file names (4|32).
    assert_eq!(i.kubectl_helper("etcd", &["health", "-o", ""]), format!("{formats}:36\n"));
    assert_eq!(i.kubectl_helper("etcd", &["health", "--output=js"]), "--output=json\n--output=jsonpath=\n:36\n");
    // Only the unfinished jsonpath= left: no space after it (2).
    assert_eq!(i.kubectl_helper("etcd", &["health", "-o", "jsonp"]), "jsonpath=\n:38\n");
    // kubectl etcd restore snapshot status <TAB>: nothing offered, the shell completes files (0).
    assert_eq!(i.kubectl_helper("etcd", &["restore", "snapshot", "status", ""]), ":0\n");
    assert_eq!(i.kubectl_helper("etcd", &["snapshot", "status", "snap"]), ":0\n");
    assert_eq!(i.kubectl_helper("etcd", &["learner", "add", "--write-manifest", ""]), ":0\n");
    // Directories only (16).
    assert_eq!(i.kubectl_helper("etcd", &["restore", "doctor", "--snapshots", ""]), ":16\n");
    // Subcommands and flags, with their descriptions; no file names.
    let out = i.kubectl_helper("etcd", &["member", "pro"]);
    assert!(out.starts_with("promote\tPromote a learner") && out.ends_with("\n:4\n"), "{out}");
    let out = i.kubectl_helper("etcd", &["snapshot", "status", "--sk"]);
    assert!(out.starts_with("--skip-hash-check\t") && out.ends_with("\n:4\n"), "{out}");
    let out = i.kubectl_helper("etcd", &[""]);
    for noun in ["health\t", "learner\t", "restore\t", "defrag\t", "snapshot\t", "member\t", "completion\t"] {
        assert!(out.lines().any(|l| l.starts_with(noun)), "{noun}: {out}");
    }
    assert_eq!(i.kubectl_helper("etcd", &["completion", ""]), "bash\nzsh\nfish\nkubectl\n:4\n");
    // kubectl asks kubectl_complete-etcd-health when kubectl-etcd-health is on PATH itself.
    assert_eq!(i.kubectl_helper("etcd-health", &["-o", "y"]), "yaml\n:36\n");
    assert_eq!(i.kubectl_helper("etcd-restore", &["snapshot", "verify", ""]), ":0\n");

    // The same through a real kubectl (1.26 and later complete plugins; install-deps provides
    // one: an older or missing kubectl fails here rather than skipping).
    let kubectl = harness::kubectl();
    let kubectl_minor = std::process::Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v["clientVersion"]["minor"].as_str().and_then(|m| m.trim_end_matches('+').parse::<u32>().ok()));
    assert!(kubectl_minor.is_some_and(|m| m >= 26), "{} is older than 1.26: {kubectl_minor:?}", kubectl.display());
    {
        let o = i.run(&kubectl, &["__complete", "etcd", "health", "-o", ""]);
        assert_eq!(stdout(&o), format!("{formats}:36\n"), "{}", stderr(&o));
        let o = i.run(&kubectl, &["__complete", "etcd", "snapshot", "status", ""]);
        assert_eq!(stdout(&o), ":0\n", "{}", stderr(&o));
    }

    // bash, with the script of `kubectl etcd completion bash`.
    assert_eq!(i.bash(&["kubectl-etcd", "snapshot", "status", "sn"]), "snap-a.db\nsnap-b.db\n");
    assert_eq!(i.bash(&["kubectl-etcd", "health", "-o", ""]), formats);
    // bash splits `--output=js` into `--output`, `=`, `js`: the answer is for its word.
    assert_eq!(i.bash(&["kubectl-etcd", "health", "--output", "=", "js"]), "json\njsonpath=\n");
    assert_eq!(i.bash(&["kubectl-etcd", "restore", "doctor", "--snapshots", "s"]), "sub\n");
    assert_eq!(i.bash(&["kubectl-etcd", "mem"]), "member\n");
    assert_eq!(i.bash(&["kubectl-etcd", "member", "add", "--peer-urls", ""]), "");
    // zsh and fish scripts, and each binary's own.
    for shell in ["zsh", "fish"] {
        let o = i.run(&i.path().join("kubectl-etcd"), &["completion", shell]);
        assert!(stdout(&o).contains("kubectl-etcd __complete") || stdout(&o).contains("__complete"), "{shell}");
    }
    let o = run_plugin(HEALTH, &["completion", "bash"], &[]);
    assert!(stdout(&o).contains("complete -F _kubectl_etcd_health kubectl-etcd-health"), "{}", stdout(&o));
    let o = run_plugin(HEALTH, &["completion", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // `kubectl etcd he<TAB>` offers health once. kubectl lists the kubectl-etcd-* plugins it
    // finds on PATH itself; the helper adds the ones it does not (krew puts only kubectl-etcd on
    // PATH), then, with every plugin on PATH (cargo install), none.
    let kubectl_says = |words: &[&str]| {
        let mut args = vec!["__complete", "etcd"];
        args.extend(words);
        stdout(&i.run(&kubectl, &args))
    };
    let health_lines = |out: &str| out.lines().filter(|l| l.starts_with("health")).count();
    assert_eq!(health_lines(&i.kubectl_helper("etcd", &["he"])), 1);
    let out = kubectl_says(&["he"]);
    assert_eq!(health_lines(&out), 1, "{out}");
    for (p, _) in kubectl_etcd::PLUGINS {
        let b = format!("kubectl-etcd-{p}");
        std::os::unix::fs::symlink(i.root.path().join("store").join(&b), i.path().join(&b)).unwrap();
    }
    let out = i.kubectl_helper("etcd", &[""]);
    for (p, _) in kubectl_etcd::PLUGINS {
        assert!(!out.lines().any(|l| l.starts_with(&format!("{p}\t"))), "{p}: {out}");
    }
    assert!(
        out.lines().any(|l| l.starts_with("snapshot\t")) && out.lines().any(|l| l.starts_with("member\t")),
        "{out}"
    );
    let out = kubectl_says(&["he"]);
    assert_eq!(health_lines(&out), 1, "{out}");
    let out = kubectl_says(&[""]);
    for word in ["health", "learner", "restore", "defrag", "snapshot", "member"] {
        assert_eq!(out.lines().filter(|l| l.starts_with(&format!("{word}\t"))).count(), 1, "{word}: {out}");
    }
}
