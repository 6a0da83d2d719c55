//! The machine the figures come from: its load, and the warm-CPU mode.
//!
//! On this VM an idle CPU takes ~60 µs to wake for each round trip, for
//! every server alike (the zero-work echo server too), so timed rows on an
//! idle machine all come out ≈1.0×. In warm-CPU mode (on by default) a
//! `nice 19` busy loop runs on every core while timed rows run: the cores
//! never go idle, and the loops take only what the benchmark leaves (a
//! nice-19 task gets ~1.5% of a core against a normal one).

use std::process::{Child, Command, Stdio};

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Cores online.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The busy loops of warm-CPU mode; stopped on drop.
pub struct Warm {
    loops: Vec<Child>,
}

impl Warm {
    /// Start one `nice -n 19` busy loop per core.
    pub fn start() -> std::io::Result<Warm> {
        let mut loops = Vec::new();
        for _ in 0..cores() {
            loops.push(
                Command::new("nice")
                    .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(Warm { loops })
    }

    /// Number of busy loops.
    pub fn count(&self) -> usize {
        self.loops.len()
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        for c in &mut self.loops {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
