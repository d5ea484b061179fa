//! `metrics.svg`: metric means by condition, with 95% error bars.

use std::path::Path;

use plotters::prelude::*;

use super::summary::Summary;
use super::ReportError;
use crate::experiment::conditions::Condition;
use crate::experiment::metrics::Metric;

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

/// Draws metric means by condition, with 95% error bars, as an SVG file.
pub fn render_svg(s: &Summary, path: &Path) -> Result<(), ReportError> {
    let chart_err = |e: &dyn std::fmt::Display| ReportError::Chart {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // The shares, on one 0-1 axis (the reference NLL, in nats, is in the tables).
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| m.is_share() && s.conditions.iter().any(|c| c.metrics.contains_key(m)))
        .collect();
    let groups = metrics.len().max(1);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Metrics by condition (mean, 95% CI)",
            ("sans-serif", 22).into_font(),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..groups as f64, 0.0..1.0f64)
        .map_err(|e| chart_err(&e))?;
    let label_of = |v: &f64| {
        let centre = v - 0.5;
        let i = centre.round();
        if (centre - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < metrics.len() {
            metrics[i as usize].label().to_owned()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&label_of)
        .y_desc("mean share")
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(|e| chart_err(&e))?;

    let n = s.conditions.len().max(1) as f64;
    let width = 0.8 / n;
    for (k, c) in s.conditions.iter().enumerate() {
        let col = color(c.condition);
        let mut bars = Vec::new();
        let mut errors = Vec::new();
        for (g, m) in metrics.iter().enumerate() {
            let Some(v) = c.metrics.get(m) else { continue };
            let x0 = g as f64 + 0.1 + k as f64 * width;
            bars.push(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, v.mean.clamp(0.0, 1.0))],
                col.filled(),
            ));
            if let Some((lo, hi)) = v.ci {
                errors.push(ErrorBar::new_vertical(
                    x0 + width * 0.45,
                    lo.clamp(0.0, 1.0),
                    v.mean.clamp(0.0, 1.0),
                    hi.clamp(0.0, 1.0),
                    BLACK.stroke_width(1),
                    8,
                ));
            }
        }
        chart
            .draw_series(bars)
            .map_err(|e| chart_err(&e))?
            .label(c.condition.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        chart.draw_series(errors).map_err(|e| chart_err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| chart_err(&e))?;
    root.present().map_err(|e| chart_err(&e))?;
    Ok(())
}
