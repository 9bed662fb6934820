//! The command side of `snapshot schedule` and `defrag schedule`: the options completed from
//! the node (its manifest, the PKI folders it names, the largest database) and the cluster
//! (its control-plane nodes, with `--every-node`), then the manifests printed (YAML documents,
//! or a JSON `List`) or applied through the API.

use std::path::PathBuf;

use crate::cli::args::CommonArgs;
use crate::cli::print::{Output, OutputFormat};
use crate::error::{Error, Result};
use crate::ops::schedule::{self, ScheduleOptions, Scheduled, FALLBACK_DB_SIZE};
use crate::ExitCode;

/// Fills what `opts` learns from the node and the cluster (`manifest`, `pki_dirs`, `namespace`,
/// `nodes` with `every_node`, `db_size`), then prints the objects, or creates/updates them with
/// `apply`. `what` names the command in errors (`snapshot schedule`).
pub async fn run(
    common: &CommonArgs,
    out: Output,
    mut opts: ScheduleOptions,
    apply: bool,
    every_node: bool,
    what: &str,
) -> Result<ExitCode> {
    let settings = common.settings();
    opts.manifest =
        common.manifest.clone().unwrap_or_else(|| PathBuf::from(crate::reach::discovery::settings::DEFAULT_MANIFEST));
    opts.pki_dirs = schedule::pki_dirs(&opts.manifest, common.pki_dir.as_deref());
    opts.namespace = common.namespace.clone();
    let client = if apply || every_node {
        Some(crate::reach::discovery::kubeapi::kube_client(&settings).await?.0)
    } else {
        None
    };
    opts.nodes = match (&client, every_node) {
        (Some(c), true) => schedule::control_plane_nodes(c).await?,
        _ => Vec::new(),
    };
    let size = schedule::largest_db_size(&settings).await;
    if size.is_none() {
        crate::base::messages::message(&format!(
            "note: no member answered: the job's deadline assumes an {} database",
            crate::base::units::format_bytes(FALLBACK_DB_SIZE)
        ));
    }
    opts.db_size = size.unwrap_or(FALLBACK_DB_SIZE);
    let objects = schedule::build(&opts)?;
    if let Some(c) = client.filter(|_| apply) {
        for line in schedule::apply(&c, &objects).await? {
            println!("{line}");
        }
        return Ok(ExitCode::Ok);
    }
    crate::cli::print::write_stdout(&manifests(&objects, out.format, what)?)?;
    Ok(ExitCode::Ok)
}

/// The objects as Kubernetes manifests, for `kubectl apply -f`: YAML documents (the default),
/// or one JSON `List`.
pub fn manifests(objects: &Scheduled, format: OutputFormat, what: &str) -> Result<String> {
    let mut items = vec![serde_json::to_value(&objects.service_account).map_err(|e| Error::Internal(e.to_string()))?];
    for cj in &objects.cron_jobs {
        items.push(serde_json::to_value(cj).map_err(|e| Error::Internal(e.to_string()))?);
    }
    match format {
        OutputFormat::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            crate::cli::print::document(OutputFormat::Json, &list)
        }
        OutputFormat::Table | OutputFormat::Yaml => {
            let mut s = String::new();
            for i in &items {
                s.push_str("---\n");
                s.push_str(&crate::cli::print::document(OutputFormat::Yaml, i)?);
            }
            Ok(s)
        }
        _ => Err(Error::Usage(format!("{what} prints manifests: -o yaml (the default) or -o json"))),
    }
}
