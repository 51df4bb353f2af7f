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
    if matches!(cli.command, Command::Transcribe(_)) {
        exec_better_cpu_build();
    }
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

/// Hands the transcription to the AVX-512 build beside this binary when the CPU has AVX-512
/// (`cpu_build`); returns only when it stays here.
fn exec_better_cpu_build() {
    use esup_runner::cpu_build::{CPU_BUILD_ENV, CpuLevel, better_build, detected_level};
    use std::os::unix::process::CommandExt;

    let Ok(current) = std::env::current_exe() else {
        return;
    };
    let chosen = std::env::var(CPU_BUILD_ENV).ok();
    let Some(build) = better_build(&current, detected_level(), chosen.as_deref()) else {
        return;
    };
    tracing::info!(build = %build.display(), "the CPU has AVX-512: transcribing with the x86-64-v4 build");
    let error = std::process::Command::new(&build)
        .args(std::env::args_os().skip(1))
        .env(CPU_BUILD_ENV, CpuLevel::V4.name())
        .exec();
    tracing::warn!(build = %build.display(), %error, "cannot run the x86-64-v4 build: staying on the portable one");
}
