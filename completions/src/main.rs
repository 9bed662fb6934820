//! `etcd-plugin-docs [DIR]`: writes the man pages, completion scripts and kubectl completion
//! helpers of every kubectl-etcd binary into DIR (default `target/docs`), for packagers.

use clap::Parser;

/// Write kubectl-etcd's man pages (man/), shell completion scripts (completions/) and kubectl's
/// plugin completion helpers (kubectl/) into DIR.
#[derive(Debug, Parser)]
#[command(name = "etcd-plugin-docs", version = kubectl_etcd::cli::version::LONG, after_help = "Examples:
  etcd-plugin-docs target/docs
  sudo install -m 0644 target/docs/man/*.1 /usr/local/share/man/man1/")]
struct Cli {
    /// Where to write.
    #[arg(default_value = "target/docs", value_hint = clap::ValueHint::DirPath)]
    dir: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pages = kubectl_etcd_completions::generate(&cli.dir)?;
    println!("wrote {} man pages, completion scripts and kubectl helpers to {}", pages.len(), cli.dir.display());
    Ok(())
}
