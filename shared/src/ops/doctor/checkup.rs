//! `kubectl etcd doctor` with no subcommand, on a control-plane node: this node's member as its
//! log says it ([`super::logs`], the pod logs of the manifest's `--name`, or its pod's log
//! through the Kubernetes API when the node keeps none) and as its data dir
//! says it ([`super::examine`], which asks the live cluster when it answers), in one verdict
//! with the evidence and the next command.

use std::path::PathBuf;

use serde::Serialize;

use super::logs::{self, catalogue::Severity, LogReport, Options};
use super::{Diagnosis, Verdict};
use crate::error::{ExitCode, Result};
use crate::reach::discovery::settings::Settings;
use crate::reach::discovery::Manifest;

/// The node's member, read from its log and its data dir.
#[derive(Debug, Serialize)]
pub struct Checkup {
    /// The member's name (the manifest's `--name`).
    pub member: Option<String>,
    /// One line: what is wrong, or that nothing known is.
    pub verdict: String,
    /// The next steps, the most urgent first.
    pub next: Vec<String>,
    /// What the log says.
    pub logs: Option<LogReport>,
    /// Why the log could not be read.
    pub logs_error: Option<String>,
    /// What the data dir says.
    pub data_dir: Option<Diagnosis>,
    /// Why the data dir could not be read.
    pub data_dir_error: Option<String>,
}

impl Checkup {
    /// 1 when the log or the data dir found a failure, 3 when neither could be read, else 0.
    pub fn exit_code(&self) -> ExitCode {
        let bad = self.logs.as_ref().is_some_and(|l| l.exit_code() == ExitCode::Negative)
            || self.data_dir.as_ref().is_some_and(|d| d.exit_code() == ExitCode::Negative);
        match (bad, &self.logs, &self.data_dir) {
            (true, ..) => ExitCode::Negative,
            (false, None, None) => ExitCode::Discovery,
            _ => ExitCode::Ok,
        }
    }
}

/// Reads the node's member: the manifest (for its name and data dir), its pod logs under
/// `pod_log_dir`, its data dir.
pub async fn examine(settings: &Settings, pod_log_dir: PathBuf, since: Option<std::time::Duration>) -> Result<Checkup> {
    let manifest_path =
        settings.manifest.clone().or_else(|| Some(settings.default_manifest.clone()).filter(|p| p.exists()));
    let manifest = manifest_path.as_deref().map(Manifest::load).transpose()?;
    let member = manifest.as_ref().and_then(|m| m.flag("name").map(String::from));
    let opts = Options { member: member.clone(), namespace: settings.namespace.clone(), since, previous: false };
    let (logs, logs_error) = match logs::api::examine_node_or_api(settings, pod_log_dir, opts).await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.report())),
    };
    let (data_dir, data_dir_error) = match super::examine(settings, None, None).await {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e.report())),
    };
    let mut next = Vec::new();
    let mut verdict = Vec::new();
    if let Some(l) = &logs {
        if let Some(f) = l.current().find(|f| f.severity <= Severity::Error) {
            verdict.push(format!(
                "its log: {} ({} time(s), last {})",
                f.what,
                f.count,
                f.last.clone().unwrap_or_default()
            ));
            next.push(f.next.clone());
        }
        if let Some(c) = l.containers.last().filter(|c| c.ended.starts_with("crashed")) {
            verdict.push(format!("its last container {}", c.ended));
        }
    }
    if let Some(d) = &data_dir {
        let v = match d.verdict {
            Verdict::Healthy => None,
            Verdict::Repairable => Some("its data dir has a torn WAL tail etcd repairs at start"),
            Verdict::Damaged => Some("its data dir is damaged"),
            Verdict::Removed => Some("its data dir belongs to a member removed from the cluster"),
            Verdict::NeverStarted => Some("its data dir was never started (no WAL)"),
        };
        if let Some(v) = v {
            verdict.push(v.to_string());
            next.extend(d.next_steps.iter().cloned());
        }
    }
    let verdict = if logs.is_none() && data_dir.is_none() {
        "neither its log nor its data dir could be read (where each was looked for is below)".to_string()
    } else if verdict.is_empty() {
        "nothing known is wrong in its log or its data dir; `kubectl etcd health` tells how the cluster sees it"
            .to_string()
    } else {
        verdict.join("; ")
    };
    Ok(Checkup { member, verdict, next, logs, logs_error, data_dir, data_dir_error })
}
