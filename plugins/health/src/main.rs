use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-health", kubectl_etcd_health::command) {
        return code;
    }
    let cli = kubectl_etcd_health::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_health::run(cli))
}
