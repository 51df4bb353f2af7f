//! `esup-runner`: see `cli` for the command line and `run` for what it does.

use clap::Parser;
use esup_runner::cli::{Cli, Command};
use esup_runner::run::TaskKind;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("esup-runner: cannot start: {e}");
            std::process::exit(esup_api::runner::exit_code::TRANSIENT);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Encode(args) => esup_runner::run::run(args, TaskKind::Encode).await,
            Command::Studio(args) => esup_runner::run::run(args, TaskKind::Studio).await,
            Command::Transcribe(args) => {
                let models = esup_runner::transcription::model_paths(&args);
                esup_runner::run::run(args.task, TaskKind::Transcribe(models)).await
            }
        }
    });
    std::process::exit(code);
}
