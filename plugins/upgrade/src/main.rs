use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-upgrade", kubectl_etcd_upgrade::command) {
        return code;
    }
    let cli = kubectl_etcd_upgrade::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_upgrade::run(cli))
}
