//! `snapshot schedule`: the flags as [`ScheduleOptions`]; the core's
//! [`kubectl_etcd::cli::schedule::run`] completes them from the node and the cluster and prints
//! or applies the objects (as `defrag schedule` does).

use kubectl_etcd::cli::args::CommonArgs;
use kubectl_etcd::cli::print::Output;
use kubectl_etcd::ops::schedule::{ScheduleOptions, Task};
use kubectl_etcd::{ExitCode, Result};

use crate::ScheduleArgs;

/// Runs `snapshot schedule`.
pub async fn run(common: &CommonArgs, out: Output, a: ScheduleArgs) -> Result<ExitCode> {
    let opts = ScheduleOptions {
        task: Task::Snapshot,
        schedule: a.schedule,
        keep: a.keep,
        compression: a.compress,
        dir: a.dir,
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
