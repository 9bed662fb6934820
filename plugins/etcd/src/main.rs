//! `kubectl-etcd`: the krew entry point. `kubectl etcd learner add …` runs
//! `kubectl-etcd-learner add …`, found next to this executable first, then on PATH, with the
//! same arguments, stdio and exit code. kubectl itself resolves `kubectl etcd health` to
//! `kubectl-etcd-health` when that binary is on PATH: both routes run the same command.
//!
//! Two nouns people look for are aliases onto the same binaries: `kubectl etcd snapshot …` is
//! `kubectl etcd restore snapshot …`, `kubectl etcd member …` is `kubectl etcd learner …`.
//! `kubectl etcd help COMMAND` is `COMMAND --help`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use kubectl_etcd::base::messages;
use kubectl_etcd::ExitCode as Code;
use kubectl_etcd::PLUGINS as SUBCOMMANDS;

use kubectl_etcd::ALIASES;

/// The suite's documented exit codes: 2 usage (an unknown command), 3 discovery (a plugin
/// binary that cannot be found or run).
fn exit(code: Code) -> ExitCode {
    ExitCode::from(code as u8)
}

/// `kubectl etcd version`: the release, commit and target, and the etcd versions tested.
fn version() -> String {
    use kubectl_etcd::cli::version::{COMMIT, TARGET, TESTED_ETCD, VERSION};
    format!("kubectl-etcd {VERSION}\ncommit: {COMMIT}\ntarget: {TARGET}\ntested with etcd: {TESTED_ETCD}\n")
}

fn usage() -> String {
    let mut s = String::from("kubectl etcd: check, grow, shrink, back up and restore the etcd cluster behind the control plane.\n\nUsage: kubectl etcd <COMMAND> [ARGS]...\n\nCommands:\n");
    let mut rows: Vec<(&str, &str)> = SUBCOMMANDS.to_vec();
    rows.extend(ALIASES.iter().map(|(name, _, _, about)| (*name, *about)));
    rows.push(("help", "Show a command's help: kubectl etcd help COMMAND"));
    rows.push(("options", "Print the global flags every command takes"));
    rows.push(("completion", "Shell completion: kubectl etcd completion bash|zsh|fish|kubectl"));
    rows.push(("version", "Print the version, git commit, target and the etcd versions tested"));
    // The column fits the longest name and two spaces, as clap's own help does.
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 2;
    for (name, about) in rows {
        s.push_str(&format!("  {name:<width$}{about}\n"));
    }
    s.push_str("\nExamples:\n");
    s.push_str(
        "  kubectl etcd health                                # on a control-plane node, or with a kubeconfig\n",
    );
    s.push_str("  kubectl etcd snapshot save /var/backups/etcd.db    # a verified snapshot\n");
    s.push_str("  kubectl etcd member add cp-4 --peer-urls https://10.0.0.4:2380 --promote\n");
    s.push_str("  kubectl etcd defrag --compact --disarm             # mvcc: database space exceeded\n");
    s.push_str("  kubectl etcd usage                                 # what fills the database\n");
    s.push_str("  kubectl etcd doctor logs cp-2 --previous           # why the member's etcd crashed\n");
    s.push_str("\nRun 'kubectl etcd help <COMMAND>' or 'kubectl etcd <COMMAND> --help' for a command's flags.\n");
    s.push_str(&format!("{}\n", kubectl_etcd::cli::args::OPTIONS_LINE));
    s
}

fn find(plugin: &str) -> Option<PathBuf> {
    if let Some(dir) =
        std::env::current_exe().ok().and_then(|p| p.canonicalize().ok()).and_then(|p| p.parent().map(PathBuf::from))
    {
        let p = dir.join(plugin);
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(plugin)).find(|p| p.is_file())
}

/// The plugin a command word runs, and what stands in its place in the plugin's arguments.
fn resolve(word: &str) -> Option<(&'static str, Option<&'static str>)> {
    if let Some((name, _)) = SUBCOMMANDS.iter().find(|(n, _)| *n == word) {
        return Some((name, None));
    }
    ALIASES.iter().find(|(n, ..)| *n == word).map(|(_, plugin, keep, _)| (*plugin, *keep))
}

