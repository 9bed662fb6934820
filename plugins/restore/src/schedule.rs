//! `snapshot schedule`: the flags as [`ScheduleOptions`]; the core's
//! [`kubectl_etcd::cli::schedule::run`] completes them from the node and the cluster and prints
//! or applies the objects (as `defrag schedule` does).

use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::cli::print::Output;
use kubectl_etcd::ops::schedule::{ScheduleOptions, Task};
use kubectl_etcd::{Error, ExitCode, Result};

use std::path::PathBuf;

use crate::ScheduleArgs;
use kubectl_etcd::store::snapdir::SnapDir;

/// Runs `snapshot schedule`.
pub async fn run(common: &CommonArgs, out: Output, a: ScheduleArgs) -> Result<ExitCode> {
    let mut local = None;
    let mut buckets = Vec::new();
    for d in &a.dir {
        match d {
            SnapDir::Local(p) if local.is_none() => local = Some(p.clone()),
            SnapDir::Local(p) => {
                return Err(Error::Usage(format!(
                    "--dir {}: one local directory per node (and any number of buckets)",
                    p.display()
                )))
            }
            SnapDir::Bucket(u) => buckets.push(u.to_string()),
        }
    }
    if let Some(name) = &a.credentials_secret {
        if name.is_empty()
            || name.len() > 253
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(Error::Usage(format!(
                "--credentials-secret {name:?} is not a Secret name (lowercase letters, digits, '-', '.')"
            )));
        }
    }
    let opts = ScheduleOptions {
        task: Task::Snapshot,
        buckets,
        credentials_secret: a.credentials_secret,
        schedule: a.schedule,
        keep: a.keep,
        compression: a.compress,
        dir: local.unwrap_or_else(|| PathBuf::from(kubectl_etcd::ops::schedule::DEFAULT_DIR)),
        image: a.image,
        namespace: String::new(),
        name: a.name,
        pki_dirs: Vec::new(),
        manifest: Default::default(),
        nodes: Vec::new(),
        db_size: 0,
    };
    kubectl_etcd::cli::schedule::run(common, out, opts, a.apply, a.every_node, "snapshot schedule").await
}
