//! The report: markdown tables of every figure, ours against the peers,
//! with the ratio each target of issue 15 is about and whether it is met.

use crate::attacks::AttackResult;
use crate::loads::Stats;
use crate::servers::Kind;
use crate::{COST_LOADS, Results, Scaling};

/// How the figures were taken.
pub struct Run {
    pub load_before: String,
    pub load_after: String,
    pub cores: usize,
    pub warm_loops: usize,
    pub quick: bool,
    pub minutes: f64,
}

struct Targets(Vec<(String, Option<f64>, &'static str, bool)>);

impl Targets {
    /// Record a target: (what, ratio, goal text, met?).
    fn add(&mut self, what: String, v: Option<f64>, goal: &'static str, ok: fn(f64) -> bool) {
        let met = v.is_some_and(ok);
        self.0.push((what, v, goal, met));
    }
}

fn get(results: &[(Kind, Results)], k: Kind) -> Option<&Results> {
    results.iter().find(|(kk, _)| *kk == k).map(|(_, r)| r)
}

fn peers(results: &[(Kind, Results)]) -> Vec<&Results> {
    [Kind::Cx, Kind::Ox]
        .iter()
        .filter_map(|k| get(results, *k))
        .collect()
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn min(v: impl Iterator<Item = f64>) -> Option<f64> {
    v.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
}

fn max(v: impl Iterator<Item = f64>) -> Option<f64> {
    v.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
}

fn cell(s: &Option<Stats>) -> String {
    match s {
        Some(s) => format!(
            "{:.0}/s p50 {:.1} p99 {:.1}",
            s.ops_per_s(),
            s.pct(0.5),
            s.pct(0.99)
        ),
        None => "-".into(),
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

pub fn print(run: &Run, results: &[(Kind, Results)], scale: &Scaling, attacks: &[AttackResult]) {
    let mut t = Targets(Vec::new());
    println!("\n# drvdom-xsbench");
    println!(
        "\nMachine: {} cores; load average {} at start, {} at end; {:.1} minutes{}.",
        run.cores,
        run.load_before,
        run.load_after,
        run.minutes,
        if run.quick {
            "; --quick (bounded) run"
        } else {
            ""
        }
    );
    println!(
        "Cost rows are counted (callgrind: user-space instructions; strace -c -f: system calls), each from two runs of N1 and N2 operations. Timed rows ran with warm-CPU mode {}.",
        if run.warm_loops > 0 {
            format!("ON ({} nice-19 busy loops, one per core)", run.warm_loops)
        } else {
            "OFF (idle CPUs wake slowly here: ~60 µs per round trip for every server)".into()
        }
    );
    let ours = get(results, Kind::Ours);
    let ps = peers(results);

    println!("\n## Cost per operation (counted)\n");
    println!("| load | drvdom | cxenstored | oxenstored | drvdom / best peer | target | met |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (label, _, n1, n2)) in COST_LOADS.iter().enumerate() {
        let (n1, n2) = crate::cost_ns(run.quick, *n1, *n2);
        for (unit, pick) in [
            (
                "instructions/op",
                (|r: &Results, i: usize| r.cost[i].instr) as fn(&Results, usize) -> Option<f64>,
            ),
            ("system calls/op", |r: &Results, i: usize| {
                r.cost[i].syscalls
            }),
        ] {
            let v = |k: Kind| get(results, k).and_then(|r| pick(r, i));
            let best = min(ps.iter().filter_map(|r| pick(r, i)));
            let rt = ratio(v(Kind::Ours), best);
            let digits = if unit.starts_with("instr") { 0 } else { 2 };
            println!(
                "| {label} ({n1}/{n2} ops): {unit} | {} | {} | {} | {} | ≤0.5× | {} |",
                fmt_opt(v(Kind::Ours), digits),
                fmt_opt(v(Kind::Cx), digits),
                fmt_opt(v(Kind::Ox), digits),
                fmt_opt(rt, 3),
                yes(rt.is_some_and(|r| r <= 0.5))
            );
            t.add(
                format!("{label}: {unit} vs best peer"),
                rt,
                "≤0.5×",
                |r| r <= 0.5,
            );
        }
    }

    println!("\n## Throughput and latency (µs; warm CPU)\n");
    let names: Vec<&str> = results.iter().map(|(k, _)| k.name()).collect();
    println!("| test | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    type Pick = fn(&Results) -> &Option<Stats>;
    let rows: [(&str, Pick); 6] = [
        ("write, 1 conn (sync)", |r| &r.write),
        ("read, 1 conn (sync)", |r| &r.read),
        ("tx of 10 writes, 1 conn", |r| &r.tx10),
        ("write, 64 in flight", |r| &r.pipe),
        ("write, 8 connections", |r| &r.conns8),
        ("watch event latency", |r| &r.watch),
    ];
    for (label, pick) in rows {
        let cols: Vec<String> = results.iter().map(|(_, r)| cell(pick(r))).collect();
        println!("| {label} | {} |", cols.join(" | "));
    }
    let rate = |s: &Option<Stats>| s.as_ref().map(Stats::ops_per_s);
    let p50 = |s: &Option<Stats>| s.as_ref().map(|s| s.pct(0.5));
    let pipe = ratio(
        ours.and_then(|r| rate(&r.pipe)),
        max(ps.iter().filter_map(|r| rate(&r.pipe))),
    );
    let watch = ratio(
        ours.and_then(|r| p50(&r.watch)),
        min(ps.iter().filter_map(|r| p50(&r.watch))),
    );
    let conns = ratio(
        ours.and_then(|r| rate(&r.conns8)),
        max(ps.iter().filter_map(|r| rate(&r.conns8))),
    );
    println!(
        "\n64 in flight, ops/s vs best peer: {}× (target ≥3×); watch latency p50 vs best peer: {}× (target ≤0.6×); 8 connections ops/s vs best peer: {}×.",
        fmt_opt(pipe, 2),
        fmt_opt(watch, 2),
        fmt_opt(conns, 2)
    );
    t.add(
        "64 in flight: ops/s vs best peer".into(),
        pipe,
        "≥3×",
        |r| r >= 3.0,
    );
    t.add(
        "watch latency p50 vs best peer".into(),
        watch,
        "≤0.6×",
        |r| r <= 0.6,
    );

    println!("\n## Scaling of drvdom's write cost (instructions/op, callgrind)\n");
    println!("| condition | before | after | after / before | target | met |");
    println!("|---|---|---|---|---|---|");
    let mut scale_row = |what: String, v: Option<(f64, f64)>| {
        let r = v.map(|(a, b)| b / a);
        println!(
            "| {what} | {} | {} | {} | ≤1.2× | {} |",
            fmt_opt(v.map(|x| x.0), 0),
            fmt_opt(v.map(|x| x.1), 0),
            fmt_opt(r, 2),
            yes(r.is_some_and(|r| r <= 1.2))
        );
        t.add(format!("write instructions: {what}"), r, "≤1.2×", |r| {
            r <= 1.2
        });
    };
    scale_row(
        format!(
            "1,000 → {} nodes",
            scale.nodes.map_or("-".into(), |(n, _, _)| n.to_string())
        ),
        scale.nodes.map(|(_, a, b)| (a, b)),
    );
    scale_row("no watches → 10,000 other watches".into(), scale.watches);
    scale_row("1 domain → 1,000 domains connected".into(), scale.domains);

    println!("\n## Memory\n");
    println!("| test | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let cols: Vec<String> = results
        .iter()
        .map(|(_, r)| match &r.rss {
            Some((i, f)) => format!("{i} KB → {f} KB"),
            None => "-".into(),
        })
        .collect();
    println!("| RSS idle → 100k nodes | {} |", cols.join(" | "));
    let cols: Vec<String> = results
        .iter()
        .map(|(_, r)| match &r.dir {
            Some((d, n)) => format!("{n} listed in {:.1} ms", d.as_secs_f64() * 1e3),
            None => "-".into(),
        })
        .collect();
    println!("| 10,000-child directory | {} |", cols.join(" | "));
    let rss = ratio(
        ours.and_then(|r| r.rss.map(|(_, f)| f as f64)),
        min(ps.iter().filter_map(|r| r.rss.map(|(_, f)| f as f64))),
    );
    println!(
        "\nRSS at 100k nodes vs best peer: {}× (target ≤0.6×).",
        fmt_opt(rss, 2)
    );
    t.add(
        "RSS at 100k nodes vs best peer".into(),
        rss,
        "≤0.6×",
        |r| r <= 0.6,
    );

    if !attacks.is_empty() {
        println!(
            "\n## drvdom-xenstored under attack (a hostile guest on its own socket; warm CPU)\n"
        );
        println!(
            "| attack | dom0 read p50 / p99 (µs) | guest vif attach or detach p50 / max (µs) | attacker's replies | attacker req/s |"
        );
        println!("|---|---|---|---|---|");
        for a in attacks {
            let replies: Vec<String> = a
                .attacker
                .iter()
                .take(3)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            println!(
                "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {} | {:.0} |",
                a.name,
                a.dom0.pct(0.5),
                a.dom0.pct(0.99),
                a.attach.pct(0.5),
                a.attach.pct(1.0),
                replies.join(", "),
                a.attacker_rate
            );
            let p99_ms = a.dom0.pct(0.99) / 1000.0;
            let att_ms = a.attach.pct(1.0) / 1000.0;
            t.add(
                format!("{}: dom0 read p99 (ms)", a.name),
                Some(p99_ms),
                "<5 ms",
                |v| v < 5.0,
            );
            t.add(
                format!("{}: guest attach/detach max (ms)", a.name),
                Some(att_ms),
                "<100 ms",
                |v| v < 100.0,
            );
        }
    }

    println!("\n## Targets\n");
    println!("| target | measured | goal | met |");
    println!("|---|---|---|---|");
    for (what, v, goal, met) in &t.0 {
        println!("| {what} | {} | {goal} | {} |", fmt_opt(*v, 3), yes(*met));
    }
    let met = t.0.iter().filter(|x| x.3).count();
    println!("\n{met} of {} targets met.", t.0.len());
}
