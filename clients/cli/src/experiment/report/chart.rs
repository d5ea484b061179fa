//! `metrics.svg`: one panel per metric, each with its own axis scaled to its values
//! (a share of 0.01 is as visible as one of 0.9, and the reference NLL in nats gets an
//! axis of its own), the mean of every condition as a bar labelled with its value and
//! n, and its 95% interval drawn as computed (it may cross 0).

use std::path::Path;

use plotters::prelude::*;

use super::summary::Summary;
use super::ReportError;
use crate::experiment::conditions::Condition;
use crate::experiment::metrics::Metric;
use crate::experiment::stats::MeanCi;

/// Colors of the conditions in the chart, in [`Condition::ALL`] order.
const CONDITION_COLORS: [RGBColor; 4] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
];

fn color(c: Condition) -> RGBColor {
    let i = Condition::ALL.iter().position(|x| *x == c).unwrap_or(0);
    CONDITION_COLORS[i]
}

/// The y range of a panel: from 0 (or the lowest interval end below it) to the highest
/// mean or interval end, with 20% headroom for the value labels; never empty.
pub fn axis_range<'a>(values: impl IntoIterator<Item = &'a MeanCi>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values {
        let (l, h) = v.ci.unwrap_or((v.mean, v.mean));
        lo = lo.min(l).min(v.mean);
        hi = hi.max(h).max(v.mean);
    }
    let span = (hi - lo).max(1e-3);
    (
        lo - if lo < 0.0 { 0.05 * span } else { 0.0 },
        hi + 0.2 * span,
    )
}

/// Draws one panel per metric that has values, as an SVG file.
pub fn render_svg(s: &Summary, path: &Path) -> Result<(), ReportError> {
    let chart_err = |e: &dyn std::fmt::Display| ReportError::Chart {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| s.conditions.iter().any(|c| c.metrics.contains_key(m)))
        .collect();
    let panels = metrics.len().max(1);
    let root = SVGBackend::new(path, (320 * panels as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(&e))?;
    let areas = root.split_evenly((1, panels));
    let n = s.conditions.len().max(1);
    for (area, metric) in areas.iter().zip(&metrics) {
        let values: Vec<(Condition, &MeanCi)> = s
            .conditions
            .iter()
            .filter_map(|c| c.metrics.get(metric).map(|v| (c.condition, v)))
            .collect();
        let (lo, hi) = axis_range(values.iter().map(|(_, v)| *v));
        // Enough decimals that the ticks of a small range differ.
        let decimals = (1.0 - (hi - lo).log10()).ceil().clamp(1.0, 6.0) as usize;
        let mut chart = ChartBuilder::on(area)
            .caption(metric.label(), ("sans-serif", 15).into_font())
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..n as f64, lo..hi)
            .map_err(|e| chart_err(&e))?;
        let names: Vec<&str> = s.conditions.iter().map(|c| c.condition.as_str()).collect();
        let label_of = |x: &f64| {
            let centre = x - 0.5;
            let i = centre.round();
            if (centre - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].to_owned()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&label_of)
            .y_label_formatter(&|v| format!("{v:.*}", decimals, v = v))
            .draw()
            .map_err(|e| chart_err(&e))?;
        for (condition, v) in &values {
            let k = s
                .conditions
                .iter()
                .position(|c| c.condition == *condition)
                .unwrap_or(0) as f64;
            let (x0, x1) = (k + 0.15, k + 0.85);
            chart
                .draw_series([Rectangle::new(
                    [(x0, 0.0), (x1, v.mean)],
                    color(*condition).filled(),
                )])
                .map_err(|e| chart_err(&e))?;
            if let Some((l, h)) = v.ci {
                chart
                    .draw_series([ErrorBar::new_vertical(
                        k + 0.5,
                        l,
                        v.mean,
                        h,
                        BLACK.stroke_width(1),
                        8,
                    )])
                    .map_err(|e| chart_err(&e))?;
            }
            let top = v.ci.map_or(v.mean, |(_, h)| h.max(v.mean));
            chart
                .draw_series([Text::new(
                    format!("{:.3} (n={})", v.mean, v.n),
                    (x0, top + 0.04 * (hi - lo)),
                    ("sans-serif", 11).into_font(),
                )])
                .map_err(|e| chart_err(&e))?;
        }
    }
    root.present().map_err(|e| chart_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(mean: f64, ci: Option<(f64, f64)>) -> MeanCi {
        MeanCi {
            n: 4,
            mean,
            sd: None,
            ci,
        }
    }

    #[test]
    fn axes_fit_their_own_values() {
        // Tiny shares get an axis of their own size, not 0-1.
        let (lo, hi) = axis_range(&[v(0.01, Some((0.005, 0.02))), v(0.005, None)]);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.02 && hi < 0.03, "{hi}");
        // NLL in nats.
        let (_, hi) = axis_range(&[v(3.5, Some((3.1, 3.9)))]);
        assert!(hi > 3.9 && hi < 5.0, "{hi}");
        // An interval below 0 is drawn as computed.
        let (lo, _) = axis_range(&[v(0.05, Some((-0.2, 0.3)))]);
        assert!(lo < -0.2, "{lo}");
        // Nothing but zeros still gives a usable axis.
        let (lo, hi) = axis_range(&[v(0.0, None)]);
        assert!(hi > lo);
    }
}
