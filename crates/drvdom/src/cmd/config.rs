//! `drvdom config`: check, format and show xl.cfg files (crate `xlcfg`).
//!
//! Exit codes: 0 all good; 1 `check` found an invalid file, or `fmt --check`
//! found a file to reformat; 2 a file cannot be read, or (`fmt`, `show`)
//! does not parse as xl.cfg.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use xlcfg::{CheckedFile, Diagnostic, Document, DomainConfig, Kind, Severity};

use super::usage_error;

/// `println!` that ignores a closed stdout (`drvdom config show | head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `drvdom config` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Check xl.cfg files as `xl create` reads them, plus driver-domain
    /// sanity across the files given (backends, duplicate MACs, PCI devices
    /// given twice). Exit 0 when every file is valid.
    Check {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite files in canonical form, keeping comments. A file is only
    /// written when the new text parses back to the same settings.
    Fmt {
        /// Only report files that are not formatted (exit 1 if any).
        #[arg(long)]
        check: bool,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the typed view of a file: the domain and its devices.
    Show {
        /// The file.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Run `drvdom config`.
pub fn run(cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check { files, json } => check(&files, json),
        ConfigCmd::Fmt { check, files } => fmt(&files, check),
        ConfigCmd::Show { file, json } => show(&file, json),
    }
}

/// One file's outcome in `check`.
#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    diagnostics: Vec<Diagnostic>,
    #[serde(skip)]
    source: Option<Vec<u8>>,
}

#[derive(Serialize)]
struct CheckReport {
    valid: bool,
    errors: usize,
    warnings: usize,
    files: Vec<FileReport>,
}

fn file_name(p: &Path) -> String {
    p.display().to_string()
}

/// Read, parse and interpret one file.
fn load(path: &Path) -> (FileReport, Option<CheckedFile>, bool) {
    let name = file_name(path);
    let source = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let d = Diagnostic::unplaced(
                Severity::Error,
                Kind::Domain,
                format!("cannot read file: {e}"),
                &name,
            );
            return (
                FileReport {
                    file: name,
                    valid: false,
                    diagnostics: vec![d],
                    source: None,
                },
                None,
                true,
            );
        }
    };
    let doc = match Document::parse(&source, &name) {
        Ok(p) => p,
        Err(xlcfg::Error::Parse { diagnostics, .. }) => {
            return (
                FileReport {
                    file: name,
                    valid: false,
                    diagnostics,
                    source: Some(source),
                },
                None,
                false,
            );
        }
        Err(e) => {
            let d = Diagnostic::unplaced(Severity::Error, Kind::Syntax, e.to_string(), &name);
            return (
                FileReport {
                    file: name,
                    valid: false,
                    diagnostics: vec![d],
                    source: Some(source),
                },
                None,
                false,
            );
        }
    };
    let mut diags = doc.warnings;
    match DomainConfig::from_document(&doc.document, &name, &source) {
        Ok(i) => {
            diags.extend(i.warnings);
            let checked = CheckedFile {
                file: name.clone(),
                source: source.clone(),
                config: i.config,
            };
            (
                FileReport {
                    file: name,
                    valid: true,
                    diagnostics: diags,
                    source: Some(source),
                },
                Some(checked),
                false,
            )
        }
        Err(d) => {
            diags.extend(d);
            (
                FileReport {
                    file: name,
                    valid: false,
                    diagnostics: diags,
                    source: Some(source),
                },
                None,
                false,
            )
        }
    }
}

