//! The one dispatch on the task's kind: each subcommand's body, run inside the lifecycle
//! every task shares (`task::run`).

use crate::cli::Command;
use crate::encode::task::Source;

/// Runs the subcommand's task; returns the process exit code.
pub async fn run(command: Command) -> i32 {
    match command {
        Command::Encode(args) => {
            crate::task::run(&args, async |callback, log| {
                crate::encode::task::execute(&args, Source::Media, callback, log).await
            })
            .await
        }
        Command::Studio(args) => {
            crate::task::run(&args, async |callback, log| {
                crate::encode::task::execute(&args, Source::Studio, callback, log).await
            })
            .await
        }
        Command::Transcribe(args) => {
            let models = crate::transcription::model_paths(&args);
            crate::task::run(&args.task, async |callback, log| {
                crate::transcription::execute(&args.task, &models, callback, log).await
            })
            .await
        }
    }
}
