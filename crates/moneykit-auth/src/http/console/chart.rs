//! Line charts as inline SVG, for the console's Overview (tokens issued per second,
//! failed client authentications over the last hour).
//!
//! Pure string building, so the page needs no charting script and no image requests: the
//! console's strict Content-Security-Policy allows neither scripts nor inline styles, so
//! the SVG carries only `class` attributes and SVG presentation attributes (`fill`,
//! `stroke`, `font-size`), which `style-src` does not govern. Colours can be overridden by
//! the console's stylesheet through the classes; the line is drawn in `currentColor`.

use std::fmt::Write;

/// The `viewBox`: the chart scales to its container, so these are only proportions.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
/// The plot area inside it, leaving room for the axis labels.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 592.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 136.0;
/// Larger values are drawn as this, so the axis label stays a printable number.
const CEILING: f64 = 1e12;

/// A rendered chart, with the numbers it was drawn from for the text around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The `<svg>` element, ready to embed in a page (escaped; no scripts, no `style`).
    pub svg: String,
    /// The top of the y axis: the "nice" number (1, 2 or 5 × 10ⁿ, at least 1) the points
    /// are scaled to.
    pub max: f64,
    /// The newest point (0 without points), for a caption such as "now: 3.5 tokens/s".
    pub latest: f64,
    /// The points as drawn, oldest first: a NaN, infinite or negative input is 0, and
    /// values above 10¹² are 10¹².
    pub points: Vec<f64>,
}

