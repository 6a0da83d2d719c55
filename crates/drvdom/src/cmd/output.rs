//! The CLI's interface for people and scripts, in one place: JSON objects
//! that start with their `schema`, errors with stable codes (also as JSON),
//! exit statuses, and the colour policy. Every command renders through
//! this module; docs/json.md documents what it produces.
//!
//! * JSON: [`print_json`] (one pretty object) and [`print_json_line`] (one
//!   compact line, for JSON Lines streams such as `lab up --json`) wrap any
//!   `Serialize` body whose form is an object into
//!   `{"schema": "drvdom/<name>/<version>", ...body}` with `schema` first.
//!   Schema names are the constants in [`schema`].
//! * Errors: build them with [`usage_error`], [`cli_error`] (a [`Code`]),
//!   or any `anyhow` error (code `DRVDOM-FAILED`); [`report_error`] prints
//!   `error: …` on stderr, or under `--json` the object
//!   `{"schema":"drvdom/error/1","error":{"code","message","causes",…}}` on
//!   stdout, and [`exit_code_for`] gives the status.
//! * Exit statuses: [`exit`].
//! * Colour: [`init_colour`] once in `main`; then [`paint`] colours
//!   PASS/FAIL/WARN/... for stdout only when stdout is a terminal and
//!   `NO_COLOR` is unset (or `--color always`); [`stderr_colour`] tells the
//!   log subscriber the same for stderr.

// Parts are used by commands as they adopt the module (branches merge it).
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

/// Exit statuses, the same for every command (docs/json.md).
pub mod exit {
    /// Success: done, healthy, nothing found wrong.
    pub const OK: u8 = 0;
    /// The command ran and found something wrong or failed: a check
    /// failed, a status is unhealthy, an action failed or timed out.
    pub const FAILED: u8 = 1;
    /// Usage or input error: bad arguments, a name that does not exist,
    /// a file that cannot be read, input refused before anything was
    /// written. (The host-file commands follow Terraform instead: every
    /// error is 1.)
    pub const USAGE: u8 = 2;
    /// `plan`: changes pending (Terraform's `-detailed-exitcode`).
    pub const PENDING: u8 = 2;
}

/// The schema names of every JSON output (`"schema"`, the first key).
/// Bump the trailing version when a field changes meaning or goes away;
/// new fields do not bump it.
pub mod schema {
    /// Any error under `--json`.
    pub const ERROR: &str = "drvdom/error/1";
    /// `drvdom plan --json`.
    pub const PLAN: &str = "drvdom/plan/1";
    /// `drvdom apply --json`.
    pub const APPLY: &str = "drvdom/apply/1";
    /// `drvdom destroy --json`.
    pub const DESTROY: &str = "drvdom/destroy/1";
    /// `drvdom verify --json`.
    pub const VERIFY: &str = "drvdom/verify/1";
    /// `drvdom show --format json`.
    pub const SHOW: &str = "drvdom/show/1";
    /// `drvdom config check --json`.
    pub const CONFIG_CHECK: &str = "drvdom/config-check/1";
    /// `drvdom config show --json`.
    pub const CONFIG_SHOW: &str = "drvdom/config-show/1";
    /// `drvdom pci list --json`.
    pub const PCI_LIST: &str = "drvdom/pci-list/1";
    /// `drvdom pci show --json`.
    pub const PCI_SHOW: &str = "drvdom/pci-show/1";
    /// `drvdom pci assign --json`.
    pub const PCI_ASSIGN: &str = "drvdom/pci-assign/1";
    /// `drvdom pci release --json`.
    pub const PCI_RELEASE: &str = "drvdom/pci-release/1";
    /// `drvdom pci assignable --json`.
    pub const PCI_ASSIGNABLE: &str = "drvdom/pci-assignable/1";
    /// `drvdom pci cmdline --json`.
    pub const PCI_CMDLINE: &str = "drvdom/pci-cmdline/1";
    /// `drvdom doctor --json`.
    pub const DOCTOR: &str = "drvdom/doctor/1";
    /// One line of `drvdom lab up --json` (JSON Lines).
    pub const LAB_UP_EVENT: &str = "drvdom/lab-up-event/1";
    /// `drvdom lab status --json`.
    pub const LAB_STATUS: &str = "drvdom/lab-status/1";
    /// `drvdom lab list --json`.
    pub const LAB_LIST: &str = "drvdom/lab-list/1";
    /// `drvdom lab down --json`.
    pub const LAB_DOWN: &str = "drvdom/lab-down/1";
    /// `drvdom lab restart --json`.
    pub const LAB_RESTART: &str = "drvdom/lab-restart/1";
    /// `drvdom vif attach --json`.
    pub const VIF_ATTACH: &str = "drvdom/vif-attach/1";
    /// `drvdom vif detach --json`.
    pub const VIF_DETACH: &str = "drvdom/vif-detach/1";
    /// `drvdom bridge show --json`.
    pub const BRIDGE_SHOW: &str = "drvdom/bridge-show/1";
    /// `drvdom vif move --json`.
    pub const VIF_MOVE: &str = "drvdom/vif-move/1";
    /// `drvdom reconcile --status --json`.
    pub const RECONCILE_STATUS: &str = "drvdom/reconcile-status/1";
    /// `drvdom events --json`: one object per line.
    pub const EVENT: &str = "drvdom/event/1";
}

