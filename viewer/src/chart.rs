//! Geometry of the RED pages' time charts and sparklines, as pure functions: the scale from
//! (time, value) to SVG coordinates, a "nice" axis maximum, and line paths that break where an
//! interval has no value (no calls → no latency) instead of drawing through it.

/// A chart's size and margins, in SVG user units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    /// Room for the value labels on the left.
    pub left: f64,
    pub right: f64,
    pub top: f64,
    /// Room for the time labels at the bottom.
    pub bottom: f64,
}

impl Frame {
    /// A sparkline: no axes, no margins beyond the stroke.
    pub const fn sparkline(width: f64, height: f64) -> Self {
        Self {
            width,
            height,
            left: 1.0,
            right: 1.0,
            top: 2.0,
            bottom: 2.0,
        }
    }

    pub fn plot_bottom(&self) -> f64 {
        self.height - self.bottom
    }

    pub fn plot_right(&self) -> f64 {
        self.width - self.right
    }
}

/// Maps times (Unix ms) in `[t0, t1]` and values in `[0, y_max]` onto a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub frame: Frame,
    pub t0: u64,
    pub t1: u64,
    pub y_max: f64,
}

impl Scale {
    pub fn new(frame: Frame, t0: u64, t1: u64, y_max: f64) -> Self {
        Self {
            frame,
            t0,
            t1: t1.max(t0 + 1),
            y_max: if y_max > 0.0 { y_max } else { 1.0 },
        }
    }

    pub fn x(&self, t_ms: u64) -> f64 {
        let f = &self.frame;
        let share = t_ms.clamp(self.t0, self.t1).saturating_sub(self.t0) as f64
            / (self.t1 - self.t0) as f64;
        f.left + share * (f.plot_right() - f.left)
    }

    /// Values above `y_max` sit on the top edge.
    pub fn y(&self, v: f64) -> f64 {
        let f = &self.frame;
        let share = (v / self.y_max).clamp(0.0, 1.0);
        f.plot_bottom() - share * (f.plot_bottom() - f.top)
    }

    /// An SVG path through `points` (time, value), with a new sub-path after every gap; `""`
    /// when no point has a value. A lone value between gaps is a short horizontal tick, so it
    /// stays visible.
    pub fn path(&self, points: &[(u64, Option<f64>)]) -> String {
        let mut out = String::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            match run.as_slice() {
                [] => {}
                [(x, y)] => out.push_str(&format!("M{:.1} {y:.1}h4 ", x - 2.0)),
                [first, rest @ ..] => {
                    out.push_str(&format!("M{:.1} {:.1}", first.0, first.1));
                    for (x, y) in rest {
                        out.push_str(&format!(" L{x:.1} {y:.1}"));
                    }
                    out.push(' ');
                }
            }
            run.clear();
        };
        for (t, v) in points {
            match v {
                Some(v) if v.is_finite() => run.push((self.x(*t), self.y(*v))),
                _ => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
        out.trim_end().to_string()
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (an axis maximum people read at a glance); 1
/// for nothing to show.
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|m| *m >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Frame = Frame {
        width: 200.0,
        height: 100.0,
        left: 20.0,
        right: 0.0,
        top: 0.0,
        bottom: 20.0,
    };

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.2), 2.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(1210.0), 2000.0);
        assert_eq!(nice_max(0.034), 0.05);
    }

    #[test]
    fn the_scale_maps_the_corners_and_clamps() {
        let s = Scale::new(FRAME, 1_000, 2_000, 10.0);
        assert_eq!((s.x(1_000), s.y(0.0)), (20.0, 80.0));
        assert_eq!((s.x(2_000), s.y(10.0)), (200.0, 0.0));
        assert_eq!(s.x(1_500), 110.0);
        assert_eq!((s.x(0), s.x(9_999)), (20.0, 200.0));
        assert_eq!(s.y(50.0), 0.0, "above the maximum: on the top edge");
        // Degenerate ranges still map somewhere sensible.
        let s = Scale::new(FRAME, 5, 5, 0.0);
        assert!(s.x(5).is_finite() && s.y(0.0) == 80.0);
    }

    #[test]
    fn paths_break_at_gaps_and_show_lone_points() {
        let s = Scale::new(FRAME, 0, 180, 10.0);
        let pts = [
            (0, Some(0.0)),
            (20, Some(10.0)),
            (40, None),
            (60, Some(5.0)),
            (80, None),
            (100, Some(5.0)),
            (120, Some(f64::NAN)),
        ];
        assert_eq!(
            s.path(&pts),
            "M20.0 80.0 L40.0 0.0 M78.0 40.0h4 M118.0 40.0h4"
        );
        assert_eq!(s.path(&[(0, None)]), "");
        assert_eq!(s.path(&[]), "");
    }
}
