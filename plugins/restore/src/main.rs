use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-restore", kubectl_etcd_restore::command) {
        return code;
    }
    let cli = kubectl_etcd_restore::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_restore::run(cli))
}
