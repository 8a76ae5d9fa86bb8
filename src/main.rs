use clap::Parser;

fn main() -> std::process::ExitCode {
    e3pipe::run(e3pipe::cli::Cli::parse())
}
