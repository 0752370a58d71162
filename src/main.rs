//! The `tocsin` binary: the command line over the `tocsin` library.

mod cli;

use clap::Parser;

// The ingestion path allocates many small, short-lived values per alert (JSON trees,
// bind buffers); mimalloc spends less time on them than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