/// Stable error codes (`error.code` under `--json`), each with its exit
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad arguments or option values (exit 2).
    Usage,
    /// A lab, domain, device, bridge or process that does not exist (exit 2).
    NotFound,
    /// Input refused before anything was written: a file that does not
    /// parse, a multicast MAC, a backend that is not a driver domain (exit 2).
    Invalid,
    /// A file was read and has errors, each a diagnostic with its place
    /// and code (exit 1, like a failed check).
    InvalidFile,
    /// The command needs a Xen host and this is not one (exit 2).
    NotXen,
    /// The command needs root (exit 2).
    NeedsRoot,
    /// Something did not happen in time; what was done was undone (exit 1).
    Timeout,
    /// A process the command started exited (exit 1).
    ChildExited,
    /// Anything else that failed at run time (exit 1).
    Failed,
}

impl Code {
    /// The stable string (`DRVDOM-USAGE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Usage => "DRVDOM-USAGE",
            Code::NotFound => "DRVDOM-NOT-FOUND",
            Code::Invalid => "DRVDOM-INVALID",
            Code::InvalidFile => "DRVDOM-INVALID-FILE",
            Code::NotXen => "DRVDOM-NOT-XEN",
            Code::NeedsRoot => "DRVDOM-NEEDS-ROOT",
            Code::Timeout => "DRVDOM-TIMEOUT",
            Code::ChildExited => "DRVDOM-CHILD-EXITED",
            Code::Failed => "DRVDOM-FAILED",
        }
    }

    /// Its exit status.
    pub fn exit(self) -> u8 {
        match self {
            Code::Usage | Code::NotFound | Code::Invalid | Code::NotXen | Code::NeedsRoot => {
                exit::USAGE
            }
            Code::InvalidFile | Code::Timeout | Code::ChildExited | Code::Failed => exit::FAILED,
        }
    }

    /// Every code, for the documentation test.
    pub const ALL: [Code; 9] = [
        Code::Usage,
        Code::NotFound,
        Code::Invalid,
        Code::InvalidFile,
        Code::NotXen,
        Code::NeedsRoot,
        Code::Timeout,
        Code::ChildExited,
        Code::Failed,
    ];
}

/// An error with a stable code, and optionally machine-readable details
/// (diagnostics, known names) shown under `--json`.
#[derive(Debug)]
pub struct CliError {
    /// The code.
    pub code: Code,
    /// The message (lowercase, names the bad value, says what to do).
    pub message: String,
    /// Extra fields of the JSON error object (e.g. `diagnostics`, `known`).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// An error with `code`.
pub fn cli_error(code: Code, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CliError {
        code,
        message: msg.into(),
        details: serde_json::Map::new(),
    })
}

/// An error with `code` and extra JSON fields (`{"known": [...]}`, ...).
pub fn cli_error_with(
    code: Code,
    msg: impl Into<String>,
    details: serde_json::Value,
) -> anyhow::Error {
    let details = match details {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("details".into(), other);
            m
        }
    };
    anyhow::Error::new(CliError {
        code,
        message: msg.into(),
        details,
    })
}

/// A usage error (exit 2, `DRVDOM-USAGE`).
pub fn usage_error(msg: impl Into<String>) -> anyhow::Error {
    cli_error(Code::Usage, msg)
}

