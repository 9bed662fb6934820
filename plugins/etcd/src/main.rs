//! `kubectl-etcd`: the krew entry point. `kubectl etcd learner add …` runs
//! `kubectl-etcd-learner add …`, found next to this executable first, then on PATH, with the
//! same arguments, stdio and exit code. kubectl itself resolves `kubectl etcd health` to
//! `kubectl-etcd-health` when that binary is on PATH: both routes run the same command.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use kubectl_etcd::ExitCode as Code;
use kubectl_etcd::PLUGINS as SUBCOMMANDS;

/// The suite's documented exit codes: 2 usage (an unknown command), 3 discovery (a plugin
/// binary that cannot be found or run).
fn exit(code: Code) -> ExitCode {
    ExitCode::from(code as u8)
}

/// `kubectl etcd version`: the release, commit and target, and the etcd versions tested.
fn version() -> String {
    use kubectl_etcd::version::{COMMIT, TARGET, TESTED_ETCD, VERSION};
    format!("kubectl-etcd {VERSION}\ncommit: {COMMIT}\ntarget: {TARGET}\ntested with etcd: {TESTED_ETCD}\n")
}

fn usage() -> String {
    let mut s = String::from("kubectl etcd: check, grow, shrink, back up and restore the etcd cluster behind the control plane.\n\nUsage: kubectl etcd <COMMAND> [ARGS]...\n\nCommands:\n");
    for (name, about) in SUBCOMMANDS {
        s.push_str(&format!("  {name:<9}{about}\n"));
    }
    s.push_str(&format!(
        "  {:<9}{}\n",
        "version", "Print the version, git commit, target and the etcd versions tested"
    ));
    s.push_str("\nRun 'kubectl etcd <COMMAND> --help' for a command's flags.\n");
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

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let pos = args.iter().position(|a| SUBCOMMANDS.iter().any(|(n, _)| a.to_str() == Some(n)));
    let Some(pos) = pos else {
        match args.first().and_then(|a| a.to_str()) {
            None | Some("-h") | Some("--help") | Some("help") => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            Some("--version") | Some("-V") => {
                println!("kubectl-etcd {}", kubectl_etcd::version::LONG);
                return ExitCode::SUCCESS;
            }
            Some("version") => {
                print!("{}", version());
                return ExitCode::SUCCESS;
            }
            Some(other) => {
                eprintln!(
                    "error: unknown command {other:?}: expected one of {}, version (run 'kubectl etcd --help')",
                    SUBCOMMANDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                );
                return exit(Code::Usage);
            }
        }
    };
    let sub = args[pos].to_string_lossy().to_string();
    let plugin = format!("kubectl-etcd-{sub}");
    let Some(path) = find(&plugin) else {
        eprintln!("error: {plugin} was not found next to kubectl-etcd or on PATH; install it with 'kubectl krew install etcd' or put it on PATH");
        return exit(Code::Discovery);
    };
    let mut rest = args.clone();
    rest.remove(pos);
    // exec replaces this process: stdio, signals and the exit code are the plugin's own.
    let err = Command::new(&path).arg0(&plugin).args(rest).exec();
    eprintln!("error: failed to run {}: {err}", path.display());
    exit(Code::Discovery)
}
