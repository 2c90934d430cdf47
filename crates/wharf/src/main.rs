use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use wharf::config::LogFormat;

fn main() -> std::process::ExitCode {
    let cli = wharf::cli::Cli::parse();
    let settings = match wharf::cli::settings(&cli) {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    // The server logs its progress; other commands print only their result.
    let default_level = if matches!(cli.command, wharf::cli::Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Lines are written by a thread of their own (`observe::log`): a request never waits for
    // stderr. Not lossy: under a flood, logging slows, nothing is dropped. The guard waits
    // for what is queued when `main` returns.
    let (writer, _flush_on_exit) = match wharf::observe::log::start() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: cannot start the log's writer thread: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let log = writer.clone();
    wharf::observe::init_access_log(writer.clone(), settings.log_format);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match settings.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        // Colour escapes only for a person at a terminal, never into a log file.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ran = runtime.block_on(wharf::cli::run(cli, settings));
    // The access lines still in the request threads' buffers, before the guard's flush.
    wharf::observe::flush_access_log();
    // Every line written before the error's (which goes straight to stderr).
    log.flush(std::time::Duration::from_secs(1));
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One line, whatever the cause chain.
fn fail(e: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
    std::process::ExitCode::FAILURE
}
