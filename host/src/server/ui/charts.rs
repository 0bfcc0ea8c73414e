//! The dashboard's charts, drawn on the server as SVG by the `charts-rs` library from its
//! JSON options: bars, lines and pies. The library escapes every text it writes (series and
//! axis names come from alerts' sources and playbook names); the page inlines the SVG, which
//! the console's Content-Security-Policy keeps free of scripts.

use serde_json::{Value, json};

/// The console's colours, one per series, in order.
const PALETTE: &[&str] = &[
    "#1f5fbf", "#e8743b", "#19a979", "#ed4a7b", "#945ecf", "#13a4b4", "#525df4", "#bf399e", "#6c8893",
];

/// A chart's JSON options with what every chart shares.
fn options(kind_extra: Value, height: u32) -> Value {
    let mut o = json!({
        "width": 560,
        "height": height,
        "theme": "light",
        "font_family": "Roboto",
        "empty_text": "No data in this period",
        "series_colors": PALETTE,
        "margin": {"left": 8, "top": 8, "right": 16, "bottom": 8},
    });
    if let (Some(o), Value::Object(extra)) = (o.as_object_mut(), kind_extra) {
        o.extend(extra);
    }
    o
}

/// Why a chart could not be drawn (the options were refused by the library).
#[derive(Debug, thiserror::Error)]
#[error("the chart could not be drawn: {0}")]
pub struct ChartError(String);

/// Bars: one group per category, one bar per series in it; `stack` piles the series.
pub fn bars(categories: &[String], series: &[(String, Vec<f64>)], stack: bool) -> Result<String, ChartError> {
    let series: Vec<Value> = series
        .iter()
        .map(|(name, data)| {
            let mut s = json!({ "name": name, "data": data, "label_show": !stack && series.len() == 1 });
            if stack {
                s["stack"] = json!("all");
            }
            s
        })
        .collect();
    let o = options(
        json!({ "x_axis_data": categories, "series_list": series, "legend_show": series.len() > 1 }),
        300,
    );
    draw(charts_rs::BarChart::from_json(&o.to_string()).map(|c| c.svg()))
}

/// Horizontal bars: one per category (long names read better this way).
pub fn horizontal_bars(categories: &[String], name: &str, values: &[f64]) -> Result<String, ChartError> {
    let height = 80 + 34 * categories.len().max(1) as u32;
    let o = options(
        json!({
            "x_axis_data": categories,
            "series_list": [{ "name": name, "data": values, "label_show": true }],
            "legend_show": false,
        }),
        height,
    );
    draw(charts_rs::HorizontalBarChart::from_json(&o.to_string()).map(|c| c.svg()))
}

/// Lines over `x` (days), one per series.
pub fn lines(x: &[String], series: &[(String, Vec<f64>)]) -> Result<String, ChartError> {
    let series: Vec<Value> = series
        .iter()
        .map(|(name, data)| json!({ "name": name, "data": data }))
        .collect();
    let o = options(
        json!({ "x_axis_data": x, "series_list": series, "legend_show": true, "series_smooth": false }),
        320,
    );
    draw(charts_rs::LineChart::from_json(&o.to_string()).map(|c| c.svg()))
}

/// A pie of shares, one slice per (name, value); slices of 0 are left out. `None` when
/// nothing is left (the library draws an empty pie as a blank).
pub fn pie(slices: &[(String, f64)]) -> Result<Option<String>, ChartError> {
    let series: Vec<Value> = slices
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(name, v)| json!({ "name": name, "data": [v] }))
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let o = options(
        json!({
            "series_list": series,
            "rose_type": false,
            "inner_radius": 50,
            "radius": 90,
            "legend_show": false,
        }),
        300,
    );
    draw(charts_rs::PieChart::from_json(&o.to_string()).map(|c| c.svg())).map(Some)
}

fn draw<E: std::fmt::Display>(made: Result<Result<String, E>, E>) -> Result<String, ChartError> {
    match made {
        Ok(Ok(svg)) => Ok(svg),
        Ok(Err(e)) | Err(e) => Err(ChartError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels_escaped() {
        let svg = bars(
            &["critical".into(), "<high>".into()],
            &[("open".into(), vec![2.0, 5.0])],
            false,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("&lt;high&gt;") && !svg.contains("<high>"), "{svg}");
        let svg = pie(&[
            ("dropped".into(), 3.0),
            ("incident".into(), 1.0),
            ("none".into(), 0.0),
        ])
        .unwrap()
        .unwrap();
        assert!(svg.contains("dropped") && !svg.contains(">none<"), "{svg}");
        let svg = lines(
            &["11-01".into(), "11-02".into()],
            &[
                ("syslog".into(), vec![1.0, 4.0]),
                ("<script>".into(), vec![0.0, 2.0]),
            ],
        )
        .unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        let svg = horizontal_bars(&["streaming-guard".into()], "minutes", &[120.0]).unwrap();
        assert!(svg.contains("streaming-guard"), "{svg}");
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(pie(&[("dropped".into(), 0.0)]).unwrap().is_none());
        let svg = lines(&["11-01".into()], &[]).unwrap();
        assert!(svg.contains("No data in this period"), "{svg}");
    }
}
