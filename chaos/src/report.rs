//! The report folder: the verdict as JSON and Markdown, and an SVG of throughput,
//! latency and errors per second with the nemesis' faults shaded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::checker::Verdict;
use crate::history::{pairs, Kind, Op};
use crate::nemesis::intervals;

/// A named, coloured series of (second, value) points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Per second of the run: ok, fail and info completions, and ok latencies (ms).
struct Second {
    ok: u64,
    fail: u64,
    info: u64,
    latencies: Vec<f64>,
}

fn per_second(ops: &[Op]) -> Vec<Second> {
    let done: Vec<(Op, Op)> = pairs(ops)
        .into_iter()
        .filter(|(i, d)| i.is_client() && d.time != u64::MAX)
        .collect();
    let last = done.iter().map(|(_, d)| d.time).max().unwrap_or(0);
    let mut secs: Vec<Second> = (0..=last / 1_000_000_000)
        .map(|_| Second {
            ok: 0,
            fail: 0,
            info: 0,
            latencies: Vec::new(),
        })
        .collect();
    for (inv, d) in done {
        let s = &mut secs[(d.time / 1_000_000_000) as usize];
        match d.kind {
            Kind::Ok => {
                s.ok += 1;
                s.latencies
                    .push(d.time.saturating_sub(inv.time) as f64 / 1e6);
            }
            Kind::Fail => s.fail += 1,
            _ => s.info += 1,
        }
    }
    secs
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn fault_color(f: &str) -> RGBColor {
    match f {
        "kill" => RGBColor(230, 80, 80),
        "pause" => RGBColor(240, 180, 60),
        "partition" => RGBColor(90, 130, 230),
        _ => RGBColor(150, 90, 200),
    }
}

pub fn plot(path: &Path, ops: &[Op]) -> anyhow::Result<()> {
    let secs = per_second(ops);
    let faults = intervals(ops);
    let max_x = secs.len().max(1) as f64;
    let p: Vec<(f64, f64, f64)> = secs
        .iter()
        .map(|s| {
            let mut l = s.latencies.clone();
            l.sort_by(f64::total_cmp);
            (s.ok as f64, quantile(&l, 0.5), quantile(&l, 0.99))
        })
        .collect();
    let max_ok = p.iter().map(|x| x.0).fold(1.0, f64::max) * 1.15;
    let max_lat = p.iter().map(|x| x.2).fold(1.0, f64::max) * 1.15;
    let max_err = secs
        .iter()
        .map(|s| (s.fail + s.info) as f64)
        .fold(1.0, f64::max)
        * 1.15;

    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).context("drawing the plot")?;
    let panels = root.split_evenly((3, 1));
    let titles = [
        ("acknowledged operations per second", max_ok),
        ("latency of acknowledged operations (ms): p50, p99", max_lat),
        ("failed and unknown (info) operations per second", max_err),
    ];
    for (i, (area, (title, max_y))) in panels.iter().zip(titles).enumerate() {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .context("drawing the plot")?;
        chart
            .configure_mesh()
            .x_desc("seconds since the workload started")
            .draw()
            .context("drawing the plot")?;
        // The faults, shaded, one colour per kind.
        let mut labelled = std::collections::BTreeSet::new();
        for (start, end, f) in &faults {
            let color = fault_color(f);
            let series = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(*start, 0.0), (*end, max_y)],
                    color.mix(0.18).filled(),
                )))
                .context("drawing the plot")?;
            if i == 0 && labelled.insert(f.clone()) {
                series.label(f.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.mix(0.4).filled())
                });
            }
        }
        let lines: Vec<Line> = match i {
            0 => vec![(
                "ok",
                RGBColor(30, 120, 60),
                p.iter()
                    .enumerate()
                    .map(|(x, v)| (x as f64 + 0.5, v.0))
                    .collect(),
            )],
            1 => vec![
                (
                    "p50",
                    RGBColor(30, 90, 160),
                    p.iter()
                        .enumerate()
                        .map(|(x, v)| (x as f64 + 0.5, v.1))
                        .collect(),
                ),
                (
                    "p99",
                    RGBColor(200, 40, 40),
                    p.iter()
                        .enumerate()
                        .map(|(x, v)| (x as f64 + 0.5, v.2))
                        .collect(),
                ),
            ],
            _ => vec![
                (
                    "fail",
                    RGBColor(120, 120, 120),
                    secs.iter()
                        .enumerate()
                        .map(|(x, s)| (x as f64 + 0.5, s.fail as f64))
                        .collect(),
                ),
                (
                    "info",
                    RGBColor(200, 40, 40),
                    secs.iter()
                        .enumerate()
                        .map(|(x, s)| (x as f64 + 0.5, s.info as f64))
                        .collect(),
                ),
            ],
        };
        for (name, color, pts) in lines {
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .context("drawing the plot")?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .context("drawing the plot")?;
    }
    root.present().context("writing the plot")?;
    Ok(())
}

/// Counts of completions by function and type.
pub fn counts(ops: &[Op]) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for (inv, d) in pairs(ops).iter().filter(|(i, _)| i.is_client()) {
        let k = match d.kind {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            _ => "info",
        };
        *out.entry(inv.f.clone()).or_default().entry(k).or_default() += 1;
    }
    out
}

/// The one-line verdict.
pub fn headline(v: &Verdict) -> String {
    if v.valid {
        format!("VALID: all {} checks passed", v.checks.len())
    } else {
        let failed: Vec<&str> = v
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        format!("INVALID: {}", failed.join("; "))
    }
}

pub fn markdown(v: &Verdict, ops: &[Op], about: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# EcomMesh chaos run\n\n**{}**\n\n{about}\n",
        headline(v)
    );
    let _ = writeln!(
        md,
        "## Checks\n\n| check | verdict | what was checked | violations |\n|---|---|---|---|"
    );
    for c in &v.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.name,
            if c.ok { "ok" } else { "**violated**" },
            c.summary,
            c.violation_count
        );
    }
    for c in v.checks.iter().filter(|c| !c.ok) {
        let _ = writeln!(
            md,
            "\n### {} (first {} of {})\n",
            c.name,
            c.violations.len(),
            c.violation_count
        );
        for viol in &c.violations {
            let _ = writeln!(
                md,
                "- {}",
                viol["problem"].as_str().unwrap_or("see verdict.json")
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## Operations\n\n| f | ok | fail | info |\n|---|---|---|---|"
    );
    for (f, c) in counts(ops) {
        let g = |k: &str| c.get(k).copied().unwrap_or(0);
        let _ = writeln!(md, "| {f} | {} | {} | {} |", g("ok"), g("fail"), g("info"));
    }
    let _ = writeln!(
        md,
        "\n## Faults\n\n| from (s) | to (s) | fault |\n|---|---|---|"
    );
    for (start, end, f) in intervals(ops) {
        let _ = writeln!(md, "| {start:.1} | {end:.1} | {f} |");
    }
    let _ = writeln!(
        md,
        "\n![throughput, latency and errors over time, faults shaded](timeline.svg)\n\nFiles: `history.jsonl` (every operation, Jepsen's layout), `setup.json`, `final.json` (each node's final reads), `verdict.json` (every check with its offending operations), `timeline.svg`, `logs/` (each node's log)."
    );
    md
}
