use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-defrag", kubectl_etcd_defrag::command) {
        return code;
    }
    let cli = kubectl_etcd_defrag::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_defrag::run(cli))
}
