//! Draws the charts of docs/PERFORMANCE.md from the benches' figures.
//!
//! The benches `redis_best`, `memory`, `growth` and `snapshot` write CSV
//! files into the directory named by `HASHKV_CHART_DATA`; this program turns
//! those files into SVG charts:
//!
//! | data | chart |
//! |---|---|
//! | `redis_best.csv` | `redis_best.svg`: throughput against Redis at its best |
//! | `memory.csv` | `memory.svg`: memory per field against Redis |
//! | `growth.csv` | `growth.svg`: HSET latency while one hash grows |
//! | `snapshot_latency.csv`, `snapshot_runs.csv` | `snapshot.svg`: HSET latency while snapshots run |
//!
//! Run: `cargo run --release --example charts -- [DATA_DIR [OUT_DIR]]`
//! (default `docs/charts/data` and `docs/charts`). A missing data file skips
//! its chart. `docs/charts/regenerate.sh` reruns the benches and then this.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// hashkv's colour in every chart.
const HASHKV: RGBColor = RGBColor(0xd9, 0x48, 0x1f);
/// Redis's colour.
const REDIS: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
/// A neutral third colour (raw data size, quiet runs' maxima).
const GREY: RGBColor = RGBColor(0x9a, 0x9a, 0x9a);

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 520);

/// A line of a chart: its name, colour, width and points.
type Line<'a> = (&'a str, RGBColor, u32, &'a Vec<(f64, f64)>);

/// Draws one chart from the data directory into the output directory.
type Draw = fn(&Path, &Path) -> Result<()>;

/// One CSV file of a bench: its `# ` notes, header and rows.
struct Table {
    notes: Vec<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path)?;
        let mut notes = Vec::new();
        let mut lines = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match line.strip_prefix("# ") {
                Some(note) => notes.push(note.to_owned()),
                None => lines.push(line.split(',').map(str::to_owned).collect::<Vec<_>>()),
            }
        }
        if lines.is_empty() {
            return Err(format!("{}: no header", path.display()).into());
        }
        let header = lines.remove(0);
        Ok(Table {
            notes,
            header,
            rows: lines,
        })
    }

    fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column {name}").into())
    }

    /// The column as numbers (an empty cell is missing).
    fn nums(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let c = self.col(name)?;
        self.rows
            .iter()
            .map(|r| {
                let cell = r.get(c).map_or("", String::as_str);
                if cell.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(cell.parse::<f64>()?))
                }
            })
            .collect()
    }

    fn strs(&self, name: &str) -> Result<Vec<String>> {
        let c = self.col(name)?;
        Ok(self.rows.iter().map(|r| r[c].clone()).collect())
    }

    /// The note starting with `key: `, without it.
    fn note(&self, key: &str) -> Option<&str> {
        self.notes
            .iter()
            .find_map(|n| n.strip_prefix(key)?.strip_prefix(": "))
    }

    /// The footer lines: what was measured, and by which command where.
    fn footer(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .notes
            .iter()
            .filter(|n| {
                !["command: ", "date: ", "machine: "]
                    .iter()
                    .any(|k| n.starts_with(k))
            })
            .cloned()
            .collect();
        lines.push(format!(
            "{} on {} ({})",
            self.note("command").unwrap_or("?"),
            self.note("date").unwrap_or("?"),
            self.note("machine").unwrap_or("?")
        ));
        lines
    }
}

/// The drawing area of a chart and the area of its footer notes.
fn canvas<'a>(
    path: &'a Path,
    footer: &[String],
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let footer_height = 8 + 16 * footer.len() as u32;
    let (chart, notes) = root.split_vertically(SIZE.1 - footer_height);
    let style = TextStyle::from((FONT, 12).into_font()).color(&RGBColor(0x55, 0x55, 0x55));
    for (i, line) in footer.iter().enumerate() {
        notes.draw(&Text::new(
            line.clone(),
            (15, 2 + 16 * i as i32),
            style.clone(),
        ))?;
    }
    Ok(chart)
}

