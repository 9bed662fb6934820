use clap::Parser;

fn main() -> std::process::ExitCode {
    if let Some(code) = kubectl_etcd::cli::complete::intercept("kubectl-etcd-learner", kubectl_etcd_learner::command) {
        return code;
    }
    let cli = kubectl_etcd_learner::Cli::parse();
    kubectl_etcd::cli::args::run_main(kubectl_etcd_learner::run(cli))
}
