//! `kubectl etcd health`: every member's health, latency, leader, learner progress, raft
//! indexes, DB size, alarms, hash consistency and certificate expiry in one table.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use kubectl_etcd::cli::CommonArgs;
use kubectl_etcd::cluster::Session;
use kubectl_etcd::health::{self, Options, Report};
use kubectl_etcd::render::{self, OutputFormat};
use kubectl_etcd::{ExitCode, Result};

/// Show the health of every etcd member and of the cluster as a whole.
///
/// Exit codes: 0 all checks ok or warn; 1 a check failed; 2 usage; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-health", bin_name = "kubectl etcd health", version = kubectl_etcd::version::LONG)]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Keep running: redraw the table in place (or print one document per round with -o json|yaml) until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Time between rounds with --watch.
    #[arg(long, default_value = "2s", value_parser = kubectl_etcd::util::parse_interval, value_name = "DURATION")]
    pub interval: Duration,

    /// Skip the HashKV consistency check (for very large databases).
    #[arg(long)]
    pub skip_hashkv: bool,

    /// Backend quota to compare DB sizes against [default: the manifest's, else etcd's 2 GiB].
    #[arg(long, value_name = "BYTES")]
    pub quota_backend_bytes: Option<u64>,
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Renders a report in the chosen format.
pub fn render(report: &Report, format: OutputFormat, no_headers: bool) -> Result<String> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => render::document(format, report),
        OutputFormat::Table | OutputFormat::Wide => {
            let mut s = health::members_table(report, format == OutputFormat::Wide).format(no_headers);
            s.push('\n');
            s.push_str(&health::checks_table(report).format(no_headers));
            if report.insecure {
                s.push_str("\nWARNING: server certificates were NOT verified (--insecure-skip-tls-verify)\n");
            }
            Ok(s)
        }
    }
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = cli.common.settings();
    let session = Session::open(&settings).await?;
    let opts = Options { skip_hashkv: cli.skip_hashkv, quota_backend_bytes: cli.quota_backend_bytes };
    let format = cli.common.format();
    if !cli.watch {
        let report = health::run(&session, &opts).await?;
        render::print(&render(&report, format, cli.common.no_headers)?)?;
        return Ok(report.exit_code());
    }
    let tty = std::io::stdout().is_terminal();
    let mut last;
    loop {
        let round = async {
            let report = health::run(&session, &opts).await?;
            let text = match format {
                OutputFormat::Json => render::json_line(&report)?,
                OutputFormat::Yaml => format!("---\n{}", render::document(format, &report)?),
                _ => {
                    let body = render(&report, format, cli.common.no_headers)?;
                    if tty {
                        render::redraw_frame(&body)
                    } else {
                        format!("{body}\n")
                    }
                }
            };
            render::print(&text)?;
            Ok::<_, kubectl_etcd::Error>(report.exit_code())
        };
        last = match round.await {
            Ok(c) => c,
            Err(e) if e.is_broken_pipe() => return Err(e),
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(last),
            _ = tokio::time::sleep(cli.interval) => {}
        }
    }
}