fn unknown(other: &str) -> ExitCode {
    let mut names: Vec<&str> = SUBCOMMANDS.iter().map(|(n, _)| *n).collect();
    names.extend(ALIASES.iter().map(|(n, ..)| *n));
    messages::error(&format!(
        "unknown command {other:?}: expected one of {}, help, options, completion, version (run 'kubectl etcd --help')",
        names.join(", ")
    ));
    exit(Code::Usage)
}

/// Runs the plugin for `args[pos]` with the other arguments in their places (the alias's own
/// word, as `snapshot`, where the command word was).
fn run(mut args: Vec<OsString>, pos: usize) -> ExitCode {
    let word = args[pos].to_string_lossy().to_string();
    let Some((plugin, keep)) = resolve(&word) else { return unknown(&word) };
    let plugin = format!("kubectl-etcd-{plugin}");
    let Some(path) = find(&plugin) else {
        messages::error(&format!("{plugin} was not found next to kubectl-etcd or on PATH; install it with 'kubectl krew install etcd' or put it on PATH"));
        return exit(Code::Discovery);
    };
    match keep {
        Some(k) => args[pos] = k.into(),
        None => {
            args.remove(pos);
        }
    }
    // exec replaces this process: stdio, signals and the exit code are the plugin's own.
    let err = Command::new(&path).arg0(&plugin).args(args).exec();
    messages::error(&format!("failed to run {}: {err}", path.display()));
    exit(Code::Discovery)
}

/// `kubectl etcd completion --help`.
const COMPLETION_HELP: &str = r#"Print a shell completion script, or kubectl's plugin completion helper.

Usage: kubectl etcd completion bash|zsh|fish
       kubectl etcd completion kubectl [--install-dir DIR]

kubectl (1.26+) completes `kubectl etcd …` through an executable named kubectl_complete-etcd on
PATH (krew does not link it: put it next to kubectl-etcd, e.g. in ~/.krew/bin). With
--install-dir, the helpers for every plugin binary are written there as well (kubectl asks
kubectl_complete-etcd-health when kubectl-etcd-health is on PATH itself).

Examples:
  kubectl etcd completion kubectl --install-dir "${KREW_ROOT:-$HOME/.krew}/bin"
  source <(kubectl etcd completion bash)        # completes kubectl-etcd …
  kubectl etcd completion zsh > "${fpath[1]}/_kubectl-etcd"
  kubectl etcd completion fish > ~/.config/fish/completions/kubectl-etcd.fish
"#;

