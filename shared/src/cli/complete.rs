//! Shell completion from the plugins' own clap commands, in the protocol kubectl (1.26+) and
//! Cobra use: the program is called as `PROG __complete WORD… CURRENT` (CURRENT may be empty),
//! prints one candidate per line (`value<TAB>description`), and ends with `:N`, a Cobra
//! `ShellCompDirective`: 0 let the shell complete file names, 2 no space after the word,
//! 4 no file names, 16 directory names only.
//!
//! Every way in goes through this one engine: kubectl's plugin completion runs the
//! `kubectl_complete-etcd*` helpers ([`kubectl_helper`]), which call `kubectl-etcd __complete`;
//! the bash, zsh and fish scripts of `kubectl etcd completion SHELL` ([`script`]) call the same.

use clap::builder::ValueHint;
use clap::{Arg, ArgAction, Command};

/// Cobra's `ShellCompDirectiveNoSpace`: the word is not finished (`jsonpath=`).
pub const NO_SPACE: u32 = 2;
/// Cobra's `ShellCompDirectiveNoFileComp`.
pub const NO_FILES: u32 = 4;
/// Cobra's `ShellCompDirectiveFilterDirs`.
pub const DIRS: u32 = 16;
/// Cobra's `ShellCompDirectiveKeepOrder`.
pub const KEEP_ORDER: u32 = 32;

/// What to offer for the word being completed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// `(value, description)`, already filtered by the typed prefix.
    pub candidates: Vec<(String, String)>,
    /// A Cobra directive (0: the shell completes file names when no candidate is given).
    pub directive: u32,
}

impl Completion {
    fn none(directive: u32) -> Self {
        Completion { candidates: Vec::new(), directive }
    }

    /// The `__complete` answer: candidates, then `:directive`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (v, d) in &self.candidates {
            let d = d.lines().next().unwrap_or_default().trim();
            if d.is_empty() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v}\t{d}"));
            }
            s.push('\n');
        }
        s.push_str(&format!(":{}\n", self.directive));
        s
    }
}

/// The first line of an argument's or command's help.
fn about(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().to_string()).unwrap_or_default()
}

fn takes_value(a: &Arg) -> bool {
    matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
}

fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(name) || a.get_all_aliases().into_iter().flatten().any(|x| x == name))
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

/// The values an argument takes: its possible values (unfinished ones, ending in `=`, keep the
/// cursor on the word), else what its value hint asks of the shell.
fn values(arg: &Arg, prefix: &str, typed: &str, ctx: &Context) -> Completion {
    if MEMBER_ARGS.contains(&arg.get_id().as_str()) {
        let mut c = Completion::none(NO_FILES);
        c.candidates = (ctx.lookup)(Dynamic::Members, ctx.root, ctx.before)
            .into_iter()
            .filter(|(v, _)| v.starts_with(typed))
            .collect();
        return c;
    }
    if arg.get_id().as_str() == CONTEXT_ARG {
        return contexts(prefix, typed, ctx);
    }
    let possible: Vec<_> = arg.get_possible_values().into_iter().filter(|p| !p.is_hide_set()).collect();
    if !possible.is_empty() {
        let mut c = Completion::none(NO_FILES | KEEP_ORDER);
        for p in possible {
            let v = p.get_name();
            if v.starts_with(typed) {
                c.candidates.push((format!("{prefix}{v}"), about(p.get_help())));
            }
        }
        // Only unfinished words (`jsonpath=`) left: keep the cursor on them.
        if !c.candidates.is_empty() && c.candidates.iter().all(|(v, _)| v.ends_with('=')) {
            c.directive |= NO_SPACE;
        }
        return c;
    }
    match arg.get_value_hint() {
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => Completion::none(0),
        ValueHint::DirPath => Completion::none(DIRS),
        _ => Completion::none(NO_FILES),
    }
}

/// The arguments that name a member: their values are the cluster's member names and IDs.
const MEMBER_ARGS: &[&str] = &["member", "old"];

/// The argument that names a kubeconfig context: its values are the kubeconfig's contexts.
const CONTEXT_ARG: &str = "context";

/// What value completion asks beyond the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    /// The names and IDs of the members of the cluster the words point at.
    Members,
    /// The contexts of the kubeconfig the words point at (`--kubeconfig`, `KUBECONFIG`,
    /// `~/.kube/config`), in its order.
    Contexts,
}

