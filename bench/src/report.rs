//! The report of a load run: its figures, and its files: `load.json` (everything),
//! `load.md` (for people) and `load.svg` (throughput and p99 over time, one line per
//! scenario).

use std::fmt::Write as _;
use std::path::Path;

use std::collections::BTreeMap;

use anyhow::Context;
use plotters::prelude::*;

use serde::Serialize;

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub scenario: String,
    pub seconds: f64,
    pub requests: u64,
    /// Non-2xx answers by status (`0`: no answer: connection or timeout errors).
    pub errors: BTreeMap<u16, u64>,
    pub per_sec: f64,
    /// Throughput relative to `ping_per_sec`.
    pub vs_ping: f64,
    /// `ping`'s throughput in the slices interleaved with this scenario's (see
    /// [`measure`]); for `ping` itself, over all its slices.
    pub ping_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Per second of the phase: requests answered and their p99.
    pub timeline: Vec<SecondFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecondFigures {
    pub second: usize,
    pub requests: u64,
    /// Requests per second in that second (the last one may be partial).
    pub per_sec: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub mode: String,
    pub connections: usize,
    pub phases: Vec<PhaseReport>,
    pub checks: Vec<Check>,
}

impl PhaseReport {
    /// The figures of the table: scenario, requests, errors, req/s, x ping, the paired
    /// ping's req/s, p50, p90, p99, p99.9, max (ms).
    pub fn cells(&self) -> [String; 11] {
        let errors: u64 = self.errors.values().sum();
        [
            self.scenario.clone(),
            self.requests.to_string(),
            errors.to_string(),
            format!("{:.0}", self.per_sec),
            format!("{:.2}", self.vs_ping),
            format!("{:.0}", self.ping_per_sec),
            format!("{:.2}", self.p50_ms),
            format!("{:.2}", self.p90_ms),
            format!("{:.2}", self.p99_ms),
            format!("{:.2}", self.p999_ms),
            format!("{:.2}", self.max_ms),
        ]
    }
}

/// Column titles, as `cells` orders them.
pub const COLUMNS: [&str; 11] = [
    "scenario", "requests", "errors", "req/s", "x ping", "ping/s", "p50 ms", "p90 ms", "p99 ms",
    "p99.9", "max ms",
];

pub fn write(dir: &Path, report: &Report) -> anyhow::Result<()> {
    writable_dir(dir)?;
    std::fs::write(dir.join("load.json"), serde_json::to_string_pretty(report)?)?;
    std::fs::write(dir.join("load.md"), markdown(report))?;
    plot(&dir.join("load.svg"), report)
}

fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# EcomMesh load benchmark\n");
    let _ = writeln!(
        md,
        "{} on {}; {}, {} connections. Latency in ms; `x ping` is the scenario's throughput \
         over that of `ping` (a trivial JSON endpoint of the same server) in the same run.\n",
        r.date, r.machine, r.mode, r.connections
    );
    let _ = writeln!(md, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(COLUMNS.len()));
    for p in &r.phases {
        let _ = writeln!(md, "{}", markdown_row(p));
    }
    let _ = writeln!(md, "\n## Checks\n");
    for c in &r.checks {
        let _ = writeln!(
            md,
            "- {} {}: {}",
            if c.passed { "passed:" } else { "**FAILED**:" },
            c.what,
            c.detail
        );
    }
    let _ = writeln!(md, "\n![throughput and p99 over time](load.svg)");
    md
}

/// Two panels sharing the time axis: requests per second, and p99 per second.
fn plot(path: &Path, r: &Report) -> anyhow::Result<()> {
    // Phases run one after another: place each on the run's time axis.
    let mut series = Vec::new();
    let mut offset = 0usize;
    for p in &r.phases {
        let points: Vec<(usize, f64, f64)> = p
            .timeline
            .iter()
            .map(|s| (offset + s.second, s.per_sec, s.p99_ms))
            .collect();
        offset += p.timeline.len().max(1);
        series.push((p.scenario.clone(), points));
    }
    let max_x = offset.max(1);
    let max_rps = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let max_p99 = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.2))
        .fold(1.0, f64::max);

    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).context("drawing the plot")?;
    let (top, bottom) = root.split_vertically(320);
    let panels = [
        (top, "requests per second", max_rps * 1.1, true),
        (bottom, "p99 latency per second (ms)", max_p99 * 1.1, false),
    ];
    for (area, title, max_y, rps) in panels {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0usize..max_x, 0f64..max_y)
            .context("drawing the plot")?;
        chart
            .configure_mesh()
            .x_desc("seconds since the start of the run")
            .draw()
            .context("drawing the plot")?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, if rps { p.1 } else { p.2 })),
                    color.stroke_width(2),
                ))
                .context("drawing the plot")?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .context("drawing the plot")?;
    }
    root.present().context("writing the plot")?;
    Ok(())
}

/// The figures of a phase as a Markdown table row.
fn markdown_row(p: &PhaseReport) -> String {
    format!("| {} |", p.cells().join(" | "))
}

fn writable_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create the report directory {}", path.display()))
}
