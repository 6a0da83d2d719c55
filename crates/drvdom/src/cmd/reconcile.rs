//! `drvdom reconcile` (the dom0 daemon that re-creates guests' vifs when
//! their driver domain comes back, crate `topology::reconcile`) and
//! `drvdom events` (its journal: every device state change and every
//! action, with a time, the domain, the device and the reason).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use topology::reconcile::journal::{self, Event, Journal};
use topology::reconcile::{Options, Reconciler, memory};
use topology::{Host, HostKind};

use super::host::{self, AnyHost};
use super::output::{self, schema};

/// `drvdom reconcile`.
#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// The host file whose guests' vifs to keep (default: what xl recorded
    /// for each running guest, `/libxl/<domid>/device/vif/<devid>`).
    pub file: Option<PathBuf>,
    /// The event journal (default: /var/lib/drvdom/events.jsonl; with
    /// --lab, events.jsonl in the lab's directory).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// One pass, then exit (what a timer or a test runs).
    #[arg(long, conflicts_with = "status")]
    pub once: bool,
    /// Print the vifs the daemon keeps and where each stands (active,
    /// waiting for its driver domain, attaching), then exit.
    #[arg(long)]
    pub status: bool,
    /// With --status: print JSON.
    #[arg(long, requires = "status")]
    pub json: bool,
    /// How long a re-created vif may take to connect before it is removed
    /// and tried again, in seconds.
    #[arg(long, value_name = "S", default_value_t = 50)]
    pub vif_timeout: u64,
}

/// `drvdom events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Keep printing new events as they are written (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Only the last N events (before following).
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Only events about this domain (a guest's or driver domain's name).
    #[arg(long, value_name = "NAME")]
    pub domain: Option<String>,
    /// The journal to read (default: as `drvdom reconcile` writes it).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The journal of the host a command works on.
pub fn journal_path(lab: Option<&str>, given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    match lab {
        Some(name) => sim::lab::state::lab_dir(&sim::lab::run_root(), name).join("events.jsonl"),
        None => PathBuf::from(journal::DEFAULT_JOURNAL),
    }
}

/// The journal of an open host.
pub fn journal_of(h: &AnyHost, given: Option<PathBuf>) -> PathBuf {
    match h.kind() {
        HostKind::Simulated(n) => journal_path(Some(&n), given),
        HostKind::Real => journal_path(None, given),
    }
}

/// Run `drvdom reconcile`.
pub fn run(args: ReconcileArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(run_async(args, lab))
}

#[allow(clippy::print_stdout)] // the command's report
async fn run_async(args: ReconcileArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    let h = host::open(lab.as_deref()).await?;
    if args.status {
        let wants = memory::load_vifs(h.xenstore()).await?;
        let list: Vec<&memory::WantVif> = wants.values().collect();
        if args.json {
            output::print_json(
                schema::RECONCILE_STATUS,
                &serde_json::json!({ "vifs": list }),
            )?;
        } else if list.is_empty() {
            println!("reconcile keeps no vifs (is `drvdom reconcile` running?)");
        } else {
            for w in &list {
                let since = journal::rfc3339_ms(w.since_ms);
                println!(
                    "{}/{}  {:<9}  backend {}{}  mac {}  since {since}",
                    w.guest,
                    w.devid,
                    w.phase.as_str(),
                    w.backend,
                    w.backend_domid
                        .map(|d| format!(" (domain {d})"))
                        .unwrap_or_default(),
                    w.mac
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let topo = match &args.file {
        Some(f) => Some(host::load(f, h.is_real(), false)?.topology),
        None => None,
    };
    let jpath = journal_of(&h, args.journal.clone());
    let journal = Journal::open(&jpath).with_context(|| format!("open {}", jpath.display()))?;
    let mut opts = Options::new(topo, journal);
    opts.vif_timeout = Duration::from_secs(args.vif_timeout);
    let mut r = Reconciler::new(&h, opts).await?;
    if args.once {
        r.run(async {}).await?;
        return Ok(ExitCode::SUCCESS);
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let stop = async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    r.run(stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// Run `drvdom events`.
pub fn run_events(args: EventsArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    let path = journal_path(lab.as_deref(), args.journal.clone());
    if let Some(name) = &lab {
        if !sim::lab::exists(&sim::lab::run_root(), name) {
            return Err(output::usage_error(format!("no lab {name:?} is running")));
        }
    }
    runtime()?.block_on(events(args, path))
}

fn keep(args: &EventsArgs, e: &Event) -> bool {
    args.domain.as_deref().is_none_or(|d| e.domain == d)
}

#[allow(clippy::print_stdout)] // the command's output
fn show(args: &EventsArgs, e: &Event) -> anyhow::Result<()> {
    if args.json {
        output::print_json_line(schema::EVENT, e)?;
    } else {
        println!("{}", e.line());
    }
    Ok(())
}

async fn events(args: EventsArgs, path: PathBuf) -> anyhow::Result<ExitCode> {
    if !path.exists() && !args.follow {
        return Err(output::cli_error(
            output::Code::NotFound,
            format!(
                "no journal at {} (events are written by `drvdom reconcile`; is it running?)",
                path.display()
            ),
        ));
    }
    let all = journal::read_all(&path)?;
    let mut list: Vec<&Event> = all.iter().filter(|e| keep(&args, e)).collect();
    if let Some(n) = args.last {
        let skip = list.len().saturating_sub(n);
        list.drain(..skip);
    }
    for e in list {
        show(&args, e)?;
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&args, &path).await
}

/// Print lines appended to the journal from now on (and the new file
/// after a rotation), until Ctrl-C.
async fn follow(args: &EventsArgs, path: &Path) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut partial = String::new();
    // The journal has one writer that appends whole lines; a reader polls
    // its size (5 times a second: a person is reading).
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {}
        }
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated
            partial.clear();
        }
        if len == pos {
            continue;
        }
        let bytes = read_from(path, pos)?;
        pos += bytes.len() as u64;
        partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(cut) = partial.rfind('\n') else {
            continue;
        };
        let complete: String = partial.drain(..=cut).collect();
        for e in journal::parse_lines(&complete) {
            if keep(args, &e) {
                show(args, &e)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_from(path: &Path, pos: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    f.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}