/// A source of `(value, description)` of a [`Dynamic`] kind for the words typed so far.
pub type Lookup<'a> = &'a dyn Fn(Dynamic, &Command, &[String]) -> Vec<(String, String)>;

/// What value completion may consult beyond the command: the members of the cluster the words
/// point at, the contexts of their kubeconfig.
struct Context<'a> {
    root: &'a Command,
    before: &'a [String],
    lookup: Lookup<'a>,
}

/// `--context` values: the kubeconfig's contexts that start with the typed word or match it as
/// a glob (`prod-*`). Where the command takes several (health's `--context a,b`), the word
/// after the last comma is completed and the contexts already named are left out.
fn contexts(prefix: &str, typed: &str, ctx: &Context) -> Completion {
    let several = ctx.root.get_arguments().any(|a| a.get_id().as_str() == "all_contexts");
    let (head, word) = match typed.rsplit_once(',') {
        Some((h, w)) if several => (format!("{h},"), w),
        _ => (String::new(), typed),
    };
    let named: Vec<&str> = head.split(',').collect();
    let glob = crate::ops::health::fleet::is_selection(word);
    let mut c = Completion::none(NO_FILES | KEEP_ORDER);
    for (name, about) in (ctx.lookup)(Dynamic::Contexts, ctx.root, ctx.before) {
        let hit = name.starts_with(word) || (glob && crate::ops::health::fleet::glob_match(&format!("{word}*"), &name));
        if hit && !named.contains(&name.as_str()) {
            c.candidates.push((format!("{prefix}{head}{name}"), about));
        }
    }
    if several && !c.candidates.is_empty() {
        // `a,` goes on to another context: no space forced after a name.
        c.directive |= NO_SPACE;
    }
    c
}

/// Completes `words` (the arguments after the program name, the last being the word under the
/// cursor, possibly empty) against `root`, asking `lookup` for the members of the cluster and the
/// kubeconfig's contexts.
pub fn complete_with(root: &Command, words: &[String], lookup: Lookup<'_>) -> Completion {
    let mut root = root.clone();
    root.build();
    let (typed, before) = match words.split_last() {
        Some((t, b)) => (t.as_str(), b),
        None => ("", &[][..]),
    };
    let ctx = Context { root: &root, before, lookup };
    let mut cmd = &root;
    let mut positionals = 0usize;
    let mut pending: Option<&Arg> = None;
    let mut only_positionals = false;
    for w in before {
        if pending.take().is_some() {
            continue;
        }
        if !only_positionals && w == "--" {
            only_positionals = true;
        } else if !only_positionals && w.starts_with("--") {
            if let Some(a) = find_long(cmd, &w[2..]) {
                if takes_value(a) && !w.contains('=') {
                    pending = Some(a);
                }
            }
        } else if !only_positionals && w.starts_with('-') && w.len() > 1 {
            // A cluster of short flags; the last one may take the next word.
            let flags: Vec<char> = w[1..].chars().collect();
            for (i, c) in flags.iter().enumerate() {
                if let Some(a) = find_short(cmd, *c) {
                    if takes_value(a) {
                        if i == flags.len() - 1 {
                            pending = Some(a);
                        }
                        break;
                    }
                }
            }
        } else if let Some(sub) = (positionals == 0)
            .then(|| cmd.get_subcommands().find(|s| s.get_name() == w || s.get_all_aliases().any(|x| x == w)))
            .flatten()
        {
            cmd = sub;
        } else {
            positionals += 1;
        }
    }
    if let Some(a) = pending {
        return values(a, "", typed, &ctx);
    }
    if !only_positionals && typed.starts_with("--") {
        if let Some((name, value)) = typed[2..].split_once('=') {
            return match find_long(cmd, name) {
                Some(a) => values(a, &format!("--{name}="), value, &ctx),
                None => Completion::none(NO_FILES),
            };
        }
    }
    if !only_positionals && typed.starts_with('-') {
        let mut c = Completion::none(NO_FILES);
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
            if let Some(l) = a.get_long() {
                let flag = format!("--{l}");
                if flag.starts_with(typed) {
                    c.candidates.push((flag, about(a.get_help())));
                }
            } else if let Some(s) = a.get_short() {
                let flag = format!("-{s}");
                if flag.starts_with(typed) {
                    c.candidates.push((flag, about(a.get_help())));
                }
            }
        }
        return c;
    }
    // A subcommand, or the next positional argument.
    let mut c = Completion::none(NO_FILES);
    if positionals == 0 {
        for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if s.get_name().starts_with(typed) {
                c.candidates.push((s.get_name().to_string(), about(s.get_about())));
            }
        }
    }
    let next = cmd
        .get_positionals()
        .nth(positionals)
        .or_else(|| cmd.get_positionals().last().filter(|a| matches!(a.get_action(), ArgAction::Append)));
    if let Some(a) = next {
        let v = values(a, "", typed, &ctx);
        c.candidates.extend(v.candidates);
        c.directive = if c.candidates.is_empty() { v.directive } else { v.directive | NO_FILES };
    }
    c
}

