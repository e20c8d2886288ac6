//! The latency histogram as SVG (plotters' SVG backend, no font files needed): one line per
//! scenario, log-spaced buckets (10 per decade) on a log-scale latency axis, so a 20 ms checkout
//! and a 4 s slow provider are both readable on one chart.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Buckets per factor of ten.
const PER_DECADE: f64 = 10.0;

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
            let color = Palette99::pick(i).to_rgba();
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

/// Writes [`latency_svg`] to `path`, creating its directory.
pub fn write_latency_svg(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<(), String> {
    let svg = latency_svg(title, series)?;
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
}
