//! The command line: global arguments, the printers (table, wide, json, yaml) and their one
//! `emit`, completion, `--version`.

pub mod args;
pub mod complete;
pub mod print;
pub mod schedule;
pub mod version;

/// A plugin's whole `main`, as uucore's `main!` is for coreutils: completion requests answered
/// first (`__complete`), then the arguments parsed by the plugin crate's clap `Cli` and its
/// `run` driven by [`args::run_main`] (one exit-code mapping, one error line). The plugin crate
/// provides `command()`, `Cli` and `run(Cli)`.
#[macro_export]
macro_rules! plugin_main {
    ($bin:literal, $krate:ident) => {
        fn main() -> std::process::ExitCode {
            use clap::FromArgMatches as _;
            if let Some(code) = $crate::cli::complete::intercept($bin, $krate::command) {
                return code;
            }
            let matches = $crate::cli::args::help_view($krate::command()).get_matches();
            let cli = $krate::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            $crate::cli::args::run_main($krate::run(cli))
        }
    };
}
