//! `drvdom lab`: the simulated Xen host (crate `sim`).
//!
//! `up` starts a simulated host, applies a host file to it with the
//! toolstack (crate `topology`, the same code as on real Xen) and verifies
//! it, printing each action and each PASS/FAIL check (`--json`: one JSON
//! line per step); `status` shows it as a tree (exit 1 if unhealthy),
//! `list` lists labs, `exec` runs a command inside one of its domains,
//! `restart` restarts one of its processes, `down` removes it and keeps
//! its logs (`--purge` removes them). Every subcommand takes `--lab NAME`
//! (`--name` is a hidden alias); every process the lab starts is watched,
//! and an exit is reported at once with its status and its log's end.

mod bins;
mod life;
mod report;

use std::ffi::OsString;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sim::SimHost;
use sim::lab::{self, StartConfig};
use topology::apply::{ActionResult, Progress};
use topology::verify::{Check, Status as CheckStatus};
use topology::{LoadOptions, Topology};

use super::output::{self, Code, cli_error_with, paint, schema};
use super::usage_error;

/// Default lab name.
pub const DEFAULT_LAB: &str = "lab";

/// The seed scenario, as a host file.
pub const SEED: &str = include_str!("seed.toml");

/// `drvdom lab` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum LabCmd {
    /// Start a simulated host, apply a host file to it (default: the seed
    /// scenario — driver domain netdd with a NIC on xenbr0, two guests) and
    /// verify every step with real packets.
    Up {
        /// The host file to apply (see SPEC: version, driver_domain,
        /// guest); `config` keys are ignored on the simulated host.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["guests", "driver_domain"])]
        topology: Option<PathBuf>,
        /// The seed scenario with this many guests.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=200))]
        guests: Option<u16>,
        /// The seed scenario with this driver domain name.
        #[arg(long, value_name = "NAME")]
        driver_domain: Option<String>,
        /// Hidden alias of the global --lab NAME.
        #[arg(long, value_name = "NAME", hide = true)]
        name: Option<String>,
        /// Leave the lab running and return.
        #[arg(long, conflicts_with = "once")]
        detach: bool,
        /// Tear the lab down right after the checks.
        #[arg(long)]
        once: bool,
        /// Print one JSON object per line (JSON Lines) for each step:
        /// start, every action, every check, child exits, done.
        #[arg(long)]
        json: bool,
        /// Agent policy for hotplug scripts: `non-default` (native hotplug
        /// unless a vif names another script), `always` (run the backend's
        /// script, e.g. Debian's /etc/xen/scripts/vif-bridge), `never`.
        #[arg(long, value_name = "WHEN", value_parser = ["always", "never", "non-default"])]
        legacy_scripts: Option<String>,
        /// Do not start `drvdom reconcile` in the lab's dom0 (it keeps
        /// guests' vifs across driver-domain restarts).
        #[arg(long)]
        no_reconcile: bool,
    },
    /// Show domains, NICs, devices, links and processes of a running lab;
    /// exit 1 when something is unhealthy (a dead process, a vif not
    /// Connected), each problem listed.
    Status {
        /// Hidden alias of the global --lab NAME.
        #[arg(long, value_name = "NAME", hide = true)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a domain of a running lab (its network
    /// namespace and own /sys; XENSTORED_PATH is the domain's xenstore
    /// socket). DOMAIN may also be `outside`. Exits with the command's
    /// status.
    Exec {
        /// The domain (as `lab status` lists it), or `outside`.
        domain: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        argv: Vec<OsString>,
        /// Hidden alias of the global --lab NAME.
        #[arg(long, value_name = "NAME", hide = true)]
        name: Option<String>,
    },
    /// Remove every namespace, link and process of a lab; its processes'
    /// logs are kept (the command says where) unless --purge. A lab that
    /// does not exist is an error listing the known ones.
    Down {
        /// Hidden alias of the global --lab NAME.
        #[arg(long, value_name = "NAME", hide = true)]
        name: Option<String>,
        /// Remove the logs too.
        #[arg(long)]
        purge: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List labs: running, orphaned (namespaces without a record) or down
    /// with their logs kept.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restart a domain of a running lab as Xen would (it dies: processes
    /// killed, namespace and links gone, @releaseDomain, its xenstore home
    /// removed; then it is created again with a new domid, its NICs and
    /// agent back), or one process as it was started: `agent`, `netback`,
    /// `netfront-<guest>` (with one driver domain), `agent-<dd>`,
    /// `netback-<dd>`, `reconcile`.
    Restart {
        /// Domain names (several restart at once), or one process role as
        /// `lab status` lists it.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// Hidden alias of the global --lab NAME.
        #[arg(long, value_name = "NAME", hide = true)]
        name: Option<String>,
        /// Domain: destroy it and leave it down (a driver domain that never
        /// comes back).
        #[arg(long)]
        stay_down: bool,
        /// Domain: leave its xenstore home behind, as when the toolstack
        /// died with it (only @releaseDomain tells).
        #[arg(long)]
        keep_home: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in seed host file (a starting point for --topology).
    Seed {
        /// The seed scenario with this many guests.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=200))]
        guests: Option<u16>,
        /// The seed scenario with this driver domain name.
        #[arg(long, value_name = "NAME")]
        driver_domain: Option<String>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The lab a command is about: its own `--name`, else the global `--lab`,
/// else [`DEFAULT_LAB`]; checked (a bad name is a usage error).
fn lab_name(own: Option<String>, global: Option<&str>) -> anyhow::Result<String> {
    let name = own
        .or_else(|| global.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_LAB.to_string());
    lab::state::check_name(&name).map_err(|e| usage_error(e.to_string()))?;
    Ok(name)
}

/// Run `drvdom lab`; `global_lab` is the global `--lab`, if given.
pub fn run(cmd: LabCmd, global_lab: Option<&str>) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCmd::Up {
            topology,
            guests,
            driver_domain,
            name,
            detach,
            once,
            json,
            legacy_scripts,
            no_reconcile,
        } => {
            let name = lab_name(name, global_lab)?;
            bins::check_machine(legacy_scripts.as_deref() == Some("always"))?;
            let path = topology.clone();
            let mode = if detach {
                Mode::Detach
            } else if once {
                Mode::Once
            } else {
                Mode::Foreground
            };
            let (topo, file) = load_topology(topology, guests, driver_domain, json)?;
            if lab::exists(&lab::run_root(), &name) {
                return Err(usage_error(format!(
                    "lab {name:?} already exists; remove it with `drvdom lab down --lab {name}`"
                )));
            }
            let agent_args = legacy_scripts
                .map(|w| vec!["--legacy-scripts".to_string(), w])
                .unwrap_or_default();
            let bins = bins::find()?;
            let up = Up {
                name,
                mode,
                json,
                topo,
                file,
                cfg_bins: bins,
                agent_args,
                path,
                reconcile: !no_reconcile,
            };
            runtime()?.block_on(up.run())
        }
        LabCmd::Status { name, json } => {
            let name = lab_name(name, global_lab)?;
            report::need_root("lab status")?;
            runtime()?.block_on(report::status(name, json))
        }
        LabCmd::Exec { domain, argv, name } => {
            let name = lab_name(name, global_lab)?;
            report::need_root("lab exec")?;
            exec(name, &domain, &argv)
        }
        LabCmd::Down { name, purge, json } => {
            let name = lab_name(name, global_lab)?;
            report::need_root("lab down")?;
            runtime()?.block_on(report::down(name, purge, json))
        }
        LabCmd::List { json } => report::list(json),
        LabCmd::Restart {
            targets,
            name,
            stay_down,
            keep_home,
            json,
        } => {
            let name = lab_name(name, global_lab)?;
            report::need_root("lab restart")?;
            runtime()?.block_on(async {
                let host = report::open(&name).await?;
                life::restart(&host, &targets, stay_down, keep_home, json).await
            })
        }
        LabCmd::Seed {
            guests,
            driver_domain,
        } => {
            #[allow(clippy::print_stdout)] // the command's output
            {
                print!("{}", seed(driver_domain.as_deref(), guests)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The seed host file, for `dd` and `guests` if they differ from the
/// built-in one.
fn seed(dd: Option<&str>, guests: Option<u16>) -> anyhow::Result<String> {
    if dd.is_none() && guests.is_none() {
        return Ok(SEED.to_string());
    }
    let dd = dd.unwrap_or("netdd");
    lab::state::check_domain_name(dd).map_err(|e| usage_error(e.to_string()))?;
    let n = guests.unwrap_or(2);
    let mut s = String::from(
        "# drvdom's seed scenario (`drvdom lab up`), generated for --guests/--driver-domain.\n\
         version = 1\n\n",
    );
    s.push_str(&format!(
        "[[driver_domain]]\nname = \"{dd}\"\nnics = [\"0000:03:00.0\"]\n\n\
         [[driver_domain.bridge]]\nname = \"xenbr0\"\nuplink = \"0000:03:00.0\"\n"
    ));
    for i in 1..=n {
        let name = format!("guest{i}");
        if name == dd {
            return Err(usage_error(format!(
                "driver domain name {dd:?} clashes with a guest"
            )));
        }
        s.push_str(&format!(
            "\n[[guest]]\nname = \"{name}\"\n\n[[guest.vif]]\nbackend = \"{dd}\"\n\
             mac = \"00:16:3e:00:{:02x}:{:02x}\"\nip = [\"198.51.100.{}/24\"]\n",
            i >> 8,
            i & 0xff,
            10 + i
        ));
    }
    Ok(s)
}

/// The host file `lab up` applies, and its name for messages.
fn load_topology(
    file: Option<PathBuf>,
    guests: Option<u16>,
    dd: Option<String>,
    json: bool,
) -> anyhow::Result<(Topology, String)> {
    let opts = LoadOptions::new(false);
    let (loaded, label) = match &file {
        Some(path) => match topology::load(path, &opts) {
            Ok(l) => (l, path.display().to_string()),
            Err(topology::Error::HostFile {
                source_text,
                diagnostics,
                ..
            }) => {
                if !json {
                    #[allow(clippy::print_stderr)] // the diagnostics, with carets
                    {
                        eprintln!(
                            "{}",
                            xlcfg::render_all(&diagnostics, Some(source_text.as_bytes()))
                        );
                    }
                }
                let n = diagnostics.iter().filter(|d| d.is_error()).count();
                return Err(cli_error_with(
                    Code::InvalidFile,
                    format!(
                        "{}: {n} error(s) in the host file; nothing was changed",
                        path.display()
                    ),
                    serde_json::json!({ "diagnostics": diagnostics }),
                ));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("load {}", path.display())));
            }
        },
        None => {
            let text = seed(dd.as_deref(), guests)?;
            match topology::parse_str(&text, "<seed>", None, &opts) {
                Ok(l) => (l, "the seed scenario".to_string()),
                Err(d) => {
                    return Err(anyhow::anyhow!(
                        "internal: the seed host file does not parse:\n{}",
                        xlcfg::render_all(&d, Some(text.as_bytes()))
                    ));
                }
            }
        }
    };
    #[allow(clippy::print_stderr)] // warnings about the user's file
    if !json {
        for w in &loaded.warnings {
            eprintln!("{}", w.render(Some(loaded.source.as_bytes())));
        }
    }
    Ok((loaded.topology, label))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Foreground,
    Detach,
    Once,
}

/// Ctrl-C and SIGTERM listeners, installed before the lab is built so a
/// signal that arrives during set-up is seen and the lab torn down.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

struct Up {
    name: String,
    mode: Mode,
    json: bool,
    topo: Topology,
    file: String,
    cfg_bins: lab::Bins,
    agent_args: Vec<String>,
    /// The host file given (`None`: the seed).
    path: Option<PathBuf>,
    /// Start `drvdom reconcile` in dom0 once applied.
    reconcile: bool,
}

#[allow(clippy::print_stdout)] // the command's report
fn print_action(r: &ActionResult) {
    let mark = paint(if r.ok { "ok  " } else { "FAIL" });
    println!(
        "{mark}  {:<40} {:>6} ms  {}",
        describe(&r.action),
        r.millis,
        r.detail
    );
}

/// One line naming an action.
fn describe(a: &topology::Action) -> String {
    use topology::ActionKind as K;
    match &a.kind {
        K::AssignNic { bdf } => format!("assign NIC {bdf}"),
        K::ReleaseNic { bdf } => format!("release NIC {bdf}"),
        K::WriteConfig { domain } => format!("write config of {domain}"),
        K::CreateDomain { domain } => format!("create {domain}"),
        K::DestroyDomain { domain } => format!("destroy {domain}"),
        K::ConfigureBridges { domain } => format!("configure bridges of {domain}"),
        K::GrantNameRead { guest, backend } => format!("let {backend} read {guest}'s name"),
        K::AttachVif { guest, devid } => format!("attach vif {guest}/{devid}"),
        K::DetachVif { guest, devid } => format!("detach vif {guest}/{devid}"),
        other => format!("{other:?}"),
    }
}

#[allow(clippy::print_stdout)] // the command's report
fn print_check(c: &Check) {
    let mark = match c.status {
        CheckStatus::Pass => "PASS",
        CheckStatus::Fail => "FAIL",
    };
    println!(
        "{}  {:<18} {:<28} {}",
        paint(mark),
        c.check,
        c.target,
        c.detail
    );
}

impl Up {
    #[allow(clippy::print_stdout)] // the command's report
    async fn run(self) -> anyhow::Result<ExitCode> {
        let mut stop = match self.mode {
            Mode::Foreground => Some(StopSignals::install()?),
            Mode::Detach | Mode::Once => None,
        };
        let root = lab::run_root();
        let name = self.name.clone();
        if lab::exists(&root, &name) {
            return Err(usage_error(format!(
                "lab {name:?} already exists; remove it with `drvdom lab down --lab {name}`"
            )));
        }
        let started = std::time::Instant::now();
        let cfg = StartConfig {
            name: name.clone(),
            run_root: root.clone(),
            bins: self.cfg_bins.clone(),
            agent_args: self.agent_args.clone(),
        };
        if !self.json {
            println!(
                "lab {name}: starting the simulated host, then applying {}",
                self.file
            );
        }
        if self.json {
            event(
                "start",
                serde_json::json!({ "lab": name, "topology": self.file, "run_root": root }),
            );
        }
        let host = match SimHost::start(&cfg).await {
            Ok(h) => h,
            Err(e) => {
                if self.mode != Mode::Detach {
                    let _ = lab::down(&root, &name).await;
                }
                return Err(anyhow::Error::new(e).context(format!("start lab {name}")));
            }
        };
        let outcome = self.apply_and_verify(&host).await;
        let (checks, ok) = match outcome {
            Ok(v) => v,
            Err(e) => {
                if self.mode != Mode::Detach {
                    host.reap();
                    if let Ok(rep) = lab::down(&root, &name).await {
                        self.logs_kept(&name, rep.logs.as_deref());
                    }
                }
                return Err(e.context(format!("lab {name} up")));
            }
        };
        self.report_exits(&host);
        if self.reconcile && self.mode != Mode::Once {
            life::start_reconcile(&host, self.path.as_deref())?;
        }
        let elapsed = started.elapsed();
        let passed = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Pass)
            .count();
        let failed = checks.len() - passed;
        if self.json {
            event(
                "done",
                serde_json::json!({
                    "lab": name,
                    "ok": ok,
                    "millis": elapsed.as_millis(),
                    "passed": passed,
                    "failed": failed,
                    "mode": match self.mode {
                        Mode::Detach => "detach",
                        Mode::Once => "once",
                        Mode::Foreground => "foreground",
                    },
                }),
            );
        } else {
            let verdict = if ok {
                format!("all {} checks {}", checks.len(), paint("PASS"))
            } else if failed > 0 {
                format!("{failed} of {} checks {}", checks.len(), paint("FAILED"))
            } else {
                format!("apply {}", paint("FAILED"))
            };
            println!("lab {name}: {verdict} in {:.2} s", elapsed.as_secs_f64());
        }
        match self.mode {
            Mode::Detach => {
                if !self.json {
                    println!(
                        "lab {name} left running; `drvdom lab status --lab {name}`, \
                         `drvdom lab exec DOMAIN --lab {name} -- CMD`, `drvdom lab down --lab {name}`"
                    );
                }
            }
            Mode::Once => {
                host.reap();
                let rep = lab::down(&root, &name).await.context("tear the lab down")?;
                self.logs_kept(&name, rep.logs.as_deref());
            }
            Mode::Foreground => {
                if !self.json {
                    println!("lab {name} is up; Ctrl-C or SIGTERM tears it down");
                }
                if let Some(stop) = stop.as_mut() {
                    // Watch the children while waiting: an exit is
                    // reported at once, with the end of its log.
                    loop {
                        tokio::select! {
                            _ = stop.wait() => break,
                            _ = tokio::time::sleep(CHILD_POLL) => self.report_exits(&host),
                        }
                    }
                }
                host.reap();
                let rep = lab::down(&root, &name).await.context("tear the lab down")?;
                self.logs_kept(&name, rep.logs.as_deref());
                host.reap();
            }
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Report children that exited (status and the end of their log).
    #[allow(clippy::print_stdout)] // the command's report
    fn report_exits(&self, host: &SimHost) {
        for e in host.take_exited(LOG_LINES) {
            if self.json {
                event("exited", serde_json::to_value(&e).unwrap_or_default());
            } else {
                println!(
                    "{}  {} (pid {}) exited ({}); last lines of {}:",
                    paint("FAIL"),
                    e.role,
                    e.pid,
                    e.status,
                    e.log.display()
                );
                for l in e.tail.lines() {
                    println!("      | {l}");
                }
            }
        }
    }

    /// Say where the logs of a torn-down lab are. The reader may be gone
    /// by now (a script that stopped reading once the lab was up): a
    /// closed stdout is not an error here, the lab is down either way.
    fn logs_kept(&self, name: &str, logs: Option<&std::path::Path>) {
        use std::io::Write;
        let Some(logs) = logs else { return };
        if self.json {
            event("down", serde_json::json!({ "lab": name, "logs": logs }));
        } else {
            let _ = writeln!(
                std::io::stdout().lock(),
                "lab {name} torn down; logs kept in {} (`drvdom lab down --purge --lab {name}` removes them)",
                logs.display()
            );
        }
    }

    /// `plan` + `apply` + `verify`; (checks, all ok).
    #[allow(clippy::print_stdout)] // the command's report
    async fn apply_and_verify(&self, host: &SimHost) -> anyhow::Result<(Vec<Check>, bool)> {
        let planned = topology::plan::plan(host, &self.topo)
            .await
            .context("plan")?;
        let json = self.json;
        if json {
            event(
                "plan",
                serde_json::json!({ "actions": planned.actions, "changes": planned.actions.len() }),
            );
        } else {
            println!("apply: {} action(s)", planned.actions.len());
        }
        let mut progress = |p: Progress<'_>| {
            if let Progress::Finished { result, .. } = p {
                if json {
                    event("action", serde_json::to_value(result).unwrap_or_default());
                } else {
                    print_action(result);
                }
            }
            ControlFlow::Continue(())
        };
        let report =
            topology::apply::apply(host, &self.topo, &planned.actions, &mut progress).await;
        if !report.completed {
            return Ok((Vec::new(), false));
        }
        if !json {
            println!("verify:");
        }
        let mut on_check = |c: &Check| {
            if json {
                event("check", serde_json::to_value(c).unwrap_or_default());
            } else {
                print_check(c);
            }
        };
        let v = topology::verify::verify(host, &self.topo, &mut on_check)
            .await
            .context("verify")?;
        for n in &v.notes {
            if json {
                event("note", serde_json::json!({ "note": n }));
            } else {
                println!("{}  {n}", paint("note"));
            }
        }
        let ok = v.ok();
        Ok((v.checks, ok))
    }
}

/// How often a foreground `lab up` looks for exited children.
const CHILD_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// Log lines shown with an exit.
const LOG_LINES: usize = 10;

/// One line of `lab up --json`: `{"schema":"drvdom/lab-up-event/1",
/// "event": KIND, ...fields}`.
fn event(kind: &str, fields: serde_json::Value) {
    let mut m = match fields {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other);
            m
        }
    };
    m.insert("event".into(), kind.into());
    let _ = output::print_json_line(schema::LAB_UP_EVENT, &m);
}

/// `lab exec`: replace this process with the command, inside the domain.
fn exec(name: String, domain: &str, argv: &[OsString]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let root = lab::run_root();
    if !lab::exists(&root, &name) {
        return Err(super::host::no_such_lab(&name));
    }
    let st = lab::load(&root, &name)?;
    let mut cmd = lab::exec_command(&st, domain, argv).map_err(|e| {
        let mut known: Vec<String> = st.domains.iter().map(|d| d.name.clone()).collect();
        known.push("outside".into());
        cli_error_with(
            Code::NotFound,
            e.to_string(),
            serde_json::json!({ "known": known }),
        )
    })?;
    let err = cmd.exec();
    Err(anyhow::Error::new(err).context(format!(
        "run {} in {domain}",
        argv.first()
            .map(|a| a.to_string_lossy())
            .unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_parses_and_matches_its_generator() {
        let opts = LoadOptions::new(false);
        let t = topology::parse_str(SEED, "seed", None, &opts)
            .unwrap()
            .topology;
        assert_eq!(t.driver_domains.len(), 1);
        assert_eq!(t.driver_domains[0].name, "netdd");
        assert_eq!(t.guests.len(), 2);
        // The generator makes the same host (modulo comments).
        let g = seed(Some("netdd"), Some(2)).unwrap();
        let tg = topology::parse_str(&g, "gen", None, &opts)
            .unwrap()
            .topology;
        assert_eq!(tg.driver_domains, t.driver_domains);
        assert_eq!(tg.guests, t.guests);
        let big = seed(Some("dd1"), Some(200)).unwrap();
        let tb = topology::parse_str(&big, "big", None, &opts)
            .unwrap()
            .topology;
        assert_eq!(tb.guests.len(), 200);
        assert!(seed(Some("guest1"), Some(2)).is_err());
    }
}
