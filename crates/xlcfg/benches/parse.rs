//! Parser scaling benchmark: a 1 MB file holding a 100,000-entry list.
//! Run with `cargo bench -p xlcfg`; prints the median of several runs.
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::hint::black_box;
use std::time::{Duration, Instant};

use xlcfg::{Document, DomainConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    // 100,000 items of 10 bytes each: about 1 MB.
    let mut src = String::from("name = 'big'\ntype = 'pvh'\nextra = [\n");
    for i in 0..100_000 {
        src.push_str(&format!("'e{i:05}',\n"));
    }
    src.push_str("]\n");
    // And a file of the same size made of 100,000 vif entries xl interprets.
    let mut vifs = String::from("name = 'big'\nvif = [\n");
    for i in 0..100_000u32 {
        vifs.push_str(&format!(
            "'mac=00:16:3e:{:02x}:{:02x}:{:02x}',\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    vifs.push_str("]\n");
    let runs = 7;
    println!("list file: {} bytes, 100000 entries", src.len());
    let parse = time(runs, || {
        Document::parse_str(&src, "big").map(|p| p.document)
    });
    println!(
        "  parse:              {:>8.1} ms",
        parse.as_secs_f64() * 1e3
    );
    let doc = Document::parse_str(&src, "big")
        .map(|p| p.document)
        .unwrap_or_default();
    let write = time(runs, || doc.to_bytes());
    println!(
        "  write:              {:>8.1} ms",
        write.as_secs_f64() * 1e3
    );
    let canon = time(runs, || doc.canonical());
    println!(
        "  canonical:          {:>8.1} ms",
        canon.as_secs_f64() * 1e3
    );
    println!("vif file: {} bytes, 100000 vif entries", vifs.len());
    let parse = time(runs, || {
        Document::parse_str(&vifs, "vifs").map(|p| p.document)
    });
    println!(
        "  parse:              {:>8.1} ms",
        parse.as_secs_f64() * 1e3
    );
    let vdoc = Document::parse_str(&vifs, "vifs")
        .map(|p| p.document)
        .unwrap_or_default();
    let interp = time(runs, || {
        DomainConfig::from_document(&vdoc, "vifs", vifs.as_bytes()).map(|i| i.config.vifs.len())
    });
    println!(
        "  interpret (typed):  {:>8.1} ms",
        interp.as_secs_f64() * 1e3
    );
    // Error-dense input: one lexical error on each of 100,000 lines, and
    // 100,000 vif entries that each draw a warning (diagnostics must not
    // rescan the file).
    let mut bad = String::new();
    for i in 0..100_000 {
        bad.push_str(&format!("k{i} = $x\n"));
    }
    let t = time(3, || Document::parse_str(&bad, "bad").err().map(|_| ()));
    println!(
        "error-dense file: {} bytes, 100000 errors: parse {:.1} ms",
        bad.len(),
        t.as_secs_f64() * 1e3
    );
    let mut warn = String::from("name = 'w'\nvif = [ ");
    for _ in 0..100_000 {
        warn.push_str("'foo=1', ");
    }
    warn.push_str("]\n");
    let wdoc = Document::parse_str(&warn, "w")
        .map(|p| p.document)
        .unwrap_or_default();
    let t = time(3, || {
        DomainConfig::from_document(&wdoc, "w", warn.as_bytes()).map(|i| i.warnings.len())
    });
    println!(
        "one-line list, 100000 warnings: interpret {:.1} ms",
        t.as_secs_f64() * 1e3
    );
    // Linearity: half the size should take about half the time.
    let half: String = {
        let mut s = String::from("x = [\n");
        for i in 0..50_000 {
            s.push_str(&format!("'e{i:05}',\n"));
        }
        s.push_str("]\n");
        s
    };
    let t_half = time(runs, || {
        Document::parse_str(&half, "half").map(|p| p.document)
    });
    let t_full = time(runs, || {
        Document::parse_str(&src, "big").map(|p| p.document)
    });
    println!(
        "scaling: 50k entries {:.1} ms, 100k entries {:.1} ms, ratio {:.2}",
        t_half.as_secs_f64() * 1e3,
        t_full.as_secs_f64() * 1e3,
        t_full.as_secs_f64() / t_half.as_secs_f64()
    );
}
