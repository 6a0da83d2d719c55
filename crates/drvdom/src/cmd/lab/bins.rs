//! The programs a lab runs, and what the lab needs from the machine.
//!
//! `drvdom-xenstored`, `drvdom-agent` and `drvdom-simkernel` are looked up
//! next to this executable (or through `DRVDOM_XENSTORED_BIN`,
//! `DRVDOM_AGENT_BIN`, `DRVDOM_SIMKERNEL_BIN`). `cargo run -p drvdom` builds
//! only `drvdom`; when the others are missing and this executable runs from
//! a cargo target directory under `cargo run` (`CARGO` is set), they are
//! built with that cargo, in the same profile and target directory, with
//! one line saying so. Otherwise the error names exactly what to build or
//! install.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::cmd::output::{Code, cli_error, usage_error};
use sim::lab::Bins;

/// (binary, environment override, cargo package).
const PROGRAMS: [(&str, &str, &str); 3] = [
    ("drvdom-xenstored", "DRVDOM_XENSTORED_BIN", "xenstored"),
    ("drvdom-agent", "DRVDOM_AGENT_BIN", "agent"),
    ("drvdom-simkernel", "DRVDOM_SIMKERNEL_BIN", "sim"),
];

/// Where a program is: its override, else beside `exe` (or one directory
/// up, for test executables under `target/<profile>/deps`).
fn locate(exe: &Path, name: &str, var: &str) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{var}={} does not exist", p.display());
        }
        return Ok(Some(p));
    }
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join(name);
        if cand.is_file() {
            return Ok(Some(cand));
        }
        dir = d.parent();
    }
    Ok(None)
}

/// A cargo target directory this executable was built into:
/// `<target>/<profile>/drvdom` or `<target>/<triple>/<profile>/drvdom`
/// (cargo marks a target directory with `CACHEDIR.TAG`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CargoBuild {
    target_dir: PathBuf,
    triple: Option<String>,
    profile: String,
}

fn cargo_build_of(exe: &Path) -> Option<CargoBuild> {
    let profile_dir = exe.parent()?;
    let dir_name = profile_dir.file_name()?.to_str()?.to_string();
    // Cargo names the dev profile's directory `debug`.
    let profile = if dir_name == "debug" {
        "dev".to_string()
    } else {
        dir_name
    };
    let up = profile_dir.parent()?;
    if up.join("CACHEDIR.TAG").is_file() {
        return Some(CargoBuild {
            target_dir: up.to_path_buf(),
            triple: None,
            profile,
        });
    }
    let triple = up.file_name()?.to_str()?.to_string();
    let top = up.parent()?;
    top.join("CACHEDIR.TAG").is_file().then(|| CargoBuild {
        target_dir: top.to_path_buf(),
        triple: Some(triple),
        profile,
    })
}

/// The `cargo build` that makes the missing programs.
fn build_command(cargo: &OsString, b: &CargoBuild, packages: &[&str]) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--quiet").arg("--bins");
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    cmd.arg("--profile").arg(&b.profile);
    cmd.arg("--target-dir").arg(&b.target_dir);
    if let Some(t) = &b.triple {
        cmd.arg("--target").arg(t);
    }
    // The workspace this binary was built from, if it is still there.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    if manifest.is_file() {
        cmd.arg("--manifest-path").arg(manifest);
    }
    cmd
}