/// A series of a bar chart: its name, colour and one value per group.
struct Bars {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

/// Grouped bars: one group per label, one bar per series in each, the value
/// printed over each bar by `fmt`.
fn grouped_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Bars],
    fmt: &dyn Fn(f64) -> String,
    footer: &[String],
) -> Result<()> {
    let area = canvas(path, footer)?;
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let n = groups.len() as f64;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..top * 1.18)?;
    // Labels fall on multiples of 0.5: a group's name at its centre.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let centre = x - 0.5;
            if (centre - centre.round()).abs() < 1e-6 && centre >= 0.0 {
                groups
                    .get(centre.round() as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style((FONT, 14))
        .y_desc(y_desc)
        .y_label_formatter(&|y| {
            if y.fract() == 0.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .y_label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let width = 0.8 / series.len() as f64;
    let value_style =
        TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (k, s) in series.iter().enumerate() {
        let color = s.color;
        let bar = |i: usize| {
            let x0 = i as f64 + 0.1 + width * k as f64;
            (x0 + 0.01, x0 + width - 0.01)
        };
        chart
            .draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
                let (x0, x1) = bar(i);
                v.map(|v| Rectangle::new([(x0, 0.0), (x1, v)], color.filled()))
            }))?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart.draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
            let (x0, x1) = bar(i);
            v.map(|v| {
                Text::new(
                    fmt(v),
                    ((x0 + x1) / 2.0, v + top * 0.01),
                    value_style.clone(),
                )
            })
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    area.present()?;
    Ok(())
}

/// Throughput against Redis at its best (`redis_best.csv`).
fn redis_best(data: &Path, out: &Path) -> Result<()> {
    let t = Table::read(&data.join("redis_best.csv"))?;
    let millions = |v: Vec<Option<f64>>| v.into_iter().map(|x| x.map(|x| x / 1e6)).collect();
    let mut footer = vec!["Redis 7: redis-benchmark -c 50 -P 64 (50 connections, 64 commands a round trip, the best of its settings); hashkv: one thread, in process".to_owned()];
    footer.extend(t.footer());
    grouped_bars(
        &out.join("redis_best.svg"),
        "Throughput against Redis at its best (random keys)",
        "million commands per second",
        &t.strs("measure")?,
        &[
            Bars {
                name: "hashkv".into(),
                color: HASHKV,
                values: millions(t.nums("hashkv_ops_per_s")?),
            },
            Bars {
                name: "Redis (-c 50 -P 64)".into(),
                color: REDIS,
                values: millions(t.nums("redis_ops_per_s")?),
            },
        ],
        &|v| format!("{v:.2} M/s"),
        &footer,
    )
}

/// Memory per field against Redis (`memory.csv`).
fn memory(data: &Path, out: &Path) -> Result<()> {
    let t = Table::read(&data.join("memory.csv"))?;
    let fields = t.nums("fields")?;
    let groups: Vec<String> = t
        .strs("dataset")?
        .iter()
        .zip(&fields)
        .map(|(d, f)| format!("{d} ({:.1} M fields)", f.unwrap_or(0.0) / 1e6))
        .collect();
    grouped_bars(
        &out.join("memory.svg"),
        "Memory per field against Redis (lower is better)",
        "bytes per field (resident memory)",
        &groups,
        &[
            Bars {
                name: "raw field + value bytes".into(),
                color: GREY,
                values: t.nums("raw_bytes_per_field")?,
            },
            Bars {
                name: "hashkv".into(),
                color: HASHKV,
                values: t.nums("hashkv_bytes_per_field")?,
            },
            Bars {
                name: "Redis".into(),
                color: REDIS,
                values: t.nums("redis_bytes_per_field")?,
            },
        ],
        &|v| format!("{v:.1}"),
        &t.footer(),
    )
}

/// The points of a line, skipping missing values.
fn points(xs: &[Option<f64>], ys: &[Option<f64>]) -> Vec<(f64, f64)> {
    xs.iter()
        .zip(ys)
        .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
        .collect()
}

/// The smallest and largest `y` of lines, for a log axis (powers of ten
/// around them).
fn log_bounds(lines: &[&[(f64, f64)]]) -> (f64, f64) {
    let ys = lines
        .iter()
        .flat_map(|l| l.iter().map(|p| p.1))
        .filter(|y| *y > 0.0);
    let (lo, hi) = ys.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    )
}

