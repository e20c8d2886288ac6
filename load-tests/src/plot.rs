//! The latency histogram as SVG (plotters' SVG backend, no font files needed): one line per
//! scenario, log-spaced buckets (10 per decade) on a log-scale latency axis, so a 20 ms checkout
//! and a 4 s slow provider are both readable on one chart.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Buckets per factor of ten.
const PER_DECADE: f64 = 10.0;

/// Okabe–Ito: distinguishable with every common colour-vision deficiency.
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// `(start ms, end ms, count)`.
pub type Bucket = (f64, f64, u64);

/// `(bucket start ms, bucket end ms, count)` of `h`, over the decades `lo_exp..hi_exp`.
pub fn buckets(h: &Histogram<u64>, lo_exp: i32, hi_exp: i32) -> Vec<Bucket> {
    let n = ((hi_exp - lo_exp) as f64 * PER_DECADE).round() as usize;
    let edge = |i: usize| 10f64.powf(lo_exp as f64 + i as f64 / PER_DECADE);
    let mut out: Vec<Bucket> = (0..n).map(|i| (edge(i), edge(i + 1), 0)).collect();
    for v in h.iter_recorded() {
        let ms = h.median_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        let i = (((ms.log10() - lo_exp as f64) * PER_DECADE).floor().max(0.0) as usize).min(n - 1);
        out[i].2 += v.count_at_value();
    }
    out
}

/// Decades covering every recorded value of every series: `(lo_exp, hi_exp)`.
fn decades<'a>(series: impl Iterator<Item = &'a Histogram<u64>>) -> (i32, i32) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for h in series.filter(|h| !h.is_empty()) {
        lo = lo.min(h.min().max(1) as f64 / 1000.0);
        hi = hi.max(h.max().max(1) as f64 / 1000.0);
    }
    if lo > hi {
        return (0, 1);
    }
    let lo_exp = lo.log10().floor() as i32;
    let hi_exp = (hi.log10().floor() as i32 + 1).max(lo_exp + 1);
    (lo_exp, hi_exp)
}

