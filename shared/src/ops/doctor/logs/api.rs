//! `doctor logs` from a workstation: etcd's log through the Kubernetes API's `pods/log`, as
//! `kubectl logs -n kube-system etcd-NODE -c etcd [--previous]` reads it, for each etcd pod
//! (`-l component=etcd,tier=control-plane`), when no pod log is on this machine.
//!
//! kubelet serves two containers of a pod (`validateContainerLogStatus` in kubelet's
//! `kubelet_pods.go`): `previous=true` is the last terminated one; without it, the running
//! one, or while the container waits in its restart back-off the last terminated one again.
//! Both are read, the previous first; a current answer equal to the previous one is that same
//! container and is read once. Only the live log file of each container is served (kubelet
//! reads no rotated part); each is read bounded ([`crate::limits::MAX_POD_LOG`]). The API
//! serves `pods/log` only while the API server is up: when it does not answer, the error says
//! so and where else to look.

use super::{Analyzer, LogReport, Options};
use crate::error::{Error, Result};
use crate::reach::discovery::kubeapi::kube_client;
use crate::reach::discovery::settings::Settings;
use crate::reach::kube::{etcd_pods, pod_log, pod_member, PodLog, POD_SELECTOR};

/// Where the API was asked, for errors, with what it said; `down`: it did not answer, and
/// pods/log exists only while it does.
fn unreachable(local: &str, api: String, down: bool) -> Error {
    let api = if down {
        format!(
            "{api}: the API serves pods/log only while the API server is up; on a control-plane node `kubectl etcd doctor logs` reads /var/log/pods, or `crictl logs` the etcd container"
        )
    } else {
        api
    };
    Error::NoLog { tried: vec![local.to_string(), api] }
}

/// Reads the etcd pods' logs through the Kubernetes API; `local` says where the node's pod
/// logs were looked for first (for the error when the API gives nothing either).
pub async fn examine(settings: &Settings, opts: &Options, local: &str) -> Result<LogReport> {
    let (client, ctx) = match kube_client(settings).await {
        Ok(c) => c,
        Err(e) => return Err(unreachable(local, format!("the Kubernetes API: {}", e.report()), false)),
    };
    let ns = opts.namespace.as_str();
    let timeout = settings.dial_timeout + settings.command_timeout;
    let pods = match etcd_pods(&client, ns, &ctx, timeout).await {
        Ok(p) => p,
        Err(e @ Error::Forbidden { .. }) => return Err(e),
        Err(e) => return Err(unreachable(local, format!("the Kubernetes API ({ctx}): {}", e.report()), true)),
    };
    let mut members: Vec<_> = pods
        .iter()
        .filter_map(|p| pod_member(p).ok())
        .filter(|m| {
            opts.member.as_deref().is_none_or(|want| m.name == want || m.pod == want || m.pod == format!("etcd-{want}"))
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let member = opts.member.as_deref().unwrap_or("*");
    if members.is_empty() {
        return Err(Error::NoLog {
            tried: vec![
                local.to_string(),
                format!("the Kubernetes API ({ctx}): no etcd pod of member {member} (-n {ns} -l {POD_SELECTOR})"),
            ],
        });
    }
    // A log body may take longer than one request: a whole live file (at most MAX_POD_LOG).
    let body_timeout = timeout + std::time::Duration::from_secs(60);
    let mut a = Analyzer::new(opts.since);
    let mut read = Vec::new();
    let mut tried = vec![local.to_string()];
    for m in &members {
        let container = if m.container.is_empty() { "etcd" } else { m.container.as_str() };
        let name = |previous: bool| {
            format!("pods/log {ns}/{} -c {container}{}", m.pod, if previous { " --previous" } else { "" })
        };
        let mut previous_body = None;
        for previous in [true, false] {
            if !previous && opts.previous {
                break;
            }
            match pod_log(&client, ns, &m.pod, container, previous, opts.since, body_timeout).await? {
                PodLog::NoContainer(why) => tried.push(format!("{}: {why}", name(previous))),
                PodLog::Text { body, .. } if !previous && previous_body.as_ref() == Some(&body) => {
                    // Waiting in its back-off: kubelet serves the last terminated container again.
                }
                PodLog::Text { body, cut } => {
                    let mut source = name(previous);
                    if cut {
                        source.push_str(&format!(" (its first {} MiB)", crate::limits::MAX_POD_LOG >> 20));
                    }
                    a.start_container(&source);
                    a.read(&body[..])
                        .map_err(|source| Error::Io { action: format!("read {}", name(previous)), source })?;
                    read.push(source);
                    if previous {
                        previous_body = Some(body);
                    }
                }
            }
        }
    }
    if read.is_empty() {
        return Err(Error::NoLog { tried });
    }
    Ok(a.finish(read))
}

/// The log of the etcd pods on this node, else through the API: the pod logs under `dir` when
/// it holds any for `opts` (kubelet's files, every restart and rotated part), else each etcd
/// pod's `pods/log` (the error names both places when neither has a log).
pub async fn examine_node_or_api(settings: &Settings, dir: std::path::PathBuf, opts: Options) -> Result<LogReport> {
    if super::has_pod_logs(&dir, &opts) {
        let input = super::Input::PodLogDir(dir);
        return tokio::task::spawn_blocking(move || super::examine(&input, &opts)).await.map_err(Error::from_join)?;
    }
    let local = format!("{} (none on this machine)", super::pod_log_pattern(&dir, &opts));
    examine(settings, &opts, &local).await
}