/// HSET latency over time while one hash grows (`growth.csv`).
fn growth(data: &Path, out: &Path) -> Result<()> {
    let t = Table::read(&data.join("growth.csv"))?;
    let x = t.nums("elapsed_s")?;
    let fields = t.nums("fields")?;
    let max = points(&x, &t.nums("max_us")?);
    let p99 = points(&x, &t.nums("p99_us")?);
    let mean = points(&x, &t.nums("mean_us")?);
    let (lo, hi) = log_bounds(&[&max, &p99, &mean]);
    let end = max.last().map_or(1.0, |p| p.0);
    let total = fields.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let path = out.join("growth.svg");
    let area = canvas(&path, &t.footer())?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            format!(
                "HSET latency while one hash grows to {:.0} M fields",
                total / 1e6
            ),
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc("latency of one HSET (µs, log scale)")
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (name, color, line) in [
        ("slowest call", GREY, &max),
        ("p99", HASHKV, &p99),
        ("mean", REDIS, &mean),
    ] {
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(format!("{name} of each {} calls", slice_size(&fields)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    area.present()?;
    Ok(())
}

/// The number of calls a growth row covers (its first row's field count).
fn slice_size(fields: &[Option<f64>]) -> String {
    let n = fields.first().copied().flatten().unwrap_or(0.0) as u64;
    // Thousands separators, as the docs write numbers.
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// HSET latency over time with and without snapshots running
/// (`snapshot_latency.csv`, `snapshot_runs.csv`).
fn snapshot(data: &Path, out: &Path) -> Result<()> {
    let t = Table::read(&data.join("snapshot_latency.csv"))?;
    let runs = Table::read(&data.join("snapshot_runs.csv"))?;
    let phase = t.strs("phase")?;
    let x: Vec<Option<f64>> = t
        .nums("t_ms")?
        .into_iter()
        .map(|v| v.map(|ms| ms / 1e3))
        .collect();
    let pick = |col: &str, want: &str| -> Result<Vec<(f64, f64)>> {
        let ys = t.nums(col)?;
        let keep: Vec<Option<f64>> = ys
            .iter()
            .zip(&phase)
            .map(|(y, p)| if p == want { *y } else { None })
            .collect();
        Ok(points(&x, &keep))
    };
    let quiet_max = pick("max_us", "none")?;
    let quiet_p99 = pick("p99_us", "none")?;
    let busy_max = pick("max_us", "snapshots")?;
    let busy_p99 = pick("p99_us", "snapshots")?;
    let (lo, hi) = log_bounds(&[&quiet_max, &quiet_p99, &busy_max, &busy_p99]);
    let end = x.iter().flatten().fold(0.0f64, |a, &b| a.max(b)) + 0.01;
    let spans: Vec<(f64, f64)> = points(&runs.nums("start_ms")?, &runs.nums("end_ms")?)
        .into_iter()
        .map(|(a, b)| (a / 1e3, (b / 1e3).min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    let path = out.join("snapshot.svg");
    let area = canvas(&path, &t.footer())?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "HSET latency at 100,000 writes/s, with and without snapshots",
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc("latency of one HSET (µs, log scale)")
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    // Snapshots run back to back: a dashed line where each one starts.
    let mark = RGBColor(0x2e, 0x8b, 0x57);
    chart
        .draw_series(spans.iter().map(|&(a, _)| {
            DashedPathElement::new(vec![(a, lo), (a, hi)], 4, 4, mark.stroke_width(1))
        }))?
        .label("a snapshot starts")
        .legend(move |(x, y)| {
            DashedPathElement::new(vec![(x, y), (x + 18, y)], 4, 3, mark.stroke_width(1))
        });
    let lines: [Line<'_>; 4] = [
        (
            "slowest write, no snapshot",
            RGBColor(0x9d, 0xb7, 0xd5),
            1,
            &quiet_max,
        ),
        ("p99, no snapshot", REDIS, 2, &quiet_p99),
        (
            "slowest write, during snapshots",
            RGBColor(0xf0, 0x9a, 0x7a),
            1,
            &busy_max,
        ),
        ("p99, during snapshots", HASHKV, 2, &busy_p99),
    ];
    for (name, color, width, line) in lines {
        chart
            .draw_series(LineSeries::new(
                line.iter().copied(),
                color.stroke_width(width),
            ))?
            .label(format!("{name} (each 20 ms)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    area.present()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = PathBuf::from(args.first().map_or("docs/charts/data", String::as_str));
    let out = PathBuf::from(args.get(1).map_or("docs/charts", String::as_str));
    std::fs::create_dir_all(&out)?;
    let charts: [(&str, Draw); 4] = [
        ("redis_best", redis_best),
        ("memory", memory),
        ("growth", growth),
        ("snapshot", snapshot),
    ];
    let mut failed = 0;
    for (name, draw) in charts {
        match draw(&data, &out) {
            Ok(()) => println!("{}", out.join(format!("{name}.svg")).display()),
            Err(e)
                if e.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
                    == Some(std::io::ErrorKind::NotFound) =>
            {
                eprintln!("{name}: no data, skipped ({e})");
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} chart(s) failed").into());
    }
    Ok(())
}
