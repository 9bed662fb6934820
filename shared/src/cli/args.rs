//! The argument groups every plugin shares. This is the only module of the core crate that
//! knows about clap; everything else takes the plain [`crate::reach::discovery::settings::Settings`] built here.
//!
//! Every flag is `global`, so it is accepted before or after a subcommand, as kubectl's are.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::base::units::parse_duration;
use crate::cli::print::OutputFormat;
use crate::reach::discovery::settings::Settings;

/// Flags shared by every `kubectl-etcd-*` plugin.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Path to the kubeconfig file to use for Kubernetes API discovery.
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "PATH", help_heading = "Kubernetes")]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use (health: also a list, a,b, or a glob, 'prod-*').
    #[arg(long, global = true, value_name = "NAME", help_heading = "Kubernetes")]
    pub context: Option<String>,

    /// Namespace of the etcd pods.
    #[arg(
        short = 'n',
        long,
        global = true,
        default_value = "kube-system",
        value_name = "NAMESPACE",
        help_heading = "Kubernetes"
    )]
    pub namespace: String,

    /// An etcd static pod manifest [default: /etc/kubernetes/manifests/etcd.yaml when it exists and no endpoints were given].
    #[arg(long, global = true, value_name = "PATH", help_heading = "Node")]
    pub manifest: Option<PathBuf>,

    /// gRPC endpoints, comma-separated (as etcdctl's).
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URLS",
        help_heading = "etcd"
    )]
    pub endpoints: Vec<String>,

    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT", value_name = "PATH", help_heading = "etcd")]
    pub cacert: Option<PathBuf>,

    /// Identify secure client using this TLS certificate file.
    #[arg(long, global = true, env = "ETCDCTL_CERT", value_name = "PATH", help_heading = "etcd")]
    pub cert: Option<PathBuf>,

    /// Identify secure client using this TLS key file.
    #[arg(long, global = true, env = "ETCDCTL_KEY", value_name = "PATH", help_heading = "etcd")]
    pub key: Option<PathBuf>,

    /// Dial timeout for client connections (TCP connect and TLS handshake).
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration, value_name = "DURATION", help_heading = "etcd")]
    pub dial_timeout: Duration,

    /// Timeout for short running commands (excluding dial timeout).
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION", help_heading = "etcd")]
    pub command_timeout: Duration,

    /// How to reach the members: auto picks port-forward when they were found through the
    /// Kubernetes API and no manifest or --endpoints is in play, direct otherwise.
    #[arg(long, global = true, value_enum, default_value_t = crate::reach::tunnel::Transport::Auto, value_name = "HOW", help_heading = "etcd")]
    pub transport: crate::reach::tunnel::Transport,

    /// A copy of a node's /etc/kubernetes/pki/etcd: its ca.crt and healthcheck-client pair
    /// stand in for --cacert/--cert/--key not given.
    #[arg(long, global = true, value_name = "DIR", value_hint = clap::ValueHint::DirPath, help_heading = "etcd")]
    pub pki_dir: Option<PathBuf>,

    /// Skip verification of the servers' certificates. Insecure: the output says so.
    #[arg(long, global = true, help_heading = "etcd")]
    pub insecure_skip_tls_verify: bool,

    /// Output format: table, wide, json, yaml, or jsonpath=TEMPLATE (kubectl's simple paths over
    /// the JSON document, e.g. jsonpath='{.members[?(@.is_leader==true)].name}').
    #[arg(short = 'o', long, global = true, value_parser = OutputParser, default_value = "table", value_name = "FORMAT", help_heading = "Output")]
    pub output: OutputFormat,

    /// Don't print headers in table output.
    #[arg(long, global = true, help_heading = "Output")]
    pub no_headers: bool,

    /// Colour in tables, checks and progress: auto (on a terminal, unless NO_COLOR is set),
    /// always, never.
    #[arg(long, global = true, value_enum, default_value_t = crate::base::color::ColorChoice::Auto, value_name = "WHEN", help_heading = "Output")]
    pub color: crate::base::color::ColorChoice,

    /// Print discovery decisions on stderr (which source, which files, which endpoints).
    #[arg(short = 'v', long, global = true, help_heading = "Output")]
    pub verbose: bool,
}

impl CommonArgs {
    /// The output format (`-o`).
    pub fn format(&self) -> OutputFormat {
        self.output
    }

    /// Where results go: `-o` and `--no-headers`.
    pub fn out(&self) -> crate::cli::print::Output {
        crate::base::color::set_stderr(self.color);
        crate::cli::print::Output::new(self.output, self.no_headers).colored(self.color.stdout())
    }

