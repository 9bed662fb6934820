use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kubectl_etcd_defrag::Cli::parse();
    kubectl_etcd::cli::run_main(kubectl_etcd_defrag::run(cli))
}
