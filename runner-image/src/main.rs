//! `esup-runner`: see `cli` for the command line and `run` for what it does (the library's
//! header maps its folders).

use clap::Parser;
use esup_runner::cli::{Cli, Command};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Transcribe(args) = &cli.command {
        exec_better_build(args.task.force_cpu);
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
    let code = runtime.block_on(esup_runner::run::run(cli.command));
    std::process::exit(code);
}

/// Hands the transcription to the best build beside this binary for this node (CUDA with a
/// GPU, AVX-512 on such a CPU: `runner_build`); returns only when it stays here.
fn exec_better_build(force_cpu: bool) {
    use esup_runner::runner_build::{BUILD_ENV, better_build, cpu_has_x86_64_v4};
    use std::os::unix::process::CommandExt;

    // Chosen already (this process was exec'd), or kept by hand.
    if std::env::var_os(BUILD_ENV).is_some() {
        return;
    }
    let current = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            tracing::warn!(%error, "cannot tell where this binary is (no /proc?): staying on this build");
            return;
        }
    };
    let gpu_found = !force_cpu && esup_runner::hardware::detect::detect().is_ok();
    let Some((build, path)) = better_build(&current, gpu_found, cpu_has_x86_64_v4()) else {
        return;
    };
    tracing::info!(build = build.name(), path = %path.display(), "transcribing with the build for this node");
    let error = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .env(BUILD_ENV, build.name())
        .exec();
    tracing::warn!(build = build.name(), %error, "cannot run that build: staying on this one");
}
