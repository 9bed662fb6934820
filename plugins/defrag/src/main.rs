use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::complete::intercept("kubectl-etcd-defrag", kubectl_etcd_defrag::command) {
        return code;
    }
    let cli = kubectl_etcd_defrag::Cli::parse();
    kubectl_etcd::cli::run_main(kubectl_etcd_defrag::run(cli))
}
