//! Measures bench points for `e3pipe`, which starts it with a job on stdin; not meant to be run by hand.
fn main() -> std::process::ExitCode {
    e3pipe_worker::run::run()
}