/// "no X NAME; known: a, b" as a `DRVDOM-NOT-FOUND` error listing the
/// known names (also under `known` in JSON).
pub fn not_found(what: &str, name: &str, known: &[String], hint: &str) -> anyhow::Error {
    let list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    let mut msg = format!("no {what} {name:?} (known: {list})");
    if !hint.is_empty() {
        msg.push_str("; ");
        msg.push_str(hint);
    }
    cli_error_with(
        Code::NotFound,
        msg,
        serde_json::json!({ "name": name, "known": known }),
    )
}

/// The first [`CliError`] in the chain.
pub fn cli_error_of(err: &anyhow::Error) -> Option<&CliError> {
    err.chain().find_map(|e| e.downcast_ref::<CliError>())
}

/// The error's code: its first [`CliError`]'s, else `Failed`.
pub fn code_of(err: &anyhow::Error) -> Code {
    cli_error_of(err).map_or(Code::Failed, |e| e.code)
}

/// The exit status for an error.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    code_of(err).exit()
}

/// The `drvdom/error/1` object for an error, as JSON text (`schema` first).
pub fn error_json(err: &anyhow::Error) -> String {
    let mut e = serde_json::Map::new();
    e.insert("code".into(), code_of(err).as_str().into());
    e.insert("message".into(), format!("{err:#}").into());
    e.insert(
        "causes".into(),
        err.chain()
            .map(|c| serde_json::Value::from(c.to_string()))
            .collect(),
    );
    if let Some(c) = cli_error_of(err) {
        for (k, v) in &c.details {
            e.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let body = serde_json::json!({ "error": e });
    to_json(schema::ERROR, &body).unwrap_or_else(|_| {
        format!(
            r#"{{"schema":"{}","error":{{"code":"DRVDOM-FAILED","message":"error not encodable"}}}}"#,
            schema::ERROR
        )
    })
}

/// Print an error the way the command line asked: JSON on stdout under
/// `--json`, else `error: a: b: c` on stderr (red on a terminal).
#[allow(clippy::print_stderr)] // the binary's one error report
pub fn report_error(err: &anyhow::Error, json: bool) {
    if json {
        let _ = writeln!(std::io::stdout().lock(), "{}", error_json(err));
        return;
    }
    let label = if stderr_colour() {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    eprintln!("{label}: {err:#}");
}

/// `{"schema": …, …body}` with `schema` first.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize + ?Sized> {
    schema: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// The JSON text of `body` under `schema` (compact). `body` must
/// serialize as an object.
pub fn to_json(schema: &str, body: &(impl Serialize + ?Sized)) -> anyhow::Result<String> {
    serde_json::to_string(&Envelope { schema, body })
        .map_err(|e| anyhow::anyhow!("encode {schema} as JSON: {e}"))
}

/// Print `body` under `schema` as one pretty JSON object on stdout (a
/// closed stdout is not an error).
pub fn print_json(schema: &str, body: &(impl Serialize + ?Sized)) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&Envelope { schema, body })
        .map_err(|e| anyhow::anyhow!("encode {schema} as JSON: {e}"))?;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// Print `body` under `schema` as one line (JSON Lines) and flush, so a
/// reader sees each event as it happens.
pub fn print_json_line(schema: &str, body: &(impl Serialize + ?Sized)) -> anyhow::Result<()> {
    let text = to_json(schema, body)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
    Ok(())
}

/// True if the command line asks for JSON (`--json`, `--format json`,
/// `--format=json`) before a `--` (after which arguments belong to
/// another program). Used before clap parses, so that even a usage error
/// is reported as JSON.
pub fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    let mut prev_format = false;
    for a in args {
        let Some(s) = a.to_str() else {
            prev_format = false;
            continue;
        };
        if s == "--" {
            return false;
        }
        if s == "--json" || s == "--format=json" || (prev_format && s == "json") {
            return true;
        }
        prev_format = s == "--format";
    }
    false
}

/// When to colour output.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always (even when piped).
    Always,
    /// Never.
    Never,
}

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
static STDOUT_COLOUR: AtomicU8 = AtomicU8::new(UNSET);
static STDERR_COLOUR: AtomicU8 = AtomicU8::new(UNSET);

fn decide(choice: ColorChoice, is_tty: bool, no_color: bool, dumb: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty && !no_color && !dumb,
    }
}

/// Decide colour for stdout and stderr once (`NO_COLOR`: any non-empty
/// value, <https://no-color.org>; `TERM=dumb` too).
pub fn init_colour(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let set = |cell: &AtomicU8, tty: bool| {
        cell.store(
            if decide(choice, tty, no_color, dumb) {
                ON
            } else {
                OFF
            },
            Ordering::Relaxed,
        );
    };
    set(&STDOUT_COLOUR, std::io::stdout().is_terminal());
    set(&STDERR_COLOUR, std::io::stderr().is_terminal());
}