#[allow(clippy::print_stderr)] // diagnostics go to stderr
fn check(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    let mut checked = Vec::new();
    let mut where_checked = Vec::new();
    let mut unreadable = false;
    for (i, f) in files.iter().enumerate() {
        let (r, c, unread) = load(f);
        unreadable |= unread;
        if let Some(c) = c {
            checked.push(c);
            where_checked.push(i);
        }
        reports.push(r);
    }
    for (k, diags) in xlcfg::cross_check(&checked).into_iter().enumerate() {
        let r = &mut reports[where_checked[k]];
        if diags.iter().any(Diagnostic::is_error) {
            r.valid = false;
        }
        r.diagnostics.extend(diags);
    }
    let errors = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .filter(|d| d.is_error())
        .count();
    let warnings = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .filter(|d| !d.is_error())
        .count();
    let valid = reports.iter().all(|r| r.valid);
    if json {
        let report = CheckReport {
            valid,
            errors,
            warnings,
            files: reports,
        };
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).context("encode the report as JSON")?
        );
    } else {
        let mut err = std::io::stderr().lock();
        for r in &reports {
            for d in &r.diagnostics {
                let _ = writeln!(err, "{}", d.render(r.source.as_deref()));
            }
        }
        for r in &reports {
            outln!("{}: {}", r.file, if r.valid { "ok" } else { "INVALID" });
        }
        outln!(
            "{} file(s) checked: {errors} error(s), {warnings} warning(s)",
            reports.len()
        );
    }
    if unreadable {
        return Err(usage_error("some files could not be read"));
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Settings compared for `fmt`'s safety check: each key's operator and value.
fn same_settings(a: &Document, b: &Document) -> anyhow::Result<bool> {
    let (sa, sb) = (a.settings()?, b.settings()?);
    if sa.len() != sb.len() {
        return Ok(false);
    }
    Ok(sa.keys().all(|k| match (sa.get(k), sb.get(k)) {
        (Some(x), Some(y)) => x.op == y.op && x.value == y.value,
        _ => false,
    }))
}

#[allow(clippy::print_stderr)] // diagnostics go to stderr
fn fmt(files: &[PathBuf], check_only: bool) -> anyhow::Result<ExitCode> {
    let mut unformatted = 0;
    let mut invalid = 0;
    for path in files {
        let name = file_name(path);
        let source =
            std::fs::read(path).map_err(|e| usage_error(format!("cannot read {name}: {e}")))?;
        let doc = match Document::parse(&source, &name) {
            Ok(p) => p.document,
            Err(xlcfg::Error::Parse { diagnostics, .. }) => {
                eprint!("{}", xlcfg::render_all(&diagnostics, Some(&source)));
                eprintln!("{name}: not formatted: it does not parse");
                invalid += 1;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("parse {name}")),
        };
        let out = doc.canonical().to_bytes();
        if out == source {
            continue;
        }
        // Never write text that does not mean the same to xl.
        let back = Document::parse(&out, &name)
            .map_err(|e| {
                anyhow::anyhow!(
                    "canonical form of {name} does not parse ({e}); file left unchanged"
                )
            })?
            .document;
        if !same_settings(&doc, &back)? {
            anyhow::bail!("canonical form of {name} changes its settings; file left unchanged");
        }
        unformatted += 1;
        if check_only {
            outln!("would reformat {name}");
            continue;
        }
        write_atomically(path, &out).with_context(|| format!("write {name}"))?;
        outln!("formatted {name}");
    }
    if invalid > 0 {
        return Err(usage_error(format!("{invalid} file(s) do not parse")));
    }
    Ok(if check_only && unformatted > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Write next to the file, then rename over it, keeping its permissions.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{base}.drvdom-fmt.{}", std::process::id()));
    let perms = std::fs::metadata(path).map(|m| m.permissions()).ok();
    std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    if let Some(p) = perms {
        std::fs::set_permissions(&tmp, p)
            .with_context(|| format!("set permissions of {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("rename {} over {}", tmp.display(), path.display()))?;
    Ok(())
}

#[derive(Serialize)]
struct ShowReport<'a> {
    file: String,
    domain: &'a DomainConfig,
    warnings: &'a [Diagnostic],
}

fn spec_or_err(r: xlcfg::Result<String>) -> String {
    r.unwrap_or_else(|e| format!("<{e}>"))
}

#[allow(clippy::print_stderr)] // diagnostics go to stderr
fn show(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (report, checked, unreadable) = load(path);
    if unreadable {
        return Err(usage_error(report.diagnostics.first().map_or_else(
            || "cannot read file".to_owned(),
            |d| format!("{}: {}", d.file, d.message),
        )));
    }
    let Some(c) = checked else {
        eprint!(
            "{}",
            xlcfg::render_all(&report.diagnostics, report.source.as_deref())
        );
        return Err(usage_error(format!("{}: not a valid xl.cfg", report.file)));
    };
    let cfg = &c.config;
    if json {
        let r = ShowReport {
            file: report.file.clone(),
            domain: cfg,
            warnings: &report.diagnostics,
        };
        outln!(
            "{}",
            serde_json::to_string_pretty(&r).context("encode the view as JSON")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for d in &report.diagnostics {
        eprintln!("{}", d.render(report.source.as_deref()));
    }
    outln!("name:          {}", cfg.name);
    outln!("type:          {}", cfg.domain_type.as_str());
    if let Some(u) = &cfg.uuid {
        outln!("uuid:          {u}");
    }
    outln!(
        "driver_domain: {}",
        if cfg.is_driver_domain() { "yes" } else { "no" }
    );
    if let Some(m) = cfg.memory {
        outln!(
            "memory:        {m} MiB (max {} MiB)",
            cfg.maxmem.unwrap_or(m)
        );
    }
    if let Some(v) = cfg.vcpus {
        outln!("vcpus:         {v} (max {})", cfg.maxvcpus.unwrap_or(v));
    }
    for (k, v) in [
        ("kernel", &cfg.kernel),
        ("ramdisk", &cfg.ramdisk),
        ("cmdline", &cfg.cmdline),
        ("bootloader", &cfg.bootloader),
    ] {
        if let Some(v) = v {
            outln!("{:<14} {v}", format!("{k}:"));
        }
    }
    let a = &cfg.actions;
    for (k, v) in [
        ("on_poweroff", a.poweroff),
        ("on_reboot", a.reboot),
        ("on_watchdog", a.watchdog),
        ("on_crash", a.crash),
        ("on_soft_reset", a.soft_reset),
    ] {
        if let Some(v) = v {
            outln!("{:<14} {}", format!("{k}:"), v.as_str());
        }
    }
    outln!("pci:           {}", cfg.pcis.len());
    for p in &cfg.pcis {
        let flags: Vec<&str> = [
            ("permissive", p.effective_permissive),
            ("msitranslate", p.effective_msitranslate),
            ("seize", p.effective_seize),
            ("power_mgmt", p.effective_power_mgmt),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
        outln!(
            "  {}  [{}] rdm_policy={}",
            spec_or_err(p.spec.to_spec()),
            flags.join(","),
            p.effective_rdm_policy.as_str()
        );
    }
    outln!("vif:           {}", cfg.vifs.len());
    for n in &cfg.vifs {
        outln!("  devid {}: {}", n.devid, spec_or_err(n.spec.to_spec()));
    }
    outln!("disk:          {}", cfg.disks.len());
    for d in &cfg.disks {
        outln!("  {}", spec_or_err(d.spec.to_spec()));
    }
    Ok(ExitCode::SUCCESS)
}
