//! `kubectl etcd help WORD`, run as the real dispatcher binary: the dispatcher's own words
//! (`options`, `completion`, `version`) print what `kubectl etcd WORD` prints; a plugin's word
//! runs that plugin with `--help` (here a stand-in plugin on PATH that echoes its arguments).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// The dispatcher copied alone into `dir` (so that no real plugin sits next to it), run with
/// only `dir` and the system on PATH.
fn run(dir: &Path, args: &[&str]) -> Output {
    let exe = dir.join("kubectl-etcd");
    if !exe.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_kubectl-etcd"), &exe).unwrap();
    }
    Command::new(&exe).args(args).env("PATH", format!("{}:/usr/bin:/bin", dir.display())).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_of_the_dispatchers_own_words_and_of_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = run(d, &["options"]);
    assert_eq!(options.status.code(), Some(0));
    assert!(text(&options).contains("--context") && text(&options).contains("--kubeconfig"), "{}", text(&options));
    let help = run(d, &["help", "options"]);
    assert_eq!(help.status.code(), Some(0), "{}", String::from_utf8_lossy(&help.stderr));
    assert_eq!(text(&help), text(&options));
    assert!(help.stderr.is_empty(), "{}", String::from_utf8_lossy(&help.stderr));

    let completion = run(d, &["completion", "--help"]);
    let help = run(d, &["help", "completion"]);
    assert_eq!((help.status.code(), text(&help)), (Some(0), text(&completion)));
    assert!(text(&help).contains("--install-dir"), "{}", text(&help));
    let help = run(d, &["help", "version"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help).contains("Usage: kubectl etcd version"), "{}", text(&help));

    // A plugin's word: the plugin's own --help, through PATH.
    for plugin in ["kubectl-etcd-health", "kubectl-etcd-restore"] {
        let p = d.join(plugin);
        std::fs::write(&p, "#!/bin/sh\necho \"$0 $*\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let help = run(d, &["help", "health"]);
    assert_eq!((help.status.code(), text(&help).split_once(' ').unwrap().1), (Some(0), "--help\n"));
    let help = run(d, &["help", "snapshot", "save"]);
    assert_eq!(text(&help).split_once(' ').unwrap().1, "snapshot save --help\n");
    // An unknown word: a usage error.
    let help = run(d, &["help", "frobnicate"]);
    assert_eq!(help.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&help.stderr).contains("unknown command \"frobnicate\""));

    // `kubectl etcd help o<TAB>` offers options.
    let c = run(d, &["__complete", "help", "o"]);
    assert!(text(&c).starts_with("options\t"), "{}", text(&c));
}