/// `kubectl etcd completion …`.
fn completion(args: &[String]) -> ExitCode {
    use kubectl_etcd::cli::complete;
    let usage_error = || {
        messages::error("usage: kubectl etcd completion bash|zsh|fish|kubectl [--install-dir DIR] (run 'kubectl etcd completion --help')");
        exit(Code::Usage)
    };
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["-h"] | ["--help"] => {
            print!("{COMPLETION_HELP}");
            ExitCode::SUCCESS
        }
        ["kubectl"] => {
            print!("{}", complete::kubectl_helper("etcd"));
            ExitCode::SUCCESS
        }
        ["kubectl", "--install-dir", dir] => {
            match complete::install_helpers(std::path::Path::new(dir)) {
                Ok(paths) => {
                    for p in paths {
                        println!("{}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    messages::error(&format!("cannot write the kubectl completion helpers into {dir}: {e} (pass a writable directory on PATH)"));
                    exit(Code::Negative)
                }
            }
        }
        [shell] => match complete::script(shell, "kubectl-etcd") {
            Some(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            None => usage_error(),
        },
        _ => usage_error(),
    }
}

/// `kubectl-etcd __complete WORD… CURRENT`: the command names here, the rest by the plugin
/// the command word runs (its own `__complete`).
fn complete_words(words: Vec<String>) -> ExitCode {
    use kubectl_etcd::cli::complete::{Completion, NO_FILES};
    let before = &words[..words.len().saturating_sub(1)];
    let typed = words.last().cloned().unwrap_or_default();
    if let Some(pos) = before.iter().position(|w| resolve(w).is_some()) {
        let mut args: Vec<OsString> = vec!["__complete".into()];
        args.extend(words.iter().map(OsString::from));
        return run(args, pos + 1);
    }
    let commands = || {
        let mut c: Vec<(String, String)> = SUBCOMMANDS.iter().map(|(n, a)| (n.to_string(), a.to_string())).collect();
        c.extend(ALIASES.iter().map(|(n, _, _, a)| (n.to_string(), a.to_string())));
        c
    };
    let own = || {
        [
            ("version", "Print the version"),
            ("options", "Print the global flags every command takes"),
            ("completion", "Print a shell completion script or kubectl's completion helper"),
        ]
        .map(|(n, a)| (n.to_string(), a.to_string()))
    };
    let mut candidates: Vec<(String, String)> = match before.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => {
            let mut c = commands();
            c.push(("help".into(), "Show a command's help".into()));
            c.extend(own());
            c
        }
        ["help"] => commands().into_iter().chain(own()).collect(),
        ["completion"] => ["bash", "zsh", "fish", "kubectl"].iter().map(|s| (s.to_string(), String::new())).collect(),
        _ => Vec::new(),
    };
    candidates.retain(|(n, _)| n.starts_with(&typed));
    // For kubectl's plugin completion, the plugins it finds on PATH are its to list.
    if before.is_empty() && std::env::var(kubectl_etcd::cli::complete::FOR_KUBECTL_ENV).as_deref() == Ok("kubectl") {
        let path = std::env::var_os("PATH").unwrap_or_default();
        candidates.retain(|(n, _)| !kubectl_etcd::cli::complete::kubectl_lists(n, &path));
    }
    print!("{}", Completion { candidates, directive: NO_FILES }.render());
    ExitCode::SUCCESS
}

/// `kubectl etcd help WORD` for the words the dispatcher answers itself (`options`,
/// `completion`, `version`, `help`): what `kubectl etcd WORD` (or `WORD --help`) prints.
/// `None`: a plugin's word, its `--help`.
fn own_help(words: &[String]) -> Option<ExitCode> {
    let text = match words.first().map(String::as_str)? {
        "options" => kubectl_etcd::cli::args::options_help(),
        "completion" => COMPLETION_HELP.to_string(),
        "version" => {
            "Print the version, git commit, target and the etcd versions tested.\n\nUsage: kubectl etcd version\n"
                .to_string()
        }
        "help" => usage(),
        _ => return None,
    };
    print!("{text}");
    Some(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    match words.first().map(String::as_str) {
        Some("__complete") => return complete_words(words[1..].to_vec()),
        Some("completion") => return completion(&words[1..]),
        _ => {}
    }
    // `help COMMAND [SUB…]` is `COMMAND [SUB…] --help`; the dispatcher's own words answer here.
    if args.first().and_then(|a| a.to_str()) == Some("help") && args.len() > 1 {
        if let Some(code) = own_help(&words[1..]) {
            return code;
        }
        let mut rest: Vec<OsString> = args[1..].to_vec();
        rest.push("--help".into());
        return run(rest, 0);
    }
    let pos = args.iter().position(|a| a.to_str().is_some_and(|w| resolve(w).is_some()));
    let Some(pos) = pos else {
        return match args.first().and_then(|a| a.to_str()) {
            None | Some("-h") | Some("--help") | Some("help") => {
                print!("{}", usage());
                ExitCode::SUCCESS
            }
            Some("--version") | Some("-V") => {
                println!("kubectl-etcd {}", kubectl_etcd::cli::version::LONG);
                ExitCode::SUCCESS
            }
            Some("version") => {
                print!("{}", version());
                ExitCode::SUCCESS
            }
            Some("options") => {
                print!("{}", kubectl_etcd::cli::args::options_help());
                ExitCode::SUCCESS
            }
            Some(other) => unknown(other),
        };
    };
    run(args, pos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_name_stands_apart_from_its_description() {
        let usage = super::usage();
        let commands = usage.split("Commands:\n").nth(1).and_then(|r| r.split("\n\n").next()).unwrap_or_default();
        assert!(commands.lines().count() >= 10, "{usage}");
        // Where each description starts: after the indent, the name and the spaces after it.
        let column = |l: &str| {
            let name_end = l.len() - l.trim_start().len() + l.trim_start().find(' ').unwrap_or(0);
            name_end + (l[name_end..].len() - l[name_end..].trim_start().len())
        };
        let starts: Vec<usize> = commands.lines().map(column).collect();
        // One column: every description starts at the same place, after at least two spaces.
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{commands}");
        for line in commands.lines() {
            assert!(line.trim_start().contains("  "), "{line:?} runs into its description");
        }
    }
}
