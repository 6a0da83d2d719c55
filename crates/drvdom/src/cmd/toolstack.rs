//! `drvdom plan|apply|destroy|verify|show`: the host file's commands
//! (shared/spec/topology/SPEC.md). Exit codes as Terraform's
//! `-detailed-exitcode`: plan 0 nothing to do, 2 changes pending, 1 error;
//! apply/destroy/verify 0 only when the host matches / all checks pass.

use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use topology::Topology;
use topology::apply::{ApplyOptions, Progress, apply_with};
use topology::plan::{Planned, plan, plan_destroy};
use topology::show::{to_dot, to_libvirt, to_text, view};
use topology::verify::{Status, verify};

use super::host::{self, AnyHost};
use super::output::{self, paint, schema};
use super::usage_error;

/// Arguments of plan/apply/destroy/verify.
#[derive(clap::Args, Debug)]
pub struct FileArgs {
    /// The host file (TOML, shared/spec/topology/SPEC.md).
    pub file: PathBuf,
    /// Print JSON (SPEC.md §4).
    #[arg(long)]
    pub json: bool,
    /// apply: seconds a driver domain may take to boot and have its agent
    /// serve its bridges.
    #[arg(long, value_name = "SECS", default_value_t = topology::apply::BRIDGES_TIMEOUT.as_secs())]
    pub agent_timeout: u64,
    /// apply: seconds a vif may take to connect.
    #[arg(long, value_name = "SECS", default_value_t = topology::apply::VIF_TIMEOUT.as_secs())]
    pub vif_timeout: u64,
}

/// `show` output formats.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human text.
    Text,
    /// JSON (SPEC.md §4).
    Json,
    /// Graphviz source.
    Dot,
    /// SVG drawn by Graphviz's `dot` (package graphviz).
    Svg,
    /// libvirt domain XML, one document per domain.
    Libvirt,
}

/// Arguments of `show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// A host file: show the host against it (missing parts as problems).
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `plan`.
    Plan,
    /// `apply`.
    Apply,
    /// `destroy`.
    Destroy,
}

/// Run plan, apply or destroy.
pub fn run(which: Which, args: FileArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let host = host::open(lab.as_deref()).await?;
        let loaded = host::load(&args.file, host.is_real(), args.json)?;
        match which {
            Which::Plan => do_plan(&host, &loaded.topology, &args).await,
            Which::Apply | Which::Destroy => {
                do_apply(&host, &loaded.topology, &args, which == Which::Destroy).await
            }
        }
    })
}

#[allow(clippy::print_stdout)] // the command's report
fn print_plan(p: &Planned, file: &Path, host: &AnyHost, json: bool, destroy: bool) {
    if json {
        let _ = output::print_json(
            schema::PLAN,
            &serde_json::json!({ "actions": p.actions, "changes": p.actions.len() }),
        );
        return;
    }
    if p.actions.is_empty() {
        println!(
            "{}: nothing to do on {}{}",
            file.display(),
            host.describe(),
            if destroy {
                ": nothing of the file is left"
            } else {
                ": the host matches the file"
            }
        );
        return;
    }
    println!(
        "{}: {} action(s) on {}:",
        file.display(),
        p.actions.len(),
        host.describe()
    );
    for (i, a) in p.actions.iter().enumerate() {
        println!("  {:>3}. {a}: {}", i + 1, a.reason);
    }
}