/// The lab's programs; builds missing ones under `cargo run` (see the
/// module doc).
#[allow(clippy::print_stderr)] // the one progress line the issue asks for
pub fn find() -> anyhow::Result<Bins> {
    let exe = std::env::current_exe().context("find the drvdom executable")?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (name, var, pkg) in PROGRAMS {
        match locate(&exe, name, var)? {
            Some(p) => found.push(p),
            None => missing.push((name, pkg)),
        }
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
        let pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
        let build = cargo_build_of(&exe);
        let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty());
        let (Some(b), Some(cargo)) = (build, cargo) else {
            let flags: String = pkgs.iter().map(|p| format!(" -p {p}")).collect();
            bail!(
                "{} not found next to {}: build {} with `cargo build --release{flags}` \
                 (or install the drvdom package)",
                names.join(", "),
                exe.display(),
                if names.len() == 1 { "it" } else { "them" }
            );
        };
        let mut cmd = build_command(&cargo, &b, &pkgs);
        eprintln!(
            "drvdom: building {} for the lab (profile {}, not built yet by `cargo run -p drvdom`)...",
            names.join(", "),
            b.profile
        );
        let st = cmd
            .status()
            .with_context(|| format!("run {}", cargo.to_string_lossy()))?;
        if !st.success() {
            bail!("cargo build of {} failed ({st})", names.join(", "));
        }
        return find_built(&exe);
    }
    let mut it = found.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(xenstored), Some(agent), Some(simkernel)) => Ok(Bins {
            xenstored,
            agent,
            simkernel,
        }),
        _ => bail!("internal: lab programs not all found"),
    }
}

fn find_built(exe: &Path) -> anyhow::Result<Bins> {
    let get = |i: usize| -> anyhow::Result<PathBuf> {
        let (name, var, _) = PROGRAMS[i];
        locate(exe, name, var)?.with_context(|| format!("{name} still missing after cargo build"))
    };
    Ok(Bins {
        xenstored: get(0)?,
        agent: get(1)?,
        simkernel: get(2)?,
    })
}

/// Find a program on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()))
}

/// The lab's processes, namespaces and run directory need root: refuse
/// early with a sentence saying so (`DRVDOM-NEEDS-ROOT`, exit 2).
pub fn require_root(what: &str) -> anyhow::Result<()> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false);
    if !root {
        return Err(cli_error(
            Code::NeedsRoot,
            format!(
                "{what} needs root (the lab makes network namespaces, bridges and veths \
                 under {}): run it with sudo",
                sim::lab::run_root().display()
            ),
        ));
    }
    Ok(())
}

/// What the lab needs from the machine, checked before anything starts:
/// root, and for `--legacy-scripts always` Xen's hotplug scripts and the
/// tools they call. One line naming the fix, never a list of failures.
pub fn check_machine(legacy_always: bool) -> anyhow::Result<()> {
    require_root("the lab")?;
    if legacy_always {
        let script = Path::new(xenbus::DEFAULT_VIF_SCRIPT);
        let mut need = Vec::new();
        if !script.is_file() {
            need.push("xen-utils-common");
        }
        if !on_path("xenstore-write") {
            need.push("xenstore-utils");
        }
        if !on_path("ip") {
            need.push("iproute2");
        }
        if !need.is_empty() {
            return Err(usage_error(format!(
                "--legacy-scripts always runs Debian's {} (which calls xenstore-write and ip): \
                 install them with `apt-get install {}`",
                script.display(),
                need.join(" ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_target_dirs_are_recognised() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("target");
        std::fs::create_dir_all(root.join("release")).unwrap();
        std::fs::create_dir_all(root.join("x86_64-unknown-linux-gnu/debug")).unwrap();
        std::fs::write(root.join("CACHEDIR.TAG"), "Signature").unwrap();
        assert_eq!(
            cargo_build_of(&root.join("release/drvdom")),
            Some(CargoBuild {
                target_dir: root.clone(),
                triple: None,
                profile: "release".into()
            })
        );
        assert_eq!(
            cargo_build_of(&root.join("x86_64-unknown-linux-gnu/debug/drvdom")),
            Some(CargoBuild {
                target_dir: root.clone(),
                triple: Some("x86_64-unknown-linux-gnu".into()),
                profile: "dev".into()
            })
        );
        assert_eq!(cargo_build_of(&t.path().join("usr/bin/drvdom")), None);
    }

    #[test]
    fn the_build_command_names_the_packages_and_profile() {
        let b = CargoBuild {
            target_dir: "/w/target".into(),
            triple: None,
            profile: "release".into(),
        };
        let cmd = build_command(&"cargo".into(), &b, &["xenstored", "sim"]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let text = args.join(" ");
        assert!(
            text.starts_with(
                "build --quiet --bins -p xenstored -p sim --profile release --target-dir /w/target"
            ),
            "{text}"
        );
    }
}
