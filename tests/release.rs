//! `scripts/release.sh` and the krew install route: the archive and manifest it writes pass
//! krew's rules, and the archive installed the way krew installs it runs through the real
//! `kubectl`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `*` matches any run of characters within one name, as krew's `files[].from` globs do.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, rest)) => {
            name.starts_with(pre) && {
                let tail = &name[pre.len()..];
                (0..=tail.len()).any(|i| glob_match(rest, &tail[i..]))
            }
        }
    }
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn release_archive_and_manifest_install_as_krew_does() {
    let version = env!("CARGO_PKG_VERSION");
    let dist = tempfile::tempdir().unwrap();
    // Archives built elsewhere: another platform of this version is listed with its own
    // sha256; another version's archive is not.
    let other = dist.path().join(format!("kubectl-etcd_{version}_darwin_arm64.tar.gz"));
    std::fs::write(&other, b"an archive built on a darwin/arm64 machine").unwrap();
    std::fs::write(dist.path().join("kubectl-etcd_0.0.1_linux_arm64.tar.gz"), b"an old release").unwrap();
    let o = Command::new(repo().join("scripts/release.sh"))
        .arg(version)
        .current_dir(repo())
        .env("DIST", dist.path())
        .env("RELEASE_PROFILE", "dev")
        .output()
        .unwrap();
    assert!(o.status.success(), "release.sh failed: {}", String::from_utf8_lossy(&o.stderr));
    let archive = dist.path().join(format!("kubectl-etcd_{version}_linux_amd64.tar.gz"));
    assert!(archive.is_file(), "no {}", archive.display());
    let sum = sha256_hex(&archive);
    let sum_file =
        std::fs::read_to_string(dist.path().join(format!("kubectl-etcd_{version}_linux_amd64.tar.gz.sha256")));
    assert_eq!(sum_file.unwrap().split_whitespace().next(), Some(sum.as_str()));

    // krew's rules for a manifest.
    let manifest_path = dist.path().join("etcd.yaml");
    let index_copy = std::fs::read_to_string(dist.path().join("krew-index/plugins/etcd.yaml")).unwrap();
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    assert_eq!(text, index_copy, "the custom index layout holds the same manifest");
    assert!(!text.contains("{{"), "no template left: {text}");
    let m: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(m["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], manifest_path.file_stem().unwrap().to_str().unwrap(), "name = file name");
    let v = m["spec"]["version"].as_str().unwrap();
    assert_eq!(v, format!("v{version}"));
    let semver = v.strip_prefix('v').unwrap().split('.').collect::<Vec<_>>();
    assert!(semver.len() == 3 && semver.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())), "{v}");
    let short = m["spec"]["shortDescription"].as_str().unwrap();
    assert!(!short.contains('\n') && !short.is_empty() && short.len() <= 80, "{short:?}");
    let platforms = m["spec"]["platforms"].as_array().unwrap();
    assert!(!platforms.is_empty());
    let mut selectors = std::collections::BTreeSet::new();
    for p in platforms {
        let labels = p["selector"]["matchLabels"].as_object().unwrap();
        assert!(!labels.is_empty(), "empty selector: {p:#}");
        assert!(selectors.insert(format!("{labels:?}")), "overlapping selectors: {p:#}");
        let uri = p["uri"].as_str().unwrap();
        assert!(uri.starts_with("https://") && uri.ends_with(".tar.gz"), "{uri}");
        let sha = p["sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{sha}");
        assert!(!p["bin"].as_str().unwrap().is_empty());
        let froms: Vec<&str> = p["files"].as_array().unwrap().iter().map(|f| f["from"].as_str().unwrap()).collect();
        assert!(froms.contains(&"LICENSE"), "a LICENSE file is extracted: {froms:?}");
    }
    let listed: std::collections::BTreeSet<(String, String)> = platforms
        .iter()
        .map(|p| {
            let l = &p["selector"]["matchLabels"];
            (l["os"].as_str().unwrap().to_string(), l["arch"].as_str().unwrap().to_string())
        })
        .collect();
    let want = [("darwin", "arm64"), ("linux", "amd64")].map(|(o, a)| (o.to_string(), a.to_string()));
    assert_eq!(listed, want.into_iter().collect(), "exactly the platforms whose archives of {version} are in dist/");
    let darwin = platforms.iter().find(|p| p["selector"]["matchLabels"]["os"] == "darwin").unwrap();
    assert_eq!(darwin["sha256"], sha256_hex(&other).as_str(), "each platform's sha256 is its own archive's");
    let here = platforms
        .iter()
        .find(|p| p["selector"]["matchLabels"]["os"] == "linux" && p["selector"]["matchLabels"]["arch"] == "amd64")
        .unwrap();
    assert_eq!(here["sha256"], sum.as_str(), "the manifest's sha256 is the archive's");
    assert!(here["uri"].as_str().unwrap().ends_with(&format!("/v{version}/kubectl-etcd_{version}_linux_amd64.tar.gz")));

    // Install as krew does: unpack, copy what `files` names into the install dir, link `bin`
    // as kubectl-<name> in a bin dir of its own.
    let root = tempfile::tempdir().unwrap();
    let unpacked = root.path().join("download");
    let install = root.path().join("store/etcd").join(v);
    let bin = root.path().join("bin");
    for d in [&unpacked, &install, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let st = Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&unpacked).status().unwrap();
    assert!(st.success());
    let names: Vec<String> =
        std::fs::read_dir(&unpacked).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    // The archive carries the README (the promise the manifest's description points to).
    let readme = std::fs::read(unpacked.join("README.md")).ok();
    assert!(readme.is_some(), "README.md in the archive: {names:?}");
    assert!(readme == std::fs::read(repo().join("README.md")).ok(), "the archive's README.md is the repository's");
    for f in here["files"].as_array().unwrap() {
        let (from, to) = (f["from"].as_str().unwrap(), f["to"].as_str().unwrap());
        let matched: Vec<&String> = names.iter().filter(|n| glob_match(from, n)).collect();
        assert!(!matched.is_empty(), "files rule {from:?} matches nothing in {names:?}");
        for n in matched {
            let dest = install.join(to).join(n);
            std::fs::copy(unpacked.join(n), &dest).unwrap();
        }
    }
    let expected = kubectl_etcd::PLUGINS.iter().map(|(p, _)| format!("kubectl-etcd-{p}"));
    for plugin in expected.chain(["kubectl-etcd".to_string(), "LICENSE".to_string()]) {
        assert!(install.join(&plugin).is_file(), "{plugin} installed");
    }
    let link = bin.join(format!("kubectl-{}", m["metadata"]["name"].as_str().unwrap()));
    std::os::unix::fs::symlink(install.join(here["bin"].as_str().unwrap()), &link).unwrap();

    // The real kubectl, with only the krew bin dir and kubectl's own dir on PATH: `kubectl etcd
    // health` has no kubectl-etcd-health on PATH, so it goes through the dispatcher.
    let kubectl = harness::kubectl();
    let kdir = kubectl.parent().unwrap();
    assert!(!kdir.join("kubectl-etcd-health").exists(), "kubectl's own dir must not hold the plugins");
    let path = format!("{}:{}", bin.display(), kdir.display());
    let run = |args: &[&str]| {
        let o = Command::new(&kubectl).args(args).env("PATH", &path).env_remove("KUBECONFIG").output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    for (cmd, _) in kubectl_etcd::PLUGINS {
        let (code, out, err) = run(&["etcd", cmd, "--help"]);
        assert_eq!(code, Some(0), "kubectl etcd {cmd} --help: {err}");
        assert!(out.contains(&format!("Usage: kubectl etcd {cmd}")), "{out}");
    }
    let (code, out, err) = run(&["etcd", "version"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("kubectl-etcd {version}\n")) && out.contains("tested with etcd: 3.4.23, 3.5.1"),
        "{out}"
    );
    assert!(out.contains("target: x86_64-unknown-linux-gnu"), "{out}");
    let (code, out, _) = run(&["etcd", "health", "--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&format!("kubectl-etcd-health {version} (commit ")), "{out}");
}

#[test]
fn release_refuses_a_version_that_is_not_the_workspaces() {
    let o = Command::new(repo().join("scripts/release.sh")).arg("9.9.9").current_dir(repo()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not the workspace version"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(repo().join("scripts/release.sh")).arg("latest").current_dir(repo()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