/// Renders the chart of `series` (name, histogram of µs) to an SVG string.
pub fn latency_svg(title: &str, series: &[(String, &Histogram<u64>)]) -> Result<String, String> {
    let (lo_exp, hi_exp) = decades(series.iter().map(|(_, h)| *h));
    let binned: Vec<(String, Vec<Bucket>)> = series
        .iter()
        .map(|(name, h)| (name.clone(), buckets(h, lo_exp, hi_exp)))
        .collect();
    let ymax = binned
        .iter()
        .flat_map(|(_, b)| b.iter().map(|x| x.2))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_range = (10f64.powi(lo_exp)..10f64.powi(hi_exp)).log_scale();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, 0u64..(ymax + ymax / 10 + 1))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("latency, ms (log scale; scheduled time → last byte)")
            .y_desc("requests per bucket")
            .x_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, b)) in binned.iter().enumerate() {
            let color = color(i);
            // A step line: flat across each bucket.
            let pts: Vec<(f64, u64)> = b
                .iter()
                .flat_map(|(a, z, c)| [(*a, *c), (*z, *c)])
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One strategy's bars on the sampling-lab chart: name and the percentages kept.
pub struct KeptBars {
    pub name: String,
    pub traces_pct: f64,
    pub error_traces_pct: f64,
    pub slow_traces_pct: f64,
}

/// Reads one share out of a strategy's bars.
type Share = fn(&KeptBars) -> f64;

/// The sampling lab's chart: per strategy, the share of all, error and slow traces it kept.
pub fn sampling_svg(title: &str, bars: &[KeptBars]) -> Result<String, String> {
    let groups = bars.len().max(1);
    let kinds: [(&str, Share); 3] = [
        ("all traces", |b| b.traces_pct),
        ("error traces", |b| b.error_traces_pct),
        ("slow traces", |b| b.slow_traces_pct),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| e.to_string())?;
        // The legend gets its own column, so it never covers a bar.
        let (plot_area, legend_area) = root.split_horizontally(850);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(16)
            .x_label_area_size(12)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..(groups * 4) as f64, 0f64..118f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(12)
            .y_label_formatter(&|y| {
                if *y <= 100.0 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .y_desc("% of the run's traces of that kind kept")
            .draw()
            .map_err(|e| e.to_string())?;
        // Strategy names above their group (the area under the x axis has no room for them).
        let centered = Pos::new(HPos::Center, VPos::Center);
        let name_style = ("sans-serif", 18).into_font().color(&BLACK).pos(centered);
        chart
            .draw_series(bars.iter().enumerate().map(|(g, b)| {
                Text::new(
                    b.name.clone(),
                    (g as f64 * 4.0 + 2.0, 111.0),
                    name_style.clone(),
                )
            }))
            .map_err(|e| e.to_string())?;
        let value_style = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (k, (_, value)) in kinds.iter().enumerate() {
            let c = color(k);
            chart
                .draw_series(bars.iter().enumerate().map(|(g, b)| {
                    let x0 = g as f64 * 4.0 + 0.5 + k as f64;
                    Rectangle::new([(x0, 0.0), (x0 + 0.9, value(b))], c.filled())
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(bars.iter().enumerate().map(|(g, b)| {
                    let x = g as f64 * 4.0 + 0.95 + k as f64;
                    Text::new(
                        format!("{:.0}", value(b)),
                        (x, value(b) + 1.0),
                        value_style.clone(),
                    )
                }))
                .map_err(|e| e.to_string())?;
        }
        let label_style = ("sans-serif", 15).into_font().color(&BLACK);
        for (k, (label, _)) in kinds.iter().enumerate() {
            let y = 40 + 26 * k as i32;
            legend_area
                .draw(&Rectangle::new([(8, y), (24, y + 14)], color(k).filled()))
                .map_err(|e| e.to_string())?;
            legend_area
                .draw(&Text::new(*label, (32, y), label_style.clone()))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes [`latency_svg`] to `path`, creating its directory.
pub fn write_latency_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    write_svg(path, &latency_svg(title, series)?)
}

/// Writes an SVG document to `path`, creating its directory.
pub fn write_svg(path: &Path, svg: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::histogram;

    #[test]
    fn every_recorded_value_lands_in_one_bucket() {
        let mut h = histogram();
        for ms in [3u64, 20, 21, 26, 1300, 4100] {
            h.record(ms * 1000).unwrap();
        }
        let (lo, hi) = decades(std::iter::once(&h));
        assert_eq!((lo, hi), (0, 4));
        let b = buckets(&h, lo, hi);
        assert_eq!(b.len(), 40);
        assert_eq!(b.iter().map(|x| x.2).sum::<u64>(), 6);
        let twenty = b.iter().find(|(a, z, _)| *a <= 20.0 && 20.0 < *z).unwrap();
        assert_eq!(
            twenty.2, 2,
            "20 and 21 ms share a bucket, 26 ms is in the next"
        );
    }

    #[test]
    fn the_svg_names_each_scenario() {
        let mut a = histogram();
        let mut b = histogram();
        a.record(20_000).unwrap();
        b.record(1_300_000).unwrap();
        let svg = latency_svg(
            "test",
            &[("checkout".into(), &a), ("payment.slow".into(), &b)],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("checkout") && svg.contains("payment.slow"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }

    #[test]
    fn the_sampling_chart_names_each_strategy_and_its_shares() {
        let bars = [
            KeptBars {
                name: "head".into(),
                traces_pct: 10.0,
                error_traces_pct: 0.0,
                slow_traces_pct: 5.0,
            },
            KeptBars {
                name: "tail".into(),
                traces_pct: 21.0,
                error_traces_pct: 100.0,
                slow_traces_pct: 100.0,
            },
        ];
        let svg = sampling_svg("lab", &bars).unwrap();
        for text in [
            "head",
            "tail",
            ">\n21\n<",
            ">\n100\n<",
            "error traces",
            "slow traces",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
