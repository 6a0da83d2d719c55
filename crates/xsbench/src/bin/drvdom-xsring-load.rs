//! `drvdom-xsring-load`: the ring-path throughput row of the real-Xen lab.
//! Inside a guest it talks xenstore through `/dev/xen/xenbus` (the
//! kernel forwards each request over the guest's shared ring to dom0's
//! xenstored) and times N synchronous requests, alternating a WRITE and a
//! READ of `data/xsring-load/k<(i/2) % 16>` (relative: under the guest's home,
//! where libxl lets it write). Also works on a unix socket (any xenstored)
//! for a quick check on a development machine.
//!
//! Uses the standard library only, so the lab builds it statically with
//! plain `rustc -C target-feature=+crt-static` for the busybox guest.
//!
//! Usage: `drvdom-xsring-load [PATH] [OPS]` (defaults `/dev/xen/xenbus`,
//! 10000). Prints one line: `ops=N secs=S ops_per_s=R path=PATH`; exits 1
//! with a message on any error reply or IO failure.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::time::Instant;

const XS_READ: u32 = 2;
const XS_WRITE: u32 = 11;
const XS_ERROR: u32 = 16;
const HEADER: usize = 16;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn open(path: &str) -> std::io::Result<Box<dyn Stream>> {
    let meta = std::fs::metadata(path)?;
    if meta.file_type().is_socket() {
        Ok(Box::new(std::os::unix::net::UnixStream::connect(path)?))
    } else {
        Ok(Box::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?,
        ))
    }
}

/// One request and its reply (watch events are not expected: none are set).
fn call(
    s: &mut dyn Stream,
    buf: &mut Vec<u8>,
    ty: u32,
    id: u32,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let len = u32::try_from(payload.len()).map_err(|_| "payload too long".to_string())?;
    let mut msg = Vec::with_capacity(HEADER + payload.len());
    for w in [ty, id, 0, len] {
        msg.extend_from_slice(&w.to_ne_bytes());
    }
    msg.extend_from_slice(payload);
    // the xenbus device wants each message in one write
    s.write_all(&msg).map_err(|e| format!("write: {e}"))?;
    loop {
        if buf.len() >= HEADER {
            let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let (rty, rlen) = (word(0), word(12) as usize);
            if buf.len() >= HEADER + rlen {
                let body = buf[HEADER..HEADER + rlen].to_vec();
                buf.drain(..HEADER + rlen);
                if rty == XS_ERROR {
                    return Err(format!(
                        "error reply {}",
                        String::from_utf8_lossy(&body).trim_end_matches('\0')
                    ));
                }
                return Ok(body);
            }
        }
        let mut chunk = [0u8; 4096 + HEADER];
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn run(path: &str, ops: u32) -> Result<f64, String> {
    let mut s = open(path).map_err(|e| format!("open {path}: {e}"))?;
    let mut buf = Vec::new();
    let start = Instant::now();
    for i in 0..ops {
        let key = format!("data/xsring-load/k{}", (i / 2) % 16);
        if i % 2 == 0 {
            let mut p = key.into_bytes();
            p.push(0);
            p.extend_from_slice(format!("value-{i}").as_bytes());
            call(&mut *s, &mut buf, XS_WRITE, i, &p)?;
        } else {
            let mut p = key.into_bytes();
            p.push(0);
            let v = call(&mut *s, &mut buf, XS_READ, i, &p)?;
            let want = format!("value-{}", i - 1);
            if v != want.as_bytes() {
                return Err(format!(
                    "read back {:?}, wrote {want:?}",
                    String::from_utf8_lossy(&v)
                ));
            }
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/dev/xen/xenbus".into());
    let ops: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    match run(&path, ops) {
        Ok(secs) => {
            #[allow(clippy::print_stdout)] // the tool's one result line
            {
                println!(
                    "ops={ops} secs={secs:.3} ops_per_s={:.0} path={path}",
                    f64::from(ops) / secs.max(1e-9)
                );
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            #[allow(clippy::print_stderr)] // the tool's one error line
            {
                eprintln!("drvdom-xsring-load: {e}");
            }
            std::process::ExitCode::from(1)
        }
    }
}