async fn do_plan(host: &AnyHost, topo: &Topology, args: &FileArgs) -> anyhow::Result<ExitCode> {
    let p = plan(host, topo)
        .await
        .with_context(|| format!("plan {}", args.file.display()))?;
    print_plan(&p, &args.file, host, args.json, false);
    Ok(if p.actions.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

#[allow(clippy::print_stdout)] // the command's report
async fn do_apply(
    host: &AnyHost,
    topo: &Topology,
    args: &FileArgs,
    destroy: bool,
) -> anyhow::Result<ExitCode> {
    let verb = if destroy { "destroy" } else { "apply" };
    let started = Instant::now();
    let p = if destroy {
        plan_destroy(host, topo).await
    } else {
        plan(host, topo).await
    }
    .with_context(|| format!("plan {}", args.file.display()))?;
    if !args.json {
        print_plan(&p, &args.file, host, false, destroy);
    }
    // Ctrl-C stops after the running action (it is idempotent; a new
    // apply resumes).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let json = args.json;
    let mut on_progress = |ev: Progress<'_>| {
        match ev {
            Progress::Started {
                index,
                total,
                action,
            } if !json => {
                print!("[{}/{total}] {action} ... ", index + 1);
                let _ = std::io::stdout().flush();
            }
            Progress::Finished { result, .. } if !json => {
                println!(
                    "{} ({} ms): {}",
                    paint(if result.ok { "ok" } else { "FAILED" }),
                    result.millis,
                    result.detail
                );
            }
            _ => {}
        }
        if stop.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let opts = ApplyOptions::new(
        std::time::Duration::from_secs(args.agent_timeout),
        std::time::Duration::from_secs(args.vif_timeout),
    );
    let report = apply_with(host, topo, &p.actions, &opts, &mut on_progress).await;
    // Confirm: the host must now match (or hold nothing of the file).
    let after = if destroy {
        plan_destroy(host, topo).await
    } else {
        plan(host, topo).await
    };
    let remaining = after.as_ref().map(|a| a.actions.clone()).ok();
    if json {
        output::print_json(
            if destroy {
                schema::DESTROY
            } else {
                schema::APPLY
            },
            &serde_json::json!({
                "actions": report.results,
                "changes": p.actions.len(),
                "completed": report.completed,
                "interrupted": report.interrupted,
                "remaining": remaining,
                "millis": started.elapsed().as_millis(),
            }),
        )?;
    }
    if let Some(f) = report.failure() {
        let idx = report.results.len();
        return Err(anyhow::anyhow!(
            "{verb} stopped at action {idx}/{} ({}): {}; run `drvdom {verb} {}` again to resume",
            p.actions.len(),
            f.action,
            f.detail,
            args.file.display()
        ));
    }
    if report.interrupted {
        return Err(anyhow::anyhow!(
            "{verb} interrupted after {} of {} actions; run it again to resume",
            report.results.len(),
            p.actions.len()
        ));
    }
    let remaining = after.with_context(|| format!("check the host after {verb}"))?;
    if !remaining.actions.is_empty() {
        if !json {
            print_plan(&remaining, &args.file, host, false, destroy);
        }
        return Err(anyhow::anyhow!(
            "after {verb} the host still needs {} action(s) (see above)",
            remaining.actions.len()
        ));
    }
    if !json {
        println!(
            "{verb} complete: {} action(s) in {:.1} s; {}",
            p.actions.len(),
            started.elapsed().as_secs_f64(),
            if destroy {
                "nothing of the file is left"
            } else {
                "the host matches the file"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `verify`.
#[allow(clippy::print_stdout)] // the command's report
pub fn run_verify(args: FileArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let host = host::open(lab.as_deref()).await?;
        let loaded = host::load(&args.file, host.is_real(), args.json)?;
        let json = args.json;
        let started = Instant::now();
        let mut last = Instant::now();
        let mut line = |c: &topology::verify::Check| {
            if !json {
                let ms = last.elapsed().as_millis();
                last = Instant::now();
                let st = match c.status {
                    Status::Pass => "PASS",
                    Status::Fail => "FAIL",
                };
                println!(
                    "{} {:<18} {:<28} {} ({ms} ms)",
                    paint(st),
                    c.check,
                    c.target,
                    c.detail
                );
            }
        };
        let r = verify(&host, &loaded.topology, &mut line)
            .await
            .with_context(|| format!("verify {}", args.file.display()))?;
        if json {
            output::print_json(
                schema::VERIFY,
                &serde_json::json!({
                    "checks": r.checks, "passed": r.passed, "failed": r.failed,
                    "notes": r.notes, "ok": r.ok(),
                }),
            )?;
        } else {
            for n in &r.notes {
                println!("note: {n}");
            }
            println!(
                "{} passed, {} failed ({:.1} s)",
                r.passed,
                r.failed,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(if r.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// Run `show`.
#[allow(clippy::print_stdout)] // the command's output
pub fn run_show(args: ShowArgs, lab: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let host = host::open(lab.as_deref()).await?;
        let topo = match &args.file {
            // show works without the xl.cfg files: it only reads.
            Some(f) => Some(host::load(f, false, args.format == Format::Json)?.topology),
            None => None,
        };
        let nics = topo
            .as_ref()
            .map(topology::observe::file_nics)
            .unwrap_or_default();
        let obs = topology::observe::observe(&host, &nics)
            .await
            .context("observe the host")?;
        let v = view(&obs, topo.as_ref());
        match args.format {
            Format::Text => print!("{}", to_text(&v)),
            Format::Json => output::print_json(schema::SHOW, &v)?,
            Format::Dot => print!("{}", to_dot(&v)),
            Format::Svg => print!("{}", svg(&to_dot(&v))?),
            Format::Libvirt => {
                let docs = to_libvirt(&v);
                for (i, (_, x)) in docs.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print!("{x}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Draw with Graphviz's `dot -Tsvg`.
fn svg(dot: &str) -> anyhow::Result<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            usage_error(format!(
                "cannot run Graphviz's `dot` ({e}): install it (Debian: apt-get install graphviz), \
                 or use --format dot"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .context("write the graph to dot")?;
    }
    let out = child.wait_with_output().context("run dot")?;
    if !out.status.success() {
        anyhow::bail!(
            "dot -Tsvg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("dot's output is not UTF-8")
}