/// Answers a `__complete` call when `args` (after the program name) is one: `Some(text)`.
pub fn answer(cmd: &Command, args: &[String]) -> Option<String> {
    (args.first().map(String::as_str) == Some("__complete")).then(|| complete_with(cmd, &args[1..], &lookup).render())
}

/// The real [`Lookup`]: the cluster's members, the kubeconfig's contexts.
fn lookup(what: Dynamic, root: &Command, before: &[String]) -> Vec<(String, String)> {
    match what {
        Dynamic::Members => cluster_members(root, before),
        Dynamic::Contexts => kubeconfig_contexts(root, before),
    }
}

/// The words typed so far as the command's common flags (`--kubeconfig`, `--manifest`, …).
fn common_args(root: &Command, before: &[String]) -> Option<crate::cli::args::CommonArgs> {
    use clap::FromArgMatches;
    let argv = std::iter::once(root.get_name().to_string()).chain(before.iter().cloned());
    let matches = root.clone().ignore_errors(true).try_get_matches_from(argv).ok()?;
    crate::cli::args::CommonArgs::from_arg_matches(&matches).ok()
}

/// The contexts of the kubeconfig the words typed so far point at, as kubectl reads it
/// (`--kubeconfig`, `KUBECONFIG`'s list of files, `~/.kube/config`). Nothing without one.
fn kubeconfig_contexts(root: &Command, before: &[String]) -> Vec<(String, String)> {
    let Some(common) = common_args(root, before) else { return Vec::new() };
    let names = crate::reach::discovery::kubeapi::contexts(&common.settings()).unwrap_or_default();
    names.into_iter().map(|n| (n, String::new())).collect()
}

