//! Man pages and completion scripts for packagers, from the plugins' own clap commands:
//! `kubectl-etcd(1)` for the dispatcher (its nouns are the plugins' commands, so every page a
//! page refers to exists), a page per plugin binary and subcommand, the bash, zsh and fish
//! scripts of every binary, and kubectl's `kubectl_complete-etcd*` helpers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Arg, Command};

/// The plugin binaries and their clap commands.
pub fn plugins() -> Vec<(&'static str, Command)> {
    vec![
        ("health", kubectl_etcd_health::command()),
        ("learner", kubectl_etcd_learner::command()),
        ("restore", kubectl_etcd_restore::command()),
        ("defrag", kubectl_etcd_defrag::command()),
        ("doctor", kubectl_etcd_doctor::command()),
        ("upgrade", kubectl_etcd_upgrade::command()),
    ]
}

/// `kubectl etcd` as one command tree: the plugins under their nouns, `snapshot`, `member`,
/// `downgrade` and `usage` (the dispatcher's aliases), `help`, `version` and `completion`.
pub fn dispatcher() -> Command {
    let about = |n: &str| kubectl_etcd::PLUGINS.iter().find(|(p, _)| *p == n).map(|(_, a)| *a).unwrap_or_default();
    let mut cmd = Command::new("kubectl-etcd")
        .bin_name("kubectl etcd")
        .version(kubectl_etcd::cli::version::VERSION)
        .about("Check, grow, shrink, defragment, back up and restore the etcd cluster behind the control plane")
        .long_about(
            "kubectl etcd runs its plugins: `kubectl etcd health …` is kubectl-etcd-health, found next to \
             kubectl-etcd or on PATH, with the same arguments and exit code. `snapshot` is `restore \
             snapshot`, `member` is `learner`, `usage` is `defrag usage`.",
        )
        .after_help(
            "Examples:\n  kubectl etcd health\n  kubectl etcd snapshot save /var/backups/etcd.db\n  \
             kubectl etcd member add cp-4 --peer-urls https://10.0.0.4:2380 --promote\n  \
             kubectl etcd defrag --compact --disarm\n  kubectl etcd completion kubectl --install-dir ~/.krew/bin",
        )
        .disable_help_subcommand(true);
    for (name, c) in plugins() {
        cmd = cmd.subcommand(c.name(name).about(about(name)));
    }
    let restore = kubectl_etcd_restore::command();
    let snapshot = restore.find_subcommand("snapshot").cloned().unwrap_or_else(|| Command::new("snapshot"));
    cmd.subcommand(snapshot.about("Save, inspect and verify snapshots (kubectl etcd restore snapshot …)"))
        .subcommand(
            kubectl_etcd_learner::command()
                .name("member")
                .about("Add, promote, remove and replace members (kubectl etcd learner …)"),
        )
        .subcommand({
            let upgrade = kubectl_etcd_upgrade::command();
            upgrade
                .find_subcommand("downgrade")
                .cloned()
                .unwrap_or_else(|| Command::new("downgrade"))
                .about("etcd 3.6+: downgrade the cluster version (kubectl etcd upgrade downgrade …)")
        })
        .subcommand({
            let defrag = kubectl_etcd_defrag::command();
            defrag
                .find_subcommand("usage")
                .cloned()
                .unwrap_or_else(|| Command::new("usage"))
                .about("What fills the database, per Kubernetes resource (kubectl etcd defrag usage …)")
        })
        .subcommand(
            Command::new("help")
                .about("Show a command's help: kubectl etcd help COMMAND [SUBCOMMAND]")
                .arg(Arg::new("COMMAND").num_args(0..)),
        )
        .subcommand(Command::new("version").about("Print the version, git commit, target and the etcd versions tested"))
        .subcommand(Command::new("options").about("Print the global flags every command takes"))
        .subcommand(
            Command::new("completion")
                .about("Print a shell completion script, or install kubectl's plugin completion helpers")
                .arg(Arg::new("SHELL").required(true).value_parser(["bash", "zsh", "fish", "kubectl"]))
                .arg(
                    Arg::new("install-dir")
                        .long("install-dir")
                        .value_name("DIR")
                        .value_hint(clap::ValueHint::DirPath)
                        .help("With `kubectl`: write every kubectl_complete-etcd* helper into DIR"),
                ),
        )
}

