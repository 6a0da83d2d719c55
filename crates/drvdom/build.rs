//! Records the commit the binary is built from (`drvdom --version`):
//! `git rev-parse --short=12 HEAD`, with `-dirty` for uncommitted changes,
//! or "unknown" outside a git checkout (a source tarball, a packaged build).

#![allow(clippy::print_stdout)] // cargo reads a build script's stdout

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|c| !c.is_empty())
        .map(|c| {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DRVDOM_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves (a commit, a checkout); paths relative to
    // this crate. In a worktree .git is a file: watch what it points to.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/index");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
