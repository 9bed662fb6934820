use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-doctor", kubectl_etcd_doctor::command) {
        return code;
    }
    let cli = kubectl_etcd_doctor::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_doctor::run(cli))
}
