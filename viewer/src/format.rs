//! Text for durations and timestamps, computed the same way on the server and in the browser (a
//! locale-dependent clock would make the hydrated page differ from the server's HTML).

/// `850µs`, `12.3ms`, `345ms`, `1.24s`, `2m 5s`.
pub fn duration_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..10_000 => format!("{:.2}ms", us as f64 / 1e3),
        10_000..100_000 => format!("{:.1}ms", us as f64 / 1e3),
        100_000..1_000_000 => format!("{}ms", (us + 500) / 1000),
        1_000_000..60_000_000 => format!("{:.2}s", us as f64 / 1e6),
        _ => format!("{}m {}s", us / 60_000_000, (us / 1_000_000) % 60),
    }
}

/// Where a bar's duration label goes, for a bar from `start_pct` to `end_pct` % of its lane: after
/// the bar while it ends before `after_below` %, else inside it when it is wider than `inside_above`
/// % of the lane, else before it — so the label never runs off the lane or over a bar unreadably.
/// The CSS class and the inline style that place it.
pub fn bar_label(
    start_pct: f64,
    end_pct: f64,
    after_below: f64,
    inside_above: f64,
) -> (&'static str, String) {
    if end_pct < after_below {
        ("bar-label", format!("left: {end_pct:.3}%"))
    } else if end_pct - start_pct > inside_above {
        (
            "bar-label inside",
            format!("right: {:.3}%", 100.0 - end_pct),
        )
    } else {
        (
            "bar-label before",
            format!("right: {:.3}%", 100.0 - start_pct),
        )
    }
}

/// `2026-12-02 06:13:18.123 UTC` from µs since the Unix epoch.
pub fn timestamp_us(us: u64) -> String {
    let secs = us / 1_000_000;
    let ms = (us / 1000) % 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03} UTC",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// `06:13:18` from µs since the epoch (axis labels).
pub fn clock_us(us: u64) -> String {
    let s = (us / 1_000_000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_seeds() {
        assert_eq!(duration_us(850), "850µs");
        assert_eq!(duration_us(1_234), "1.23ms");
        assert_eq!(duration_us(12_340), "12.3ms");
        assert_eq!(duration_us(345_400), "345ms");
        assert_eq!(duration_us(1_244_000), "1.24s");
        assert_eq!(duration_us(125_000_000), "2m 5s");
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp_us(0), "1970-01-01 00:00:00.000 UTC");
        // 2026-12-02T06:13:18.123Z
        assert_eq!(
            timestamp_us(1_796_191_998_123_000),
            "2026-12-02 06:13:18.123 UTC"
        );
        assert_eq!(
            timestamp_us(951_782_400_000_000),
            "2000-02-29 00:00:00.000 UTC"
        );
        assert_eq!(clock_us(1_796_191_998_123_000), "06:13:18");
    }

    #[test]
    fn bar_labels_stay_in_their_lane() {
        assert_eq!(
            bar_label(10.0, 20.0, 88.0, 10.0),
            ("bar-label", "left: 20.000%".into())
        );
        assert_eq!(
            bar_label(50.0, 95.0, 88.0, 10.0),
            ("bar-label inside", "right: 5.000%".into())
        );
        assert_eq!(
            bar_label(93.0, 95.0, 88.0, 10.0),
            ("bar-label before", "right: 7.000%".into())
        );
    }
}