    /// The discovery settings these flags describe.
    pub fn settings(&self) -> Settings {
        crate::base::color::set_stderr(self.color);
        // `{context}` in a certificate path stands for the context's name: one copy of
        // pki/etcd per cluster (health --all-contexts substitutes it for each context).
        let per_context = |p: &Option<PathBuf>| match (p, &self.context) {
            (Some(p), Some(c)) if !crate::ops::health::fleet::is_selection(c) => {
                Some(PathBuf::from(p.to_string_lossy().replace("{context}", c)))
            }
            _ => p.clone(),
        };
        let (cacert, cert, key, pki_dir) =
            (per_context(&self.cacert), per_context(&self.cert), per_context(&self.key), per_context(&self.pki_dir));
        let endpoints_from_env =
            !self.endpoints.is_empty() && std::env::var_os("ETCDCTL_ENDPOINTS").is_some() && !flag_given("--endpoints");
        Settings {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            api_explicit: flag_given("--kubeconfig") || flag_given("--context"),
            namespace: self.namespace.clone(),
            manifest: self.manifest.clone(),
            endpoints: self.endpoints.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
            endpoints_source: if endpoints_from_env { "env ETCDCTL_ENDPOINTS" } else { "flag --endpoints" },
            cacert: cacert.clone().or_else(|| pki_dir.as_ref().map(|d| d.join("ca.crt"))),
            cert: cert.clone().or_else(|| pki_dir.as_ref().map(|d| d.join("healthcheck-client.crt"))),
            key: key.or_else(|| pki_dir.as_ref().map(|d| d.join("healthcheck-client.key"))),
            tls_sources: [
                ("ETCDCTL_CACERT", "--cacert", self.cacert.is_some()),
                ("ETCDCTL_CERT", "--cert", self.cert.is_some()),
                ("ETCDCTL_KEY", "--key", self.key.is_some()),
            ]
            .map(|(var, flag, given)| {
                if !given {
                    "flag --pki-dir".to_string()
                } else if std::env::var_os(var).is_some() && !flag_given(flag) {
                    format!("env {var}")
                } else {
                    format!("flag {flag}")
                }
            }),
            dial_timeout: self.dial_timeout,
            command_timeout: self.command_timeout,
            command_timeout_explicit: flag_given("--command-timeout")
                || std::env::var_os("ETCDCTL_COMMAND_TIMEOUT").is_some(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            verbose: self.verbose,
            default_manifest: std::env::var_os("KUBECTL_ETCD_DEFAULT_MANIFEST")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(crate::reach::discovery::settings::DEFAULT_MANIFEST)),
            transport: self.transport,
            pki_dir,
            metrics_without_credentials: false,
        }
    }
}

/// The line every plugin's help ends with, in place of the global flags.
pub const OPTIONS_LINE: &str =
    "Use \"kubectl etcd options\" for a list of global command-line options (applies to all commands).";

/// A plugin's command as its `--help` shows it, as kubectl's do: its own flags and examples,
/// the global ones ([`CommonArgs`]) hidden behind one line naming `kubectl etcd options`. They
/// are parsed all the same; completions and man pages use the command as defined, every flag
/// shown.
pub fn help_view(cmd: clap::Command) -> clap::Command {
    fn with_line(cmd: clap::Command) -> clap::Command {
        let after = match cmd.get_after_help() {
            Some(a) => format!("{a}\n\n{OPTIONS_LINE}"),
            None => OPTIONS_LINE.to_string(),
        };
        let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
        let mut cmd = cmd.after_help(after);
        for n in names {
            cmd = cmd.mut_subcommand(n, with_line);
        }
        cmd
    }
    with_line(cmd.mut_args(|a| if a.is_global_set() { a.hide(true) } else { a }))
}

/// `kubectl etcd options`: the global flags every plugin takes, as kubectl's `kubectl options`
/// lists its own.
pub fn options_help() -> String {
    use clap::Args as _;
    let mut cmd = CommonArgs::augment_args(clap::Command::new("kubectl etcd options"))
        .disable_help_flag(true)
        .help_template("The following options can be passed to any command:\n\n{all-args}\n")
        .term_width(100);
    cmd.render_help().to_string()
}

fn flag_given(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

/// Runs a plugin's async body on a small runtime and maps the outcome to the process exit code:
/// errors are printed on stderr as one `error: …` line; a closed stdout pipe exits quietly. A
/// failure after a caught signal (the work stopped, cleaned up or rolled back) exits as a
/// shell reports a process killed by it, 128 + its number: SIGINT 130, SIGTERM 143.
pub fn run_main<F>(body: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = crate::Result<crate::ExitCode>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            crate::base::messages::error(&format!("failed to start the async runtime: {e}"));
            return std::process::ExitCode::from(crate::ExitCode::Negative as u8);
        }
    };
    let result = rt.block_on(body);
    rt.shutdown_background();
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) if e.is_broken_pipe() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, crate::Error::Interrupted(_)) {
                crate::base::messages::message(&format!("error: {}", e.report()));
            }
            let code = crate::base::signals::signal_exit_status().unwrap_or(e.exit_code() as u8);
            std::process::ExitCode::from(code)
        }
    }
}

/// Asks "Proceed? [y/N]" on a terminal before a node is changed; `yes` (`--yes`) skips it.
/// Without a terminal and without `--yes` it refuses: a script must say so explicitly.
pub fn confirm(yes: bool) -> crate::Result<()> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::Error::Usage(
            "refusing to change this node without confirmation: pass --yes (or --dry-run to see the plan)".into(),
        ));
    }
    crate::base::messages::prompt("Proceed? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|source| crate::Error::Io { action: "read the answer".into(), source })?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(crate::Error::Refused("not confirmed: nothing was changed".into()))
    }
}

/// `-o`: the four formats by name (listed for help and completion) and `jsonpath=TEMPLATE`.
#[derive(Debug, Clone, Copy)]
pub struct OutputParser;

impl clap::builder::TypedValueParser for OutputParser {
    type Value = OutputFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<OutputFormat, clap::Error> {
        let v = value.to_str().ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        OutputFormat::parse(v).map_err(|e| {
            let flag = arg.map(|a| a.to_string()).unwrap_or_else(|| "-o".into());
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("invalid value for {flag}: {e}\n"))
                .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            ["table", "wide", "json", "yaml", "jsonpath="].into_iter().map(clap::builder::PossibleValue::new),
        ))
    }
}