/// Draws `points` (oldest first, one per `bucket_secs`, the newest ending now) as a line
/// chart titled `title`, values in `unit` (e.g. `tokens/s`).
///
/// The x axis is labelled with the span the points cover (`-60 min` … `now`), the y axis
/// with 0 and [`Chart::max`]. No points, or only zeros, draw a flat line at 0.
pub fn line_chart(title: &str, unit: &str, points: &[f64], bucket_secs: u32) -> Chart {
    let points: Vec<f64> = points.iter().copied().map(clean).collect();
    let peak = points.iter().copied().fold(0.0, f64::max);
    let latest = points.last().copied().unwrap_or(0.0);
    let max = nice_max(peak);
    let span_secs = u64::from(bucket_secs).saturating_mul(points.len() as u64);

    let label = if points.is_empty() {
        format!("{title}: no data yet")
    } else {
        format!(
            "{title} over the last {}: latest {} {unit}, peak {} {unit}",
            duration(span_secs),
            num(latest),
            num(peak),
        )
    };
    let mut svg = String::with_capacity(1024 + points.len() * 16);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}"><title>{}</title>"#,
        num(WIDTH),
        num(HEIGHT),
        escape(&label),
        escape(title),
    );

    // Light grid: 0, half and max across; quarters of the time span down.
    svg.push_str(r##"<g class="chart-grid" stroke="#e5e7eb" stroke-width="1">"##);
    for y in [TOP, (TOP + BOTTOM) / 2.0, BOTTOM] {
        line(&mut svg, LEFT, y, RIGHT, y);
    }
    for quarter in 0..=4 {
        let x = LEFT + (RIGHT - LEFT) * f64::from(quarter) / 4.0;
        line(&mut svg, x, TOP, x, BOTTOM);
    }
    svg.push_str("</g>");

    svg.push_str(r##"<g class="chart-labels" fill="#6b7280" font-size="11">"##);
    text(&mut svg, "chart-unit", LEFT, TOP - 5.0, "start", unit);
    text(&mut svg, "chart-y", LEFT - 6.0, TOP + 4.0, "end", &num(max));
    text(&mut svg, "chart-y", LEFT - 6.0, BOTTOM + 4.0, "end", "0");
    if span_secs > 0 {
        let ago = format!("-{}", duration(span_secs));
        text(&mut svg, "chart-x", LEFT, HEIGHT - 6.0, "start", &ago);
    }
    text(&mut svg, "chart-x", RIGHT, HEIGHT - 6.0, "end", "now");
    svg.push_str("</g>");

    // A polyline needs two points to show: fewer draw one value across the whole width.
    let drawn: Vec<f64> = match points.as_slice() {
        [] => vec![0.0, 0.0],
        [only] => vec![*only, *only],
        many => many.to_vec(),
    };
    svg.push_str(
        r#"<polyline class="chart-line" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" points=""#,
    );
    let last = (drawn.len() - 1) as f64;
    for (i, value) in drawn.iter().enumerate() {
        let x = LEFT + (RIGHT - LEFT) * i as f64 / last;
        let y = BOTTOM - (BOTTOM - TOP) * value / max;
        if i > 0 {
            svg.push(' ');
        }
        let _ = write!(svg, "{},{}", num(x), num(y));
    }
    svg.push_str(r#""/></svg>"#);

    Chart {
        svg,
        max,
        latest,
        points,
    }
}

/// A point as drawn: what cannot be drawn (NaN, infinite, negative) is 0, and absurdly
/// large values are capped so the axis label stays a plain number.
fn clean(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value.min(CEILING)
    } else {
        0.0
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … at least `peak`: an axis top people read at a
/// glance. Counted up from 1 rather than taken from a logarithm, whose rounding near
/// powers of ten could land a decade off.
fn nice_max(peak: f64) -> f64 {
    let peak = clean(peak);
    let mut decade = 1.0;
    loop {
        for step in [1.0, 2.0, 5.0] {
            if step * decade >= peak {
                return step * decade;
            }
        }
        decade *= 10.0;
    }
}

/// `value` with at most two decimals and no trailing zeros (`2`, `0.5`, `1.23`).
fn num(value: f64) -> String {
    let fixed = format!("{value:.2}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" | "" => "0".to_owned(),
        other => other.to_owned(),
    }
}

/// A span for people: whole hours from 2 h, whole minutes, else seconds.
fn duration(secs: u64) -> String {
    if secs >= 7200 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `raw` safe in SVG text and in a double- or single-quoted attribute.
fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn line(svg: &mut String, x1: f64, y1: f64, x2: f64, y2: f64) {
    let _ = write!(
        svg,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}"/>"#,
        num(x1),
        num(y1),
        num(x2),
        num(y2)
    );
}

fn text(svg: &mut String, class: &str, x: f64, y: f64, anchor: &str, content: &str) {
    let _ = write!(
        svg,
        r#"<text class="{class}" x="{}" y="{}" text-anchor="{anchor}">{}</text>"#,
        num(x),
        num(y),
        escape(content)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polyline's points, `(x, y)`.
    fn drawn(svg: &str) -> Vec<(f64, f64)> {
        let start = svg.find("<polyline").expect("a polyline");
        let attr = &svg[start..];
        let attr = &attr[attr.find(r#"points=""#).expect("points") + 8..];
        let attr = &attr[..attr.find('"').expect("closing quote")];
        attr.split(' ')
            .map(|pair| {
                let (x, y) = pair.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    #[test]
    fn the_axis_top_is_a_nice_number_at_least_one() {
        for (peak, max) in [
            (0.0, 1.0),
            (0.004, 1.0),
            (1.0, 1.0),
            (1.01, 2.0),
            (2.0, 2.0),
            (2.5, 5.0),
            (5.0, 5.0),
            (7.0, 10.0),
            (10.0, 10.0),
            (11.0, 20.0),
            (999.0, 1000.0),
            (1000.0, 1000.0),
            (1001.0, 2000.0),
            (f64::NAN, 1.0),
            (-3.0, 1.0),
        ] {
            assert_eq!(nice_max(peak), max, "peak {peak}");
        }
    }

    #[test]
    fn points_are_scaled_to_the_nice_max() {
        let chart = line_chart("Tokens", "tokens/s", &[0.0, 5.0, 2.0, 3.0], 60);
        assert_eq!(chart.max, 5.0);
        assert_eq!(chart.latest, 3.0);
        let xy = drawn(&chart.svg);
        assert_eq!(xy.len(), 4);
        // The largest point reaches the top, 0 sits on the bottom, the rest in proportion.
        assert_eq!(xy[1].1, TOP);
        assert_eq!(xy[0].1, BOTTOM);
        assert_eq!(xy[2].1, BOTTOM - (BOTTOM - TOP) * 0.4);
        // Oldest on the left, newest on the right, evenly spaced.
        assert_eq!((xy[0].0, xy[3].0), (LEFT, RIGHT));
        // Coordinates are written with two decimals.
        assert!(
            (xy[1].0 - (LEFT + (RIGHT - LEFT) / 3.0)).abs() <= 0.005,
            "{xy:?}"
        );

        // A peak between nice numbers stays below the top.
        let chart = line_chart("Tokens", "tokens/s", &[3.0, 1.0], 60);
        assert_eq!(chart.max, 5.0);
        assert_eq!(drawn(&chart.svg)[0].1, BOTTOM - (BOTTOM - TOP) * 0.6);
    }

    #[test]
    fn axes_are_labelled() {
        let chart = line_chart("Tokens", "tokens/s", &[0.5; 60], 60);
        assert_eq!(chart.max, 1.0);
        for label in [
            ">-60 min</text>",
            ">now</text>",
            ">0</text>",
            ">1</text>",
            ">tokens/s</text>",
        ] {
            assert!(
                chart.svg.contains(label),
                "{label} missing from {}",
                chart.svg
            );
        }
        assert!(chart.svg.contains(
            r#"aria-label="Tokens over the last 60 min: latest 0.5 tokens/s, peak 0.5 tokens/s""#
        ));
        assert!(chart.svg.contains("<title>Tokens</title>"));
        assert!(chart.svg.contains(r#"role="img""#));
        assert!(chart.svg.contains(r#"viewBox="0 0 600 160""#));
        assert!(
            line_chart("T", "/s", &[1.0; 120], 60)
                .svg
                .contains(">-2 h</text>")
        );
        assert!(
            line_chart("T", "/s", &[1.0; 3], 30)
                .svg
                .contains(">-90 s</text>")
        );
    }

    #[test]
    fn the_title_and_unit_are_escaped() {
        let chart = line_chart(r#"<script>"a" & 'b'"#, "<u>", &[1.0], 60);
        assert!(!chart.svg.contains("<script"), "{}", chart.svg);
        assert!(!chart.svg.contains("<u>"), "{}", chart.svg);
        assert!(
            chart
                .svg
                .contains("<title>&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;</title>")
        );
        assert!(
            chart
                .svg
                .contains(r#"aria-label="&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39; over"#)
        );
        assert!(chart.svg.contains(">&lt;u&gt;</text>"));
    }

    #[test]
    fn nothing_drawable_becomes_nan_or_infinity() {
        let chart = line_chart(
            "Tokens",
            "tokens/s",
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -4.0, 1e300, 2.0],
            60,
        );
        let lower = chart.svg.to_lowercase();
        assert!(
            !lower.contains("nan") && !lower.contains("inf"),
            "{}",
            chart.svg
        );
        assert_eq!(chart.points, [0.0, 0.0, 0.0, 0.0, CEILING, 2.0]);
        assert_eq!(chart.max, CEILING);
        assert!(
            drawn(&chart.svg)
                .iter()
                .all(|(x, y)| x.is_finite() && y.is_finite())
        );
    }

    #[test]
    fn no_points_or_only_zeros_draw_a_flat_line_at_zero() {
        for points in [&[][..], &[0.0; 60][..], &[0.0][..]] {
            let chart = line_chart("Failures", "/s", points, 60);
            assert_eq!((chart.max, chart.latest), (1.0, 0.0));
            let xy = drawn(&chart.svg);
            assert!(xy.len() >= 2);
            assert!(xy.iter().all(|(_, y)| *y == BOTTOM), "{xy:?}");
            assert_eq!((xy[0].0, xy[xy.len() - 1].0), (LEFT, RIGHT));
            assert!(!chart.svg.to_lowercase().contains("nan"));
        }
        let empty = line_chart("Failures", "/s", &[], 60);
        assert!(empty.points.is_empty());
        assert!(empty.svg.contains(r#"aria-label="Failures: no data yet""#));
        // A single point is drawn across the whole width at its value.
        let one = drawn(&line_chart("T", "/s", &[2.0], 60).svg);
        assert_eq!(one, [(LEFT, TOP), (RIGHT, TOP)]);
    }

    #[test]
    fn nothing_a_strict_csp_would_block() {
        let svg = line_chart("Tokens", "tokens/s", &[1.0, 2.0], 60).svg;
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        for forbidden in ["style=", "<style", "<script", "javascript:", " on"] {
            assert!(!svg.contains(forbidden), "{forbidden} in {svg}");
        }
    }

    #[test]
    fn numbers_have_at_most_two_decimals() {
        for (value, text) in [
            (2.0, "2"),
            (0.5, "0.5"),
            (1.234_567, "1.23"),
            (1.999, "2"),
            (0.001, "0"),
            (-0.001, "0"),
            (-0.0, "0"),
            (130.0, "130"),
            (100.0, "100"),
        ] {
            assert_eq!(num(value), text);
        }
        let svg = line_chart("T", "/s", &[1.0 / 3.0, 2.0 / 3.0, 0.1, 0.7], 60).svg;
        for number in svg
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| n.contains('.'))
        {
            assert!(
                number.split('.').nth(1).unwrap().len() <= 2,
                "{number} in {svg}"
            );
        }
    }
}
