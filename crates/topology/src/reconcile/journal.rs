//! The event journal: every device state change and every reconcile
//! action, one JSON object per line, appended by the reconcile daemon.
//!
//! Why a file written by the daemon (and not xenstore): the history must
//! outlive the domains it is about (a guest that lost its network asks
//! "what happened to my backend?" after that backend's xenstore nodes are
//! gone), xenstore has per-node and per-domain quotas meant for live state,
//! not logs, and a file is what `journalctl`-minded users can `tail`,
//! `grep` and ship. The daemon is the one writer (one process holds it
//! open in append mode, each event one `write` of one line, so a reader
//! never sees half a line for lines under `PIPE_BUF`-like sizes and a
//! SIGKILL loses at most the event being written). Live watches are how
//! the daemon learns of changes; `drvdom events --follow` reads the file
//! as it grows.
//!
//! Size: the file is rotated to `<file>.1` when it passes
//! [`ROTATE_BYTES`] (one old generation kept).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Rotate the journal past this size.
pub const ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// The real host's journal.
pub const DEFAULT_JOURNAL: &str = "/var/lib/drvdom/events.jsonl";

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A device's xenbus state changed (frontend or backend) or its
    /// hotplug status.
    State,
    /// A domain appeared or disappeared.
    Domain,
    /// Something the reconcile daemon (or `vif move`) did.
    Action,
    /// Something it decided not to do yet, and why (waiting).
    Wait,
    /// An action that failed.
    Error,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// When, as RFC 3339 UTC with milliseconds (for people and `jq`).
    pub time: String,
    /// What kind of event.
    pub kind: EventKind,
    /// The domain it is about (a guest for a vif, else the domain).
    pub domain: String,
    /// That domain's id when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domid: Option<u16>,
    /// The device (`vif/0`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// What happened (`backend Connected`, `re-create`, `cleanup` ...).
    pub what: String,
    /// Why (what was observed).
    pub reason: String,
}

impl Event {
    /// An event now.
    pub fn now(
        kind: EventKind,
        domain: impl Into<String>,
        domid: Option<u16>,
        device: Option<String>,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) -> Event {
        let ts_ms = now_ms();
        Event {
            ts_ms,
            time: rfc3339_ms(ts_ms),
            kind,
            domain: domain.into(),
            domid,
            device,
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// One human line: `time  kind  domain[(id)] device  what: reason`.
    pub fn line(&self) -> String {
        let dom = match self.domid {
            Some(d) => format!("{}({d})", self.domain),
            None => self.domain.clone(),
        };
        let kind = match self.kind {
            EventKind::State => "state",
            EventKind::Domain => "domain",
            EventKind::Action => "action",
            EventKind::Wait => "wait",
            EventKind::Error => "error",
        };
        format!(
            "{}  {kind:<6}  {dom} {}  {}: {}",
            self.time,
            self.device.as_deref().unwrap_or("-"),
            self.what,
            self.reason
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `2026-01-02T03:04:05.678Z` for a time in ms since the epoch.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// An append-only journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Journal {
    /// Open (create) the journal at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Host(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let file = open_append(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// A journal that records nothing (no file given).
    pub fn disabled() -> Journal {
        Journal {
            path: PathBuf::new(),
            file: None,
        }
    }

    /// Where it writes.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.path.as_path())
    }

    /// Append one event (one line, one write). Errors are logged, never
    /// fatal: losing history must not stop reconciling.
    pub fn append(&mut self, ev: &Event) {
        tracing::info!(
            kind = ?ev.kind,
            domain = %ev.domain,
            device = ev.device.as_deref().unwrap_or("-"),
            what = %ev.what,
            reason = %ev.reason,
            "event"
        );
        let Some(f) = self.file.as_mut() else { return };
        let mut line = match serde_json::to_string(ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an event");
                return;
            }
        };
        line.push('\n');
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the journal");
            return;
        }
        if f.metadata().map(|m| m.len()).unwrap_or(0) > ROTATE_BYTES {
            let old = self.path.with_extension("jsonl.1");
            if std::fs::rename(&self.path, &old).is_ok() {
                match open_append(&self.path) {
                    Ok(nf) => self.file = Some(nf),
                    Err(e) => tracing::warn!(error = %e, "cannot reopen the journal"),
                }
            }
        }
    }
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Host(format!("cannot open the journal {}: {e}", path.display())))
}

/// Read every event of a journal (and its rotated generation first);
/// lines that do not parse are skipped (a torn last line after a crash).
pub fn read_all(path: &Path) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    for p in [path.with_extension("jsonl.1"), path.to_path_buf()] {
        match std::fs::read_to_string(&p) {
            Ok(text) => out.extend(parse_lines(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Host(format!("cannot read {}: {e}", p.display())));
            }
        }
    }
    Ok(out)
}

/// The events in a chunk of journal text (complete lines only).
pub fn parse_lines(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn journal_round_trip_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/events.jsonl");
        let mut j = Journal::open(&p).unwrap();
        let ev = Event::now(
            EventKind::Action,
            "web",
            Some(5),
            Some("vif/0".into()),
            "re-create",
            "netdd is back as domain 7",
        );
        j.append(&ev);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"ts_ms\": 1, \"tor")
            .unwrap();
        let got = read_all(&p).unwrap();
        assert_eq!(got, vec![ev.clone()]);
        assert!(ev.line().contains("web(5) vif/0  re-create: netdd is back"));
    }
}
