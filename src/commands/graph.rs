//! `e3pipe graph`: the pipeline's DAG as text, Graphviz or Mermaid.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::GraphFormat;
use crate::error::Result;
use crate::output;
use crate::pipeline;
use crate::pipeline::spec::Pipeline;

pub fn run(pipeline: &Path, format: GraphFormat) -> Result<ExitCode> {
    let pipeline = Pipeline::load(pipeline)?;
    let text = match format {
        GraphFormat::Text => pipeline::graph::render_text(&pipeline),
        GraphFormat::Dot => pipeline::graph::render_dot(&pipeline),
        GraphFormat::Mermaid => pipeline::graph::render_mermaid(&pipeline),
    };
    output::result(text.trim_end_matches('\n'));
    Ok(ExitCode::SUCCESS)
}
