//! `kubectl-etcd-gen DIR`: writes shell completions (bash, zsh, fish) and man pages for every
//! plugin from its clap command, plus the `kubectl_complete-etcd*` helpers with which kubectl
//! (1.26+) completes plugin arguments.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("kubectl-etcd-health", kubectl_etcd_health::command()),
        ("kubectl-etcd-defrag", kubectl_etcd_defrag::command()),
        ("kubectl-etcd-learner", kubectl_etcd_learner::command()),
        ("kubectl-etcd-restore", kubectl_etcd_restore::command()),
    ]
}

/// The words a kubectl completion helper offers after `args`: subcommands, then flags.
fn candidates(cmd: &clap::Command, args: &[String]) -> Vec<String> {
    let mut cmd = cmd.clone();
    for a in args.iter().take(args.len().saturating_sub(1)) {
        if let Some(sub) = cmd.find_subcommand(a) {
            cmd = sub.clone();
        }
    }
    let mut out: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for arg in cmd.get_arguments() {
        if let Some(l) = arg.get_long() {
            out.push(format!("--{l}"));
        }
    }
    out
}

fn write(path: &Path, text: &[u8]) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Completion mode, for the kubectl_complete-* helpers: `kubectl-etcd-gen __complete PLUGIN ARGS...`.
    if args.first().map(String::as_str) == Some("__complete") {
        let plugin = args.get(1).cloned().unwrap_or_default();
        let rest = &args[2.min(args.len())..];
        let words = match plugin.as_str() {
            "etcd" => match rest.first() {
                Some(sub) if rest.len() > 1 => commands()
                    .into_iter()
                    .find(|(n, _)| *n == format!("kubectl-etcd-{sub}"))
                    .map(|(_, c)| candidates(&c, &rest[1..]))
                    .unwrap_or_default(),
                _ => kubectl_etcd::PLUGINS.iter().map(|(n, _)| n.to_string()).collect(),
            },
            other => commands()
                .into_iter()
                .find(|(n, _)| *n == format!("kubectl-{other}"))
                .map(|(_, c)| candidates(&c, rest))
                .unwrap_or_default(),
        };
        let prefix = rest.last().cloned().unwrap_or_default();
        for w in words.iter().filter(|w| w.starts_with(&prefix)) {
            println!("{w}");
        }
        // Cobra's ShellCompDirectiveNoFileComp.
        println!(":4");
        return Ok(());
    }
    let out = PathBuf::from(args.first().cloned().unwrap_or_else(|| "target/completions".into()));
    std::fs::create_dir_all(out.join("man")).with_context(|| format!("create {}", out.display()))?;
    for (name, cmd) in commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut c = cmd.clone();
            clap_complete::generate_to(shell, &mut c, name, &out)
                .with_context(|| format!("{shell} completion for {name}"))?;
        }
        let man = clap_mangen::Man::new(cmd.clone().name(name));
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        write(&out.join("man").join(format!("{name}.1")), &buf)?;
        // kubectl plugin completion helper: kubectl runs `kubectl_complete-etcd-health ARGS`.
        let plugin = name.trim_start_matches("kubectl-");
        let helper = format!(
            "#!/bin/sh\n# kubectl completion for `kubectl {}`\nexec kubectl-etcd-gen __complete {plugin} \"$@\"\n",
            plugin.replace('-', " ")
        );
        write(&out.join(format!("kubectl_complete-{plugin}")), helper.as_bytes())?;
    }
    write(
        &out.join("kubectl_complete-etcd"),
        b"#!/bin/sh\n# kubectl completion for `kubectl etcd`\nexec kubectl-etcd-gen __complete etcd \"$@\"\n",
    )?;
    #[cfg(unix)]
    for e in std::fs::read_dir(&out)?.flatten() {
        use std::os::unix::fs::PermissionsExt;
        if e.file_name().to_string_lossy().starts_with("kubectl_complete-") {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!("wrote completions, man pages and kubectl completion helpers to {}", out.display());
    Ok(())
}