/// How long completion may spend asking the cluster for its members.
const MEMBERS_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The members of the cluster that `before` (the words typed so far, with their `--manifest`,
/// `--endpoints`, `--kubeconfig`, … flags) points at, found as the command itself would find
/// them: each name (described as voter or learner with its ID) and each ID. Nothing when the
/// cluster is out of reach within [`MEMBERS_BUDGET`].
fn cluster_members(root: &Command, before: &[String]) -> Vec<(String, String)> {
    let Some(common) = common_args(root, before) else { return Vec::new() };
    let mut settings = common.settings();
    settings.dial_timeout = settings.dial_timeout.min(std::time::Duration::from_secs(2));
    settings.command_timeout = settings.command_timeout.min(MEMBERS_BUDGET);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let list = rt.block_on(async {
        tokio::time::timeout(MEMBERS_BUDGET, async {
            let session = crate::reach::cluster::Session::open(&settings).await.ok()?;
            session.member_list().await.ok()
        })
        .await
        .ok()
        .flatten()
    });
    let mut out = Vec::new();
    for m in list.map(|l| l.members).unwrap_or_default() {
        let id = crate::base::units::member_id(m.id);
        let role = if m.is_learner { "learner" } else { "voter" };
        if !m.name.is_empty() {
            out.push((m.name.clone(), format!("{role} {id}")));
        }
        out.push((id, format!("{role} {}", if m.name.is_empty() { "(not started)" } else { m.name.as_str() })));
    }
    out
}

/// The shells `completion` writes a script for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The completion script for `prog` in `shell`: it asks `prog __complete …` for every word.
pub fn script(shell: &str, prog: &str) -> Option<String> {
    let func = format!("_{}", prog.replace('-', "_"));
    let text = match shell {
        "bash" => format!(
            r#"# bash completion for {prog}: source it, or put it in /etc/bash_completion.d/{prog}
{func}() {{
    local line="${{COMP_LINE:0:COMP_POINT}}" words out directive cur c prefix
    read -ra words <<< "$line"
    [[ "$line" =~ [[:space:]]$ || ${{#words[@]}} -eq 1 ]] && words+=("")
    cur="${{words[${{#words[@]}}-1]}}"
    out=$("${{words[0]}}" __complete "${{words[@]:1}}" 2>/dev/null) || return 0
    directive="${{out##*:}}"
    out="${{out%:*}}"
    COMPREPLY=()
    (( directive & 1 )) && return 0
    (( directive & 2 )) && compopt -o nospace 2>/dev/null
    # bash splits words at '=' and ':': answer for its word, the end of ours.
    prefix=$(( ${{#cur}} - ${{#COMP_WORDS[COMP_CWORD]}} ))
    (( prefix < 0 )) && prefix=0
    while IFS= read -r c; do
        [[ -n "$c" ]] && COMPREPLY+=("${{c%%$'\t'*}}")
    done <<< "$out"
    if (( ${{#COMPREPLY[@]}} )); then
        for c in "${{!COMPREPLY[@]}}"; do COMPREPLY[c]="${{COMPREPLY[c]:prefix}}"; done
    elif (( directive & 16 )); then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "${{COMP_WORDS[COMP_CWORD]}}")
    elif (( ! (directive & 4) )); then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "${{COMP_WORDS[COMP_CWORD]}}")
    fi
    return 0
}}
complete -F {func} {prog}
"#
        ),
        "zsh" => format!(
            r#"#compdef {prog}
# zsh completion for {prog}: put it on $fpath as _{prog}, or source it after compinit
{func}() {{
    local -a lines cands
    local out directive
    out=$("${{words[1]}}" __complete "${{(@)words[2,CURRENT]}}" 2>/dev/null) || return 1
    lines=("${{(@f)out}}")
    directive="${{lines[-1]#:}}"
    cands=("${{(@)lines[1,-2]}}")
    (( directive & 1 )) && return 1
    if (( ${{#cands}} )); then
        local -a descr
        local c
        for c in $cands; do descr+=("${{${{c%%$'\t'*}}//:/\\:}}:${{c#*$'\t'}}"); done
        if (( directive & 2 )); then _describe -V '{prog}' descr -S ''; else _describe -V '{prog}' descr; fi
    elif (( directive & 16 )); then
        _files -/
    elif (( ! (directive & 4) )); then
        _files
    fi
}}
compdef {func} {prog}
"#
        ),
        "fish" => format!(
            r#"# fish completion for {prog}: put it in ~/.config/fish/completions/{prog}.fish
function __{func}
    set -l words (commandline -opc) (commandline -ct)
    set -l out ($words[1] __complete $words[2..-1] 2>/dev/null)
    set -l directive (string replace ':' '' -- $out[-1])
    set -e out[-1]
    if test (math "$directive % 2") -eq 1
        return
    end
    if test (count $out) -gt 0
        printf '%s\n' $out
    else if test (math "floor($directive / 16) % 2") -eq 1
        __fish_complete_directories (commandline -ct)
    else if test (math "floor($directive / 4) % 2") -eq 0
        __fish_complete_path (commandline -ct)
    end
end
complete -c {prog} -f -a '(__{func})'
"#
        ),
        _ => return None,
    };
    Some(text)
}

/// The environment variable the kubectl helpers set for `kubectl-etcd __complete`: the words
/// are completed for kubectl's plugin completion, which lists some of them itself.
pub const FOR_KUBECTL_ENV: &str = "KUBECTL_ETCD_COMPLETE_FOR";

/// The helper kubectl (1.26+) runs to complete `kubectl etcd …`: an executable named
/// `kubectl_complete-<plugin>` on PATH, given the words after the plugin name. `plugin` is
/// `etcd` (the krew entry point) or `etcd-health`, … (kubectl's name for `kubectl etcd health`
/// when `kubectl-etcd-health` is on PATH itself); all of them ask `kubectl-etcd __complete`,
/// saying it is for kubectl ([`FOR_KUBECTL_ENV`]).
pub fn kubectl_helper(plugin: &str) -> String {
    let words = plugin.strip_prefix("etcd").unwrap_or(plugin).replace('-', " ");
    format!(
        "#!/bin/sh\n# kubectl completion for `kubectl {plugin_words}`; install as `kubectl_complete-{plugin}` on PATH\n{FOR_KUBECTL_ENV}=kubectl exec kubectl-etcd __complete{words} \"$@\"\n",
        plugin_words = plugin.replace('-', " "),
    )
}

/// Whether kubectl itself offers `word` after `kubectl etcd`: its plugin completion registers
/// every `kubectl-etcd-<word>` found in a PATH directory (any entry but a directory, `_` in
/// the file name read as `-`) as a subcommand of `etcd`, and cobra lists subcommands besides
/// what the `kubectl_complete-etcd` helper answers (`registerPluginCommands` in
/// `k8s.io/kubectl/pkg/cmd/plugin/plugin_completion.go`, kubectl 1.26+). Such a word must not
/// be answered again, or it is offered twice.
pub fn kubectl_lists(word: &str, path: &std::ffi::OsStr) -> bool {
    let file = format!("kubectl-etcd-{}", word.replace('-', "_"));
    std::env::split_paths(path).filter(|d| !d.as_os_str().is_empty()).any(|d| {
        let p = d.join(&file);
        p.symlink_metadata().is_ok() && !p.is_dir()
    })
}

/// The kubectl helper names: `kubectl_complete-etcd` and one per plugin binary.
pub fn helper_plugins() -> Vec<String> {
    std::iter::once("etcd".to_string()).chain(crate::PLUGINS.iter().map(|(n, _)| format!("etcd-{n}"))).collect()
}

/// Writes every `kubectl_complete-etcd*` helper into `dir` (mode 0755), each through a hidden
/// `.part` renamed into place, replacing an older one.
pub fn install_helpers(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut written = Vec::new();
    for p in helper_plugins() {
        let path = dir.join(format!("kubectl_complete-{p}"));
        let part = dir.join(format!(".kubectl_complete-{p}.part"));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o755).open(&part)?;
        f.write_all(kubectl_helper(&p).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&part, &path)?;
        written.push(path);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(written)
}

/// What a plugin binary does before parsing its arguments: answers `__complete …`, and prints
/// `completion bash|zsh|fish` scripts for itself. `None`: run the command.
pub fn intercept(bin: &str, command: fn() -> Command) -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(text) = answer(&command(), &args) {
        print!("{text}");
        return Some(std::process::ExitCode::SUCCESS);
    }
    if args.first().map(String::as_str) != Some("completion") {
        return None;
    }
    match args.get(1).and_then(|s| script(s, bin)) {
        Some(s) if args.len() == 2 => {
            print!("{s}");
            Some(std::process::ExitCode::SUCCESS)
        }
        _ => {
            crate::base::messages::error(&format!(
                "usage: {bin} completion {} (run 'kubectl etcd completion --help' for kubectl's plugin completion)",
                SHELLS.join("|")
            ));
            Some(std::process::ExitCode::from(crate::ExitCode::Usage as u8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    /// `--context` from a kubeconfig of three contexts (the lookup stands in for the file, which
    /// the e2e test reads for real): by prefix, by glob, and after a comma where the command
    /// takes several (`--all-contexts` beside it, as health has).
    #[test]
    fn context_values_come_from_the_kubeconfig() {
        let lookup = |what: Dynamic, _: &Command, _: &[String]| match what {
            Dynamic::Contexts => ["prod-eu", "staging", "prod-us"].map(|n| (n.to_string(), String::new())).to_vec(),
            Dynamic::Members => Vec::new(),
        };
        let one = Command::new("x").arg(Arg::new("context").long("context").action(ArgAction::Set));
        let several = one.clone().arg(Arg::new("all_contexts").long("all-contexts").action(ArgAction::SetTrue));
        let names = |cmd: &Command, w: &[&str]| {
            let c = complete_with(cmd, &words(w), &lookup);
            (c.candidates.into_iter().map(|(v, _)| v).collect::<Vec<_>>(), c.directive)
        };
        let all = vec!["prod-eu".to_string(), "staging".into(), "prod-us".into()];
        assert_eq!(names(&one, &["--context", ""]), (all, NO_FILES | KEEP_ORDER));
        assert_eq!(names(&one, &["--context", "prod-*"]).0, ["prod-eu", "prod-us"]);
        assert_eq!(names(&one, &["--context=s"]).0, ["--context=staging"]);
        assert_eq!(names(&one, &["--context", "prod-eu,"]).0, Vec::<String>::new(), "one context only");
        assert_eq!(
            names(&several, &["--context", "prod-eu,"]),
            (vec!["prod-eu,staging".to_string(), "prod-eu,prod-us".into()], NO_FILES | KEEP_ORDER | NO_SPACE)
        );
    }
}
