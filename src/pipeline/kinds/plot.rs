//! `kind: plot`: the figures drawn from the table aggregate wrote (`report::plot`), with its options `log2_x`,
//! `predict_lengths` and the user's own `figures:`. It writes fixed files, so a pipeline has at most one.

use std::sync::Arc;

use serde_yaml_ng::Value;

use crate::error::{Result, shorten, suggest};
use crate::output;
use crate::paths;
use crate::pipeline::kind::{Input, Kind, PlanContext, Planned, RunContext, Settings, StepContext};
use crate::report::columns::{COLUMNS, Kind as ColumnKind};
use crate::report::plot::custom::FigureSpec;
use crate::report::plot::{self, PlotOptions};

#[derive(Debug)]
pub struct Plot;

impl Kind for Plot {
    fn name(&self) -> &'static str {
        "plot"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["log2_x", "predict_lengths", "figures"]
    }

    fn one_per_pipeline(&self) -> bool {
        true
    }

    fn input(&self) -> Option<Input> {
        Some(Input {
            path: paths::RESULTS_TABLE,
            made_by: "aggregate",
        })
    }

    fn configure(&self, step: &StepContext<'_>) -> Result<Arc<dyn Settings>> {
        let log2_x = match step.map.get("log2_x") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| step.bad_value("log2_x", "expected true or false"))?,
        };
        let predict_lengths = match step.map.get("predict_lengths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|n| *n > 0)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            step.bad_value("predict_lengths", "expected positive integers")
                        })
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(step.bad_value("predict_lengths", "expected a list of lengths"));
            }
        };
        Ok(Arc::new(PlotSettings(PlotOptions {
            log2_x,
            predict_lengths,
            figures: figure_specs(step)?,
        })))
    }
}

#[derive(Debug)]
struct PlotSettings(PlotOptions);

impl Settings for PlotSettings {
    fn describe(&self) -> String {
        format!(
            "plot: {}{}",
            paths::headline_figure(),
            if self.0.log2_x { " (log2 x)" } else { "" }
        )
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<Box<dyn Planned>> {
        Ok(Box::new(PlotPlan {
            options: self.0.clone(),
            forced: ctx.forced,
        }))
    }
}

#[derive(Debug)]
struct PlotPlan {
    options: PlotOptions,
    forced: bool,
}

impl Planned for PlotPlan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn render(&self, step: &str) -> String {
        format!(
            "step `{step}` (plot): {} -> {}\n",
            paths::RESULTS_TABLE,
            paths::headline_figure()
        )
    }

    fn run(&self, step: &str, ctx: &mut RunContext<'_>) -> Result<()> {
        let line = plot::run_step(step, ctx.root, &self.options, self.forced)?;
        output::progress(&line);
        Ok(())
    }
}

/// `figures:`: the user's own figures, each checked against the table's columns (with a did-you-mean) before
/// anything runs.
fn figure_specs(step: &StepContext<'_>) -> Result<Vec<FigureSpec>> {
    const KEYS: [&str; 7] = ["name", "x", "y", "color", "facet", "log_x", "log_y"];
    let list = match step.map.get("figures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(list)) => list,
        Some(_) => {
            return Err(step.bad_value(
                "figures",
                "expected a list of figures, each `{name, x, y}` with optional `color`, `facet`, `log_x`, `log_y`",
            ));
        }
    };
    let columns: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let mut specs: Vec<FigureSpec> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let field = |key: &str| format!("figures[{i}].{key}");
        let Value::Mapping(map) = item else {
            return Err(step.bad_value(
                &format!("figures[{i}]"),
                "expected a mapping with `name`, `x` and `y`",
            ));
        };
        for key in map.keys() {
            let key = key.as_str().unwrap_or("");
            if !KEYS.contains(&key) {
                let hint = suggest(key, KEYS)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(step.bad_value(
                    &format!("figures[{i}]"),
                    format!(
                        "unknown key `{}` (a figure takes {}){hint}",
                        shorten(key, 40),
                        KEYS.map(|k| format!("`{k}`")).join(", ")
                    ),
                ));
            }
        }
        let text = |key: &str| -> Result<Option<String>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(step.bad_value(&field(key), "expected a column name")),
            }
        };
        let flag = |key: &str| -> Result<bool> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(step.bad_value(&field(key), "expected true or false")),
            }
        };
        // A column of the table; `numeric` for the axes.
        let column = |key: &str, numeric: bool| -> Result<Option<String>> {
            let Some(name) = text(key)? else {
                return Ok(None);
            };
            match COLUMNS.iter().find(|c| c.name == name) {
                Some(c) if numeric && c.kind == ColumnKind::Text => Err(step.bad_value(
                    &field(key),
                    format!("`{name}` is a text column; `x` and `y` take numeric ones (`context_length`, `latency_ms`, `tbt_ms`, …)"),
                )),
                Some(_) => Ok(Some(name)),
                None => {
                    let hint = suggest(&name, columns.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    Err(step.bad_value(
                        &field(key),
                        format!(
                            "`{}` is not a column of `{}`{hint}",
                            shorten(&name, 60),
                            paths::RESULTS_TABLE
                        ),
                    ))
                }
            }
        };
        let name = text("name")?
            .ok_or_else(|| step.bad_value(&field("name"), "missing; a figure needs a file name"))?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(step.bad_value(
                &field("name"),
                format!(
                    "`{}` cannot name a file: use up to 64 letters, digits, `_` or `-`",
                    shorten(&name, 60)
                ),
            ));
        }
        // Built-in figures, the report page and `e3pipe history`'s figure live beside these.
        if paths::FIGURES.contains(&name.as_str())
            || name == "report"
            || name == paths::HISTORY_FIGURE
        {
            return Err(step.bad_value(
                &field("name"),
                format!("`{name}` is a figure e3pipe draws itself; choose another name"),
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(step.bad_value(&field("name"), format!("`{name}` names two figures")));
        }
        let x = column("x", true)?
            .ok_or_else(|| step.bad_value(&field("x"), "missing; the column across"))?;
        let y = column("y", true)?
            .ok_or_else(|| step.bad_value(&field("y"), "missing; the column up"))?;
        specs.push(FigureSpec {
            name,
            x,
            y,
            color: column("color", false)?,
            facet: column("facet", false)?,
            log_x: flag("log_x")?,
            log_y: flag("log_y")?,
        });
    }
    Ok(specs)
}
