//! `certbound`: the operator command line of certbound.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod output;

use clap::Parser;

/// mimalloc instead of glibc's allocator: on the token path (many small,
/// short-lived allocations on two threads handing work to each other)
/// glibc's `malloc`/`free`/`malloc_consolidate` took about a tenth of the
/// request threads' CPU (`perf`, BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    output::init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
