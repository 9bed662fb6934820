//! `kubectl etcd learner`: add a member safely as a learner, follow its catch-up, promote it the
//! moment etcd allows, remove and replace members without losing quorum, issue its certificates.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use kubectl_etcd::cli::CommonArgs;
use kubectl_etcd::cluster::Session;
use kubectl_etcd::discovery::url_host;
use kubectl_etcd::members::{self, AddOptions, Added, Progress, PromoteOptions, RemoveOptions};
use kubectl_etcd::render::{self, OutputFormat, Table};
use kubectl_etcd::util::{format_duration, member_id, parse_duration};
use kubectl_etcd::{Error, ExitCode, Result};

/// Grow and shrink the etcd cluster safely: learners first, promotion the moment etcd allows,
/// removals that keep quorum.
///
/// Exit codes: 0 ok; 1 refused by a safety check or by etcd; 2 usage; 3 discovery; 4 transport.
#[derive(Debug, Parser)]
#[command(name = "kubectl-etcd-learner", bin_name = "kubectl etcd learner", version = kubectl_etcd::version::LONG)]
pub struct Cli {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a member as a learner and print the settings it must start with.
    Add {
        /// The new member's name (its node name on kubeadm).
        name: String,
        /// The new member's peer URLs, comma-separated (https://IP:2380).
        #[arg(long, value_delimiter = ',', required = true, value_name = "URLS")]
        peer_urls: Vec<String>,
        /// Add even when a voter does not answer or there is no leader.
        #[arg(long)]
        force: bool,
        /// Print what would be done and the settings; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also print the new member's complete static pod manifest, derived from this node's.
        #[arg(long)]
        print_manifest: bool,
        /// Then wait for the member to start and catch up, and promote it.
        #[arg(long)]
        promote: bool,
        /// With --promote: how long to wait.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
    },
    /// Show every learner's (or one's) catch-up progress and whether etcd would promote it now.
    Status {
        /// A learner's name or ID.
        member: Option<String>,
        /// Keep following.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Time between rounds with --watch.
        #[arg(long, default_value = "1s", value_parser = kubectl_etcd::util::parse_interval, value_name = "DURATION")]
        interval: Duration,
    },
    /// Promote a learner to a voter, waiting until etcd accepts it.
    Promote {
        /// The learner's name or ID.
        member: String,
        /// How long to wait for the learner to catch up.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Try once; fail if etcd does not accept the promote now.
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove a learner or a voter, refusing when quorum would be lost.
    Remove {
        /// The member's name or ID.
        member: String,
        /// Remove even when quorum would be at risk, or the member is the leader.
        #[arg(long)]
        force: bool,
        /// When removing the leader, move leadership to the most up-to-date other voter first.
        #[arg(long)]
        move_leader: bool,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace a member: add the new one as a learner, wait for it, promote it, remove the old one.
    Replace {
        /// The member to replace (name or ID).
        old: String,
        /// The new member's name.
        #[arg(long)]
        name: String,
        /// The new member's peer URLs.
        #[arg(long, value_delimiter = ',', required = true, value_name = "URLS")]
        peer_urls: Vec<String>,
        /// How long to wait for the new member to start and catch up.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        timeout: Duration,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue a member's server and peer certificates from the etcd CA.
    Certs {
        /// The member's name (CN and a DNS SAN).
        name: String,
        /// The member's IP addresses (repeatable).
        #[arg(long = "ip", required = true, value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Extra DNS names (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Directory to write server.crt/.key and peer.crt/.key into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The etcd CA certificate [default: the manifest's --trusted-ca-file, else /etc/kubernetes/pki/etcd/ca.crt].
        #[arg(long, value_name = "PATH")]
        ca_cert: Option<PathBuf>,
        /// The etcd CA key [default: ca.key beside the CA certificate].
        #[arg(long, value_name = "PATH")]
        ca_key: Option<PathBuf>,
    },
}

/// The clap command, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

/// The learners table.
pub fn progress_table(rows: &[Progress]) -> Table {
    let mut t = Table::new([
        "name",
        "id",
        "peer urls",
        "started",
        "index",
        "leader index",
        "percent",
        "rate",
        "eta",
        "promotable",
        "error",
    ]);
    for p in rows {
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        t.push([
            p.member.display_name(),
            member_id(p.member.id),
            p.member.peer_urls.join(","),
            p.started.to_string(),
            opt(p.raft_index),
            opt(p.leader_index),
            p.percent.map(|x| format!("{x:.1}%")).unwrap_or_default(),
            p.rate.map(|r| format!("{r:.0}/s")).unwrap_or_default(),
            p.eta.map(format_duration).unwrap_or_default(),
            p.promotable.to_string(),
            p.error.clone().unwrap_or_default(),
        ]);
    }
    t
}

fn print_added(a: &Added, format: OutputFormat, manifest: Option<&str>) -> Result<()> {
    if format.is_structured() {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            added: &'a Added,
            #[serde(skip_serializing_if = "Option::is_none")]
            manifest: Option<&'a str>,
        }
        return render::print(&render::document(format, &Doc { added: a, manifest })?);
    }
    let mut s = String::new();
    for w in &a.forced {
        s.push_str(&format!("WARNING (--force): {w}\n"));
    }
    match (a.dry_run, a.already_existed, a.id) {
        (true, _, _) => s.push_str(&format!(
            "Dry run: would add learner {} with peer URLs {}; nothing was changed.\n",
            a.settings.name, a.settings.initial_advertise_peer_urls
        )),
        (_, true, Some(id)) => s.push_str(&format!(
            "Learner {} already exists with these peer URLs (ID {}); nothing was changed.\n",
            a.settings.name,
            member_id(id)
        )),
        (_, _, Some(id)) => s.push_str(&format!("Added learner {} with ID {}.\n", a.settings.name, member_id(id))),
        _ => {}
    }
    s.push_str("\nStart etcd on the new member with:\n");
    for line in a.settings.flags().lines() {
        s.push_str(&format!("  {line}\n"));
    }
    if let Some(m) = manifest {
        s.push_str("\n# Static pod manifest for the new member (/etc/kubernetes/manifests/etcd.yaml):\n");
        s.push_str(m);
    }
    let key = a.id.map(member_id).unwrap_or_else(|| a.settings.name.clone());
    s.push_str(&format!("\nThen promote it: kubectl etcd learner promote {key}\n"));
    render::print(&s)
}

struct Bar {
    tty: bool,
    told_not_started: std::cell::Cell<bool>,
}

impl Bar {
    fn new() -> Bar {
        Bar { tty: std::io::stderr().is_terminal(), told_not_started: std::cell::Cell::new(false) }
    }
    fn show(&self, p: &Progress) {
        if !p.started && !self.told_not_started.replace(true) {
            eprintln!(
                "learner {} (peer URLs {}) has not started yet: waiting for it; start etcd on the new node with the settings `kubectl etcd learner add` printed (--initial-cluster-state=existing)",
                member_id(p.member.id),
                p.member.peer_urls.join(",")
            );
        }
        if !self.tty {
            return;
        }
        let line = if !p.started {
            format!("waiting for learner {} to start ...", member_id(p.member.id))
        } else {
            let pct = p.percent.unwrap_or(0.0);
            let filled = ((pct / 100.0) * 30.0) as usize;
            format!(
                "[{}{}] {:>5.1}%  {}  eta {}  ",
                "#".repeat(filled.min(30)),
                " ".repeat(30 - filled.min(30)),
                pct,
                p.rate.map(|r| format!("{r:.0} entries/s")).unwrap_or_else(|| "-".into()),
                p.eta.map(format_duration).unwrap_or_else(|| "-".into())
            )
        };
        eprint!("\r{line}\x1b[K");
    }
    fn end(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

async fn do_promote(session: &Session, key: &str, opts: &PromoteOptions) -> Result<members::Promoted> {
    let bar = Bar::new();
    let r = members::promote(session, key, opts, &mut |p| bar.show(p)).await;
    bar.end();
    r
}

fn manifest_for(session: &Session, a: &Added) -> Option<String> {
    let m = session.discovery.manifest.as_ref()?;
    let text =
        kubectl_etcd::util::read_bounded_string(&m.path, "static pod manifest", kubectl_etcd::util::MAX_MANIFEST)
            .ok()?;
    let old_host = m
        .flag("initial-advertise-peer-urls")
        .and_then(|u| url_host(u.split(',').next().unwrap_or(u)))
        .unwrap_or_default();
    let new_host =
        url_host(a.settings.initial_advertise_peer_urls.split(',').next().unwrap_or_default()).unwrap_or_default();
    Some(members::derive_manifest(&text, m.name().unwrap_or_default(), &old_host, &new_host, &a.settings))
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let format = cli.common.format();
    let no_headers = cli.common.no_headers;
    let settings = cli.common.settings();
    if let Command::Certs { name, ips, dns, out, ca_cert, ca_key } = &cli.command {
        let ca_cert = match ca_cert {
            Some(c) => c.clone(),
            None => {
                let manifest = settings
                    .manifest
                    .clone()
                    .or_else(|| Some(settings.default_manifest.clone()).filter(|p| p.exists()));
                match manifest {
                    Some(p) => kubectl_etcd::discovery::Manifest::load(&p)?
                        .flag("trusted-ca-file")
                        .map(PathBuf::from)
                        .ok_or_else(|| {
                            Error::Usage(format!("manifest {} has no --trusted-ca-file: pass --ca-cert", p.display()))
                        })?,
                    None => PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt"),
                }
            }
        };
        let ca_key = ca_key.clone().unwrap_or_else(|| ca_cert.with_extension("key"));
        let issued = kubectl_etcd::certs::issue(name, ips, dns, &ca_cert, &ca_key, out)?;
        if format.is_structured() {
            render::print(&render::document(format, &issued)?)?;
        } else {
            let mut s = format!(
                "Issued certificates for {name}, signed by {}, valid until {}:\n",
                ca_cert.display(),
                issued.not_after
            );
            for f in &issued.files {
                s.push_str(&format!("  {}\n", f.display()));
            }
            s.push_str(&format!("SANs: {}\n", issued.sans.join(", ")));
            render::print(&s)?;
        }
        return Ok(ExitCode::Ok);
    }
    let session = Session::open(&settings).await?;
    match cli.command {
        Command::Certs { .. } => Ok(ExitCode::Ok),
        Command::Add { name, peer_urls, force, dry_run, print_manifest, promote, timeout } => {
            let added = members::add(&session, &AddOptions { name: name.clone(), peer_urls, force, dry_run }).await?;
            let manifest = if print_manifest {
                Some(manifest_for(&session, &added).ok_or_else(|| {
                    Error::Usage("--print-manifest needs this node's static pod manifest: pass --manifest".into())
                })?)
            } else {
                None
            };
            print_added(&added, format, manifest.as_deref())?;
            if promote && !dry_run {
                let key = added.id.map(member_id).unwrap_or(name);
                eprintln!("Waiting for the learner to start and catch up, then promoting it ...");
                let p = do_promote(&session, &key, &PromoteOptions { timeout, ..Default::default() }).await?;
                eprintln!(
                    "Promoted {} ({}) after {}.",
                    p.member.display_name(),
                    member_id(p.member.id),
                    format_duration(p.waited)
                );
            }
            Ok(ExitCode::Ok)
        }
        Command::Status { member, watch, interval } => {
            let mut prev: Option<(Instant, Vec<Progress>)> = None;
            loop {
                let (_, now) = members::sample(&session, member.as_deref()).await?;
                let t = Instant::now();
                let rows = match &prev {
                    Some((t0, before)) => members::with_rate(now, before, t - *t0),
                    None if !watch && now.iter().any(|p| p.started && !p.promotable) => {
                        // One more sample for the rate and ETA.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let (_, again) = members::sample(&session, member.as_deref()).await?;
                        members::with_rate(again, &now, t.elapsed())
                    }
                    None => now,
                };
                let text = match format {
                    OutputFormat::Json if watch => render::json_line(&rows)?,
                    OutputFormat::Json | OutputFormat::Yaml => render::document(format, &rows)?,
                    _ if rows.is_empty() => "No learners.\n".to_string(),
                    _ => progress_table(&rows).format(no_headers),
                };
                let text = if watch && !format.is_structured() && std::io::stdout().is_terminal() {
                    render::redraw_frame(&text)
                } else {
                    text
                };
                render::print(&text)?;
                if !watch {
                    return Ok(ExitCode::Ok);
                }
                prev = Some((t, rows));
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::Ok),
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        }
        Command::Promote { member, timeout, no_wait } => {
            let p = do_promote(&session, &member, &PromoteOptions { timeout, no_wait, ..Default::default() }).await?;
            if format.is_structured() {
                render::print(&render::document(format, &p)?)?;
            } else {
                render::print(&format!(
                    "Promoted {} ({}) to a voting member after {} ({} attempt{}).\n",
                    p.member.display_name(),
                    member_id(p.member.id),
                    format_duration(p.waited),
                    p.attempts,
                    if p.attempts == 1 { "" } else { "s" }
                ))?;
            }
            Ok(ExitCode::Ok)
        }
        Command::Remove { member, force, move_leader, dry_run } => {
            let r = members::remove(&session, &member, &RemoveOptions { force, move_leader, dry_run }).await?;
            if format.is_structured() {
                render::print(&render::document(format, &r)?)?;
            } else {
                let mut s = String::new();
                s.push_str(if dry_run { "Dry run; the plan:\n" } else { "Done:\n" });
                for step in &r.steps {
                    s.push_str(&format!("  - {step}\n"));
                }
                s.push_str(if dry_run { "Nothing was changed. Afterwards:\n" } else { "Next:\n" });
                for step in &r.next_steps {
                    s.push_str(&format!("  - {step}\n"));
                }
                render::print(&s)?;
            }
            Ok(ExitCode::Ok)
        }
        Command::Replace { old, name, peer_urls, timeout, dry_run } => {
            replace(&session, &old, &name, peer_urls, timeout, dry_run, format).await
        }
    }
}

async fn replace(
    session: &Session,
    old: &str,
    name: &str,
    peer_urls: Vec<String>,
    timeout: Duration,
    dry_run: bool,
    format: OutputFormat,
) -> Result<ExitCode> {
    let list = session.member_list().await?;
    let old_m = kubectl_etcd::cluster::find_member(&list.members, old)?.clone();
    if old_m.is_learner {
        return Err(Error::Refused(format!(
            "{} is a learner: remove it with kubectl etcd learner remove",
            old_m.display_name()
        )));
    }
    let old_ref = member_id(old_m.id);
    let mut done: Vec<String> = Vec::new();
    let fail = |done: &[String], e: Error, next: String| -> Error {
        let steps = if done.is_empty() { "nothing".to_string() } else { done.join("; ") };
        Error::Stopped { what: "replace", cause: Box::new(e), done: format!("done so far: {steps}"), next }
    };
    // 1. add
    let added = members::add(
        session,
        &AddOptions { name: name.to_string(), peer_urls: peer_urls.clone(), force: false, dry_run },
    )
    .await
    .map_err(|e| fail(&done, e, "fix the cause and run the replace again".to_string()))?;
    if dry_run && format.is_structured() {
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            dry_run: bool,
            steps: Vec<String>,
            settings: &'a members::JoinSettings,
        }
        let steps = vec![
            format!("add {name} ({}) as a learner", peer_urls.join(",")),
            "wait for it to start with the settings and catch up".to_string(),
            "promote it".to_string(),
            format!("move leadership away from {} if it leads", old_m.display_name()),
            format!("remove {} ({old_ref})", old_m.display_name()),
        ];
        render::print(&render::document(format, &Plan { dry_run: true, steps, settings: &added.settings })?)?;
        return Ok(ExitCode::Ok);
    }
    if dry_run {
        let plan = format!(
            "Dry run; the plan:\n  1. add {name} ({}) as a learner\n  2. wait for it to start with the settings below and catch up\n  3. promote it\n  4. move leadership away from {} if it leads\n  5. remove {} ({old_ref})\nNothing was changed.\n\nStart etcd on the new member with:\n{}",
            peer_urls.join(","),
            old_m.display_name(),
            old_m.display_name(),
            added.settings.flags().lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        render::print(&plan)?;
        return Ok(ExitCode::Ok);
    }
    let new_id = added.id.map(member_id).unwrap_or_else(|| name.to_string());
    done.push(format!("added learner {name} ({new_id})"));
    if !format.is_structured() {
        print_added(&added, OutputFormat::Table, None)?;
    }
    // 2+3. wait and promote
    let p = do_promote(session, &new_id, &PromoteOptions { timeout, ..Default::default() })
        .await
        .map_err(|e| fail(&done, e, format!("start the new member, then: kubectl etcd learner promote {new_id} && kubectl etcd learner remove {old_ref} --move-leader")))?;
    done.push(format!("promoted {name} after {}", format_duration(p.waited)));
    // 4+5. remove the old one, moving leadership first if needed.
    let r = members::remove(session, &old_ref, &RemoveOptions { force: false, move_leader: true, dry_run: false })
        .await
        .map_err(|e| fail(&done, e, format!("kubectl etcd learner remove {old_ref} --move-leader")))?;
    done.push(format!("removed {} ({old_ref})", old_m.display_name()));
    if format.is_structured() {
        #[derive(serde::Serialize)]
        struct Doc {
            steps: Vec<String>,
            next_steps: Vec<String>,
        }
        render::print(&render::document(format, &Doc { steps: done, next_steps: r.next_steps })?)?;
    } else {
        let mut s = String::from("\nReplaced:\n");
        for d in &done {
            s.push_str(&format!("  - {d}\n"));
        }
        s.push_str("Next:\n");
        for n in &r.next_steps {
            s.push_str(&format!("  - {n}\n"));
        }
        render::print(&s)?;
    }
    Ok(ExitCode::Ok)
}
