//! `drvdom config`: check, format and show xl.cfg files (crate `xlcfg`).
//!
//! Exit codes (the same for every subcommand): 0 all good; 1 a file has
//! errors (it does not parse, or `check` found it invalid), or `fmt
//! --check`/`--diff` found a file to reformat; 2 a file cannot be read or
//! the command line is wrong. `-` names stdin (and, for `fmt`, stdout).
//!
//! Unknown keys (xl ignores them silently) are warnings with code
//! `XLCFG-UNKNOWN-KEY` and a "did you mean"; `check --strict` makes them,
//! and `backend=` names matching no file checked, errors.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use xlcfg::{CheckedFile, Diagnostic, Document, DomainConfig, Kind, Severity};

use super::output::{self, Code, cli_error, cli_error_with, schema};

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
    ///
    /// Unknown keys are warned about (with "did you mean"); --strict
    /// refuses them, and backends that name no file checked.
    Check {
        /// The files (`-`: stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Unknown keys and unknown backends are errors, not warnings.
        #[arg(long)]
        strict: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite files in canonical form, keeping comments. A file is only
    /// written when the new text parses back to the same settings. `-`
    /// reads stdin and writes the result to stdout.
    Fmt {
        /// Only report files that are not formatted (exit 1 if any).
        #[arg(long)]
        check: bool,
        /// Print what would change as a unified diff, write nothing (exit
        /// 1 if anything would change).
        #[arg(long, conflicts_with = "check")]
        diff: bool,
        /// The files (`-`: stdin to stdout).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the typed view of a file: the domain and its devices.
    Show {
        /// The file (`-`: stdin).
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Run `drvdom config`.
pub fn run(cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check {
            files,
            strict,
            json,
        } => check(&files, strict, json),
        ConfigCmd::Fmt { check, diff, files } => fmt(&files, check, diff),
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
    if is_stdio(p) {
        "<stdin>".to_string()
    } else {
        p.display().to_string()
    }
}

/// `-`: stdin (and stdout for `fmt`).
fn is_stdio(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Read a file, or stdin for `-`.
fn read_input(p: &Path) -> std::io::Result<Vec<u8>> {
    if is_stdio(p) {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)?;
        Ok(b)
    } else {
        std::fs::read(p)
    }
}

/// Read, parse and interpret one file.
fn load(path: &Path) -> (FileReport, Option<CheckedFile>, bool) {
    let name = file_name(path);
    let source = match read_input(path) {
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
fn check(files: &[PathBuf], strict: bool, json: bool) -> anyhow::Result<ExitCode> {
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
    if strict {
        for r in &mut reports {
            for d in &mut r.diagnostics {
                if matches!(
                    d.code,
                    Some(xlcfg::keys::UNKNOWN_KEY | xlcfg::UNKNOWN_BACKEND)
                ) {
                    d.severity = Severity::Error;
                    d.message.push_str(" (--strict)");
                    r.valid = false;
                }
            }
        }
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
        output::print_json(schema::CONFIG_CHECK, &report)?;
    } else {
        let mut err = std::io::stderr().lock();
        for r in &reports {
            for d in &r.diagnostics {
                let _ = writeln!(err, "{}", d.render(r.source.as_deref()));
            }
        }
        for r in &reports {
            outln!(
                "{}: {}",
                r.file,
                output::paint(if r.valid { "ok" } else { "INVALID" })
            );
        }
        outln!(
            "{} file(s) checked: {errors} error(s), {warnings} warning(s)",
            reports.len()
        );
    }
    if unreadable && !json {
        return Err(cli_error(Code::NotFound, "some files could not be read"));
    }
    if unreadable {
        // The report (with the unreadable files' diagnostics) is printed.
        return Ok(ExitCode::from(output::exit::USAGE));
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
fn fmt(files: &[PathBuf], check_only: bool, diff: bool) -> anyhow::Result<ExitCode> {
    let mut unformatted = 0;
    let mut invalid = 0;
    for path in files {
        let name = file_name(path);
        let source = read_input(path)
            .map_err(|e| cli_error(Code::NotFound, format!("cannot read {name}: {e}")))?;
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
        if out != source {
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
        }
        if is_stdio(path) && !check_only && !diff {
            // A filter: the canonical text (or the same text) on stdout.
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&out);
            continue;
        }
        if out == source {
            continue;
        }
        unformatted += 1;
        if diff {
            outln!(
                "{}",
                unified_diff(
                    &name,
                    &String::from_utf8_lossy(&source),
                    &String::from_utf8_lossy(&out)
                )
                .trim_end()
            );
            continue;
        }
        if check_only {
            outln!("would reformat {name}");
            continue;
        }
        write_atomically(path, &out).with_context(|| format!("write {name}"))?;
        outln!("formatted {name}");
    }
    if invalid > 0 {
        return Err(cli_error(
            Code::InvalidFile,
            format!("{invalid} file(s) do not parse"),
        ));
    }
    Ok(if (check_only || diff) && unformatted > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A unified diff (`diff -u` form, 3 lines of context) of two texts.
fn unified_diff(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table, from the end (files are small).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (' ', '-', '+') with line indexes.
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            ops.push(('+', i, j));
            j += 1;
        } else {
            ops.push(('-', i, j));
            i += 1;
        }
    }
    const CONTEXT: usize = 3;
    let mut out = format!("--- {name}\n+++ {name} (formatted)\n");
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (a0, b0) = (hunk[0].1, hunk[0].2);
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            a0 + usize::from(a_len > 0),
            b0 + usize::from(b_len > 0)
        ));
        for &(op, ai, bj) in hunk {
            let line = if op == '+' { b[bj] } else { a[ai] };
            out.push(op);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
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
        return Err(cli_error(
            Code::NotFound,
            report.diagnostics.first().map_or_else(
                || "cannot read file".to_owned(),
                |d| format!("{}: {}", d.file, d.message),
            ),
        ));
    }
    let Some(c) = checked else {
        if !json {
            eprint!(
                "{}",
                xlcfg::render_all(&report.diagnostics, report.source.as_deref())
            );
        }
        return Err(cli_error_with(
            Code::InvalidFile,
            format!("{}: not a valid xl.cfg", report.file),
            serde_json::json!({ "diagnostics": report.diagnostics }),
        ));
    };
    let cfg = &c.config;
    if json {
        let r = ShowReport {
            file: report.file.clone(),
            domain: cfg,
            warnings: &report.diagnostics,
        };
        output::print_json(schema::CONFIG_SHOW, &r)?;
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
