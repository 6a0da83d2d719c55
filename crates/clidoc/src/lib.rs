//! Man pages for the drvdom binaries, generated from their clap
//! definitions with `clap_mangen`, so that a new subcommand or option gets
//! its page with no extra step.
//!
//! [`write_man_pages`] writes one page per command and per visible
//! subcommand, named the way git names its pages: `drvdom.1`,
//! `drvdom-pci.1`, `drvdom-pci-assign.1`. Each page says which package
//! version it documents and points back to its parent page. Hidden
//! subcommands (packaging aids) get no page. The binaries call it from a
//! hidden option (`drvdom generate-man DIR`, `drvdom-agent --generate-man
//! DIR`); `scripts/deb.sh` runs those to fill the Debian packages.
//!
//! It writes only inside the directory it is given, and never prints.
//!
//! ```
//! let cmd = clap::Command::new("demo")
//!     .version("1.0")
//!     .about("A demo")
//!     .subcommand(clap::Command::new("run").about("Run it"));
//! let dir = tempfile::tempdir().unwrap();
//! let pages = clidoc::write_man_pages(cmd, "1", &[], dir.path()).unwrap();
//! let names: Vec<_> = pages.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
//! assert_eq!(names, ["demo.1", "demo-run.1"]);
//! ```

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writing a page failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating or writing a page file failed.
    #[error("cannot write man page {path}")]
    Write {
        /// The page file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The manual all pages belong to (the centre footer/header of `man`).
pub const MANUAL: &str = "drvdom manual";

/// Write the pages of `cmd` and of every visible subcommand, recursively,
/// into `dir` (which must exist) as `<name>.<section>`; the top page lists
/// `see_also` (e.g. `["drvdom-agent(8)"]`) under SEE ALSO, the others their
/// parent page. Returns the files written, the top page first, then
/// depth-first in definition order.
pub fn write_man_pages(
    cmd: clap::Command,
    section: &str,
    see_also: &[&str],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    // The help subcommand is `--help` in a man page.
    let mut cmd = cmd.disable_help_subcommand(true);
    // build() fills each subcommand's display name ("drvdom-pci-assign")
    // and bin name ("drvdom pci assign", for SYNOPSIS).
    cmd.build();
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut out = Vec::new();
    let see: Vec<String> = see_also.iter().map(|s| (*s).to_string()).collect();
    write_tree(&cmd, section, &source, &see, dir, &mut out)?;
    Ok(out)
}

/// The page date (`YYYY-MM-DD`, UTC): `$SOURCE_DATE_EPOCH` when set (Debian's
/// reproducible-builds convention; `scripts/deb.sh` sets it to the last commit's
/// time), else now. clap_mangen writes an empty date as nothing, which would shift
/// the other `.TH` fields, so there is always one.
pub fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `drvdom-pci(1)` as roff: `\fBdrvdom\-pci\fR(1)`.
fn see_also_ref(r: &str) -> String {
    let (page, sect) = match r.rfind('(') {
        Some(i) => r.split_at(i),
        None => (r, ""),
    };
    format!("\\fB{}\\fR{sect}", page.replace('-', "\\-"))
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn write_tree(
    cmd: &clap::Command,
    section: &str,
    source: &str,
    see_also: &[String],
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let name = page_name(cmd);
    let path = dir.join(format!("{name}.{section}"));
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .date(page_date())
        .source(source)
        .manual(MANUAL);
    let mut text = Vec::new();
    let mut render = || -> std::io::Result<()> {
        man.render(&mut text)?;
        if !see_also.is_empty() {
            // bold page name, roman section; `\-` is a hyphen, not a minus
            let refs: Vec<String> = see_also.iter().map(|r| see_also_ref(r)).collect();
            writeln!(text, ".SH \"SEE ALSO\"")?;
            writeln!(text, "{}", refs.join(", "))?;
        }
        std::fs::write(&path, &text)
    };
    render().map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    out.push(path);
    let parent = [format!("{name}({section})")];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, section, source, &parent, dir, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("tool")
            .version("2.5")
            .about("A tool")
            .subcommand(
                clap::Command::new("pci")
                    .about("PCI things")
                    .subcommand(clap::Command::new("assign").about("Assign one"))
                    .subcommand(clap::Command::new("release").about("Release one")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_command_named_like_git() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(demo(), "1", &["other(8)"], dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "tool.1",
                "tool-pci.1",
                "tool-pci-assign.1",
                "tool-pci-release.1"
            ]
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn pages_carry_title_synopsis_version_and_see_also() {
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(demo(), "8", &["other(8)"], dir.path()).unwrap();
        let top = std::fs::read_to_string(dir.path().join("tool.8")).unwrap();
        let th = top.lines().find(|l| l.starts_with(".TH ")).unwrap();
        let date = page_date();
        assert_eq!(
            th,
            format!(".TH tool 8 {date} \"tool 2.5\" \"drvdom manual\"")
        );
        assert!(top.contains("tool\\-pci(8)"), "subcommand list: {top}");
        assert!(
            top.contains(".SH \"SEE ALSO\"\n\\fBother\\fR(8)\n"),
            "{top}"
        );
        assert!(!top.contains("secret"), "hidden subcommand listed: {top}");
        let leaf = std::fs::read_to_string(dir.path().join("tool-pci-assign.8")).unwrap();
        assert!(leaf.contains(".TH tool-pci-assign 8"), "{leaf}");
        assert!(
            leaf.contains("tool pci assign"),
            "synopsis names the real command: {leaf}"
        );
        assert!(
            leaf.contains("\\fBtool\\-pci\\fR(8)"),
            "parent in SEE ALSO: {leaf}"
        );
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn missing_directory_names_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let err = write_man_pages(demo(), "1", &[], &gone).unwrap_err();
        assert!(err.to_string().contains("nope/tool.1"), "{err}");
    }
}