/// Colour stdout? (false until [`init_colour`]).
pub fn stdout_colour() -> bool {
    STDOUT_COLOUR.load(Ordering::Relaxed) == ON
}

/// Colour stderr (log lines, errors)?
pub fn stderr_colour() -> bool {
    STDERR_COLOUR.load(Ordering::Relaxed) == ON
}

/// The SGR colour for a status word: green for good, red for bad, yellow
/// for caveats, dim for skipped; `None` for other words.
fn sgr(word: &str) -> Option<&'static str> {
    match word.trim() {
        "PASS" | "ok" | "OK" | "running" | "healthy" => Some("32"),
        "FAIL" | "FAILED" | "DEAD" | "INVALID" | "unhealthy" => Some("1;31"),
        "WARN" | "warning" => Some("33"),
        "SKIP" | "note" => Some("2"),
        _ => None,
    }
}

/// `word` coloured for stdout when colour is on (the padding is kept
/// outside the escape codes so columns line up).
pub fn paint(word: &str) -> String {
    paint_if(stdout_colour(), word)
}

/// `word` coloured when `on`.
pub fn paint_if(on: bool, word: &str) -> String {
    match (on, sgr(word)) {
        (true, Some(code)) => {
            let trimmed = word.trim_end();
            let pad = &word[trimmed.len()..];
            format!("\x1b[{code}m{trimmed}\x1b[0m{pad}")
        }
        _ => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_the_first_key() {
        #[derive(Serialize)]
        struct B {
            zeta: u32,
            alpha: &'static str,
        }
        let s = to_json(
            schema::LAB_LIST,
            &B {
                zeta: 1,
                alpha: "x",
            },
        )
        .unwrap();
        assert_eq!(s, r#"{"schema":"drvdom/lab-list/1","zeta":1,"alpha":"x"}"#);
        let v = to_json(schema::PLAN, &serde_json::json!({"b": 1, "a": 2})).unwrap();
        assert!(v.starts_with(r#"{"schema":"drvdom/plan/1","#), "{v}");
    }

    #[test]
    fn errors_carry_codes_and_exit_statuses() {
        let e = not_found("lab", "typo", &["a".into(), "b".into()], "");
        assert_eq!(exit_code_for(&e), exit::USAGE);
        let text = error_json(&e.context("lab status"));
        assert!(text.starts_with(r#"{"schema":"drvdom/error/1""#), "{text}");
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["schema"], "drvdom/error/1");
        assert_eq!(j["error"]["code"], "DRVDOM-NOT-FOUND");
        assert_eq!(j["error"]["known"][1], "b");
        assert!(
            j["error"]["message"]
                .as_str()
                .unwrap()
                .contains("known: a, b")
        );
        let plain = anyhow::anyhow!("boom");
        assert_eq!(exit_code_for(&plain), exit::FAILED);
        let j: serde_json::Value = serde_json::from_str(&error_json(&plain)).unwrap();
        assert_eq!(j["error"]["code"], "DRVDOM-FAILED");
    }

    #[test]
    fn json_is_seen_before_a_double_dash_only() {
        let a = |v: &[&str]| json_requested(v.iter().map(OsString::from));
        assert!(a(&["drvdom", "lab", "status", "--json"]));
        assert!(a(&["drvdom", "show", "--format", "json"]));
        assert!(a(&["drvdom", "show", "--format=json"]));
        assert!(!a(&["drvdom", "show", "--format", "dot"]));
        assert!(!a(&["drvdom", "lab", "exec", "g", "--", "x", "--json"]));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(decide(ColorChoice::Auto, true, false, false));
        assert!(!decide(ColorChoice::Auto, false, false, false));
        assert!(!decide(ColorChoice::Auto, true, true, false));
        assert!(!decide(ColorChoice::Auto, true, false, true));
        assert!(decide(ColorChoice::Always, false, true, false));
        assert!(!decide(ColorChoice::Never, true, false, false));
        assert_eq!(paint_if(true, "PASS  "), "\x1b[32mPASS\x1b[0m  ");
        assert_eq!(paint_if(false, "FAIL"), "FAIL");
        assert_eq!(paint_if(true, "route"), "route");
    }
}