fn write(path: &Path, text: &[u8]) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// Writes `man/*.1`, `completions/{bash,zsh,fish}/…` and `kubectl/kubectl_complete-etcd*` under
/// `out`; returns the man pages written.
pub fn generate(out: &Path) -> Result<Vec<PathBuf>> {
    let man = out.join("man");
    for d in ["man", "completions/bash", "completions/zsh", "completions/fish", "kubectl"] {
        std::fs::create_dir_all(out.join(d)).with_context(|| format!("create {}", out.join(d).display()))?;
    }
    clap_mangen::generate_to(dispatcher(), &man).with_context(|| format!("man pages in {}", man.display()))?;
    let mut bins = vec!["kubectl-etcd".to_string()];
    bins.extend(plugins().iter().map(|(n, _)| format!("kubectl-etcd-{n}")));
    for b in &bins {
        for (shell, file) in [("bash", b.clone()), ("zsh", format!("_{b}")), ("fish", format!("{b}.fish"))] {
            let text = kubectl_etcd::cli::complete::script(shell, b).context("a known shell")?;
            write(&out.join("completions").join(shell).join(file), text.as_bytes())?;
        }
    }
    kubectl_etcd::cli::complete::install_helpers(&out.join("kubectl"))
        .with_context(|| format!("kubectl helpers in {}", out.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man)?.flatten().map(|e| e.path()).collect();
    pages.sort();
    Ok(pages)
}

/// The `NAME(1)` references in a man page's text (roff escapes `-` as `\-`).
pub fn references(page: &str) -> Vec<String> {
    let text = page.replace("\\-", "-");
    let mut refs = Vec::new();
    for (i, _) in text.match_indices("(1)") {
        let name: String = text[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        if name.starts_with("kubectl-etcd") {
            refs.push(name);
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand, with its path as typed after `kubectl etcd`.
    fn walk(cmd: &Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Command)>) {
        out.push((path.clone(), cmd.clone()));
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(s.get_name().to_string());
            walk(s, p, out);
        }
    }

    #[test]
    fn every_help_page_has_examples_of_its_own_command() {
        let mut all = Vec::new();
        for (name, c) in plugins() {
            walk(&c, vec![name.to_string()], &mut all);
        }
        assert!(all.len() > 15, "{}", all.len());
        for (path, cmd) in all {
            let help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.starts_with("Examples:\n"), "{path:?} has no Examples");
            let want = format!("kubectl etcd {}", path.join(" "));
            let commands: Vec<&str> = help.lines().map(str::trim).filter(|l| l.starts_with("kubectl ")).collect();
            assert!(!commands.is_empty(), "{path:?}: no example command");
            // A dispatcher alias is the same command (`kubectl etcd usage` is `… defrag usage`).
            let alias = kubectl_etcd::ALIASES
                .iter()
                .find(|(_, plugin, word, _)| {
                    path.first().map(String::as_str) == Some(*plugin)
                        && word.is_none_or(|w| path.get(1).map(String::as_str) == Some(w))
                })
                .map(|(noun, _, word, _)| {
                    let rest = path.get(if word.is_some() { 2 } else { 1 }..).unwrap_or_default().join(" ");
                    format!("kubectl etcd {noun} {rest}").trim_end().to_string()
                });
            for l in commands {
                assert!(
                    l.starts_with(&want) || alias.as_ref().is_some_and(|a| l.starts_with(a.as_str())),
                    "{path:?}: an example of another command: {l}"
                );
            }
        }
    }

    #[test]
    fn man_pages_for_every_command_and_no_dangling_references() {
        let dir = tempfile::tempdir().unwrap();
        let pages = generate(dir.path()).unwrap();
        let names: Vec<String> = pages.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
        for want in [
            "kubectl-etcd",
            "kubectl-etcd-health",
            "kubectl-etcd-learner-add",
            "kubectl-etcd-restore-snapshot-save",
            "kubectl-etcd-snapshot-status",
            "kubectl-etcd-member-promote",
            "kubectl-etcd-defrag",
            "kubectl-etcd-doctor-logs",
            "kubectl-etcd-upgrade-check",
            "kubectl-etcd-completion",
        ] {
            assert!(names.iter().any(|n| n == want), "{want}.1 missing: {names:?}");
        }
        let mut seen = 0;
        for p in &pages {
            let text = std::fs::read_to_string(p).unwrap();
            for r in references(&text) {
                seen += 1;
                assert!(names.contains(&r), "{} refers to {r}(1), which is not written", p.display());
            }
        }
        assert!(seen > 10, "{seen} references");
        for f in
            ["completions/bash/kubectl-etcd", "completions/zsh/_kubectl-etcd-health", "kubectl/kubectl_complete-etcd"]
        {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
    }
}
