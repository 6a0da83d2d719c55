//! Cost figures that count instead of timing, immune to this VM's noise:
//!
//! * **user-space instructions per operation**, counted by valgrind's
//!   callgrind (the method iai-callgrind uses for Rust). The server runs
//!   under callgrind; after a warm-up run of the load, its counters are
//!   zeroed, the load runs N1 operations, the counters are dumped; the same
//!   again with N2 operations; the figure is the difference over N2 − N1,
//!   so the fixed costs of a run (connecting, the first touch of a table,
//!   callgrind_control's own interruptions) cancel out, and so do start-up
//!   and shutdown, which are outside both measured runs;
//! * **system calls per operation** (the kernel's share, which valgrind
//!   cannot see), counted by `strace -c -f`: two server processes, one per
//!   run (N1, N2), each with the same warm-up; the difference of their
//!   totals over N2 − N1.
//!
//! Both repeat to within about 1% here. The peers run under the same tools
//! through their start scripts' `XS_WRAP` hook.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conn::Conn;
use crate::loads::{self, Stats};
use crate::servers::{Kind, Server, TempDir, Wrap};

/// A load the cost figures run: (socket, operations).
pub type Load = fn(&Path, u64) -> Result<Stats>;

/// Operations of a warm-up run.
const WARM_OPS: u64 = 200;

/// Instructions/op and system calls/op of one load on one server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub instr: Option<f64>,
    pub syscalls: Option<f64>,
}

fn per_op(a: u64, b: u64, n1: u64, n2: u64) -> f64 {
    (b as f64 - a as f64) / (loads::total_ops(n2) - loads::total_ops(n1)) as f64
}

/// Zero the counters of the callgrind run `pid`, run `f`, dump them and
/// return the instructions counted in between.
fn counted(pid: u32, dump_prefix: &Path, f: impl FnOnce() -> Result<()>) -> Result<u64> {
    callgrind_control("-z", pid)?;
    f()?;
    callgrind_control("-d", pid)?;
    newest_dump(dump_prefix)
}

fn callgrind_control(op: &str, pid: u32) -> Result<()> {
    let out = Command::new("callgrind_control")
        .arg(op)
        .arg(pid.to_string())
        .output()
        .context("run callgrind_control (valgrind is needed: apt-get install valgrind)")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {op} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `summary:` of the most recent dump `<prefix>.<n>`.
fn newest_dump(prefix: &Path) -> Result<u64> {
    let dir = prefix.parent().unwrap_or(Path::new("."));
    let stem = prefix
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|s| s.to_str()) else {
            continue;
        };
        let Some(n) = name
            .strip_prefix(&stem)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.rsplit('.').next())
            .and_then(|r| r.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, p));
        }
    }
    let (_, p) = best.with_context(|| format!("no callgrind dump {}.*", prefix.display()))?;
    let text = std::fs::read_to_string(&p)?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no summary in {}", p.display()))
}

/// Instructions per operation of `load` on `kind`.
pub fn instructions(kind: Kind, load: Load, n1: u64, n2: u64) -> Result<f64> {
    let tmp = TempDir::new("callgrind")?;
    let file = tmp.0.join("cg.out");
    let s = Server::start_wrapped(kind, &[], Wrap::Callgrind(file.clone()))?;
    load(&s.socket, WARM_OPS)?;
    let a = counted(s.pid, &file, || load(&s.socket, n1).map(|_| ()))?;
    let b = counted(s.pid, &file, || load(&s.socket, n2).map(|_| ()))?;
    s.stop()?;
    Ok(per_op(a, b, n1, n2))
}

/// System calls per operation of `load` on `kind`.
pub fn syscalls(kind: Kind, load: Load, n1: u64, n2: u64) -> Result<f64> {
    let mut totals = [0u64; 2];
    for (slot, n) in totals.iter_mut().zip([n1, n2]) {
        let tmp = TempDir::new("strace")?;
        let file = tmp.0.join("strace.txt");
        let s = Server::start_wrapped(kind, &[], Wrap::Strace(file.clone()))?;
        load(&s.socket, WARM_OPS)?;
        load(&s.socket, n)?;
        s.stop()?;
        *slot = strace_total(&file)?;
    }
    Ok(per_op(totals[0], totals[1], n1, n2))
}

/// The total number of calls in a `strace -c` summary.
fn strace_total(file: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("read strace summary {}", file.display()))?;
    text.lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3).and_then(|v| v.parse().ok())
        })
        .with_context(|| format!("no total in {}", file.display()))
}

/// Our server's instructions per write before and after a change of state
/// (`grow`): a bigger tree, many watches, many domains. What `prepare` and
/// `grow` return (connections holding watches or domains) is kept until
/// the end.
pub fn write_scaling<A, B>(
    n1: u64,
    n2: u64,
    prepare: impl FnOnce(&Server) -> Result<A>,
    grow: impl FnOnce(&Server) -> Result<B>,
) -> Result<(f64, f64)> {
    let tmp = TempDir::new("callgrind")?;
    let file = tmp.0.join("cg.out");
    let s = Server::start_wrapped(Kind::Ours, &[], Wrap::Callgrind(file.clone()))?;
    let _kept_a = prepare(&s)?;
    let mut fresh = 0u64;
    let mut write = |n: u64| -> Result<()> {
        let mut c = Conn::connect(&s.socket)?;
        for _ in 0..loads::total_ops(n) {
            c.write(
                &format!("/bench/m/{}/{}", fresh / 1000, fresh % 1000),
                b"0123456789abcdef",
            )?;
            fresh += 1;
        }
        Ok(())
    };
    write(WARM_OPS)?;
    let a1 = counted(s.pid, &file, || write(n1))?;
    let b1 = counted(s.pid, &file, || write(n2))?;
    let _kept_b = grow(&s)?;
    write(WARM_OPS)?;
    let a2 = counted(s.pid, &file, || write(n1))?;
    let b2 = counted(s.pid, &file, || write(n2))?;
    s.stop()?;
    Ok((per_op(a1, b1, n1, n2), per_op(a2, b2, n1, n2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_totals() {
        let dir = TempDir::new("t").unwrap();
        let f = dir.0.join("s.txt");
        std::fs::write(
            &f,
            "% time     seconds  usecs/call     calls    errors syscall\n\
             ------ ----------- ----------- --------- --------- ------------------\n\
              58.28    0.609398      609398         1           rt_sigtimedwait\n\
              30.56    0.319502          13     24004           sendto\n\
             ------ ----------- ----------- --------- --------- ------------------\n\
             100.00    1.045562          21     48440        10 total\n",
        )
        .unwrap();
        assert_eq!(strace_total(&f).unwrap(), 48440);
        std::fs::write(dir.0.join("cg.out.1"), "summary: 10\n").unwrap();
        std::fs::write(dir.0.join("cg.out.12"), "x\nsummary: 99\n").unwrap();
        std::fs::write(dir.0.join("cg.out.3"), "summary: 30\n").unwrap();
        assert_eq!(newest_dump(&dir.0.join("cg.out")).unwrap(), 99);
    }
}
