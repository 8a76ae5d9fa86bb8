//! Measures bench points for `e3pipe` (which starts it; not meant to be run by hand).
fn main() -> std::process::ExitCode {
    e3pipe::worker::run()
}
