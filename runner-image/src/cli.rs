//! The command line, as the operator's Job calls it (`encode|studio --source URL --spec JSON
//! --out DIR --work DIR`, callbacks from the environment) and as a person runs it by hand
//! (`--params` with Esup-Pod's parameters, no callback: outputs stay in `--out`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use esup_api::runner::env;

#[derive(Parser, Debug)]
#[command(
    name = "esup-runner",
    version,
    about = "Encodes media for Esup-Pod in one pass (decode once, encode each rendition once) and delivers the outputs.",
    long_about = "Encodes media for Esup-Pod in one pass: the source is decoded once, each rendition is scaled and \
encoded once and its packets go to both its HLS and MP4 files; the MP3, thumbnails and overview come from the same \
decode. Outputs are named as Esup-Pod imports them, with info_video.json and encoding.log.\n\n\
Exit codes: 0 done, 64 bad parameters, 65 unusable media (never retried), 75 transient failure (retry).\n\n\
With ESUP_CALLBACK_URL set (as in a Kubernetes Job), outputs are uploaded to the webhook with their sha256 and the \
completion is posted; without it, outputs are only written to --out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Encode a media file (Esup-Pod task type `encoding`).
    Encode(TaskArgs),
    /// Mix an Opencast Studio recording (mediapackage XML, `mid`/`piph`/`pipb`, SMIL cut) into
    /// `studio_base.mp4`, then encode it (Esup-Pod task type `studio`).
    Studio(TaskArgs),
    /// Transcribe speech into WebVTT subtitles with Whisper (Esup-Pod task type `transcription`).
    Transcribe(TranscribeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TranscribeArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Directory of the Whisper models (`ggml-<name>.bin`, made by `make models`).
    #[arg(long, env = "ESUP_MODELS_DIR", default_value = "/models/whisper")]
    pub models_dir: PathBuf,
    /// Whisper model used when the task names none (the reference runner's WHISPER_MODEL).
    #[arg(long, env = "WHISPER_MODEL", default_value = "base")]
    pub whisper_model: String,
    /// Directory holding `opus-mt-fr-en/` and `opus-mt-en-fr/` (Marian ONNX exports) for local
    /// fr↔en translation; unset: no local translation.
    #[arg(long, env = "ESUP_TRANSLATION_DIR")]
    pub translation_dir: Option<PathBuf>,
    /// `libonnxruntime.so` used by the translation (from the PyPI onnxruntime wheel).
    #[arg(long, env = "ESUP_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct TaskArgs {
    /// Source media (for `studio`: the Opencast mediapackage XML): an http(s) URL or a local file.
    #[arg(long)]
    pub source: String,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Scratch directory for the download. Default: a directory under the system temp dir.
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// The task's EncodingTaskSpec as JSON (what the operator passes).
    #[arg(long, conflicts_with = "params")]
    pub spec: Option<String>,
    /// Esup-Pod's task parameters as a JSON object, e.g.
    /// '{"rendition":"{\"360\":{\"resolution\":\"640x360\"}}","cut":"{...}"}'.
    #[arg(long)]
    pub params: Option<String>,
    /// Webhook base URL of this task's callbacks; unset: local only.
    #[arg(long, env = env::CALLBACK_URL, hide_env_values = true)]
    pub callback_url: Option<String>,
    /// Bearer token of the callbacks.
    #[arg(
        long,
        env = env::CALLBACK_TOKEN,
        hide_env_values = true,
        default_value = ""
    )]
    pub callback_token: String,
    /// Which task and attempt this run is, as the operator sets it: for the logs.
    #[command(flatten)]
    pub launch: LaunchInfo,
    /// Largest source accepted, in bytes.
    #[arg(long, env = "ESUP_MAX_SOURCE_BYTES", default_value_t = 20 * 1024 * 1024 * 1024)]
    pub max_source_bytes: u64,
    /// Codecs refused as if undecodable (the reference runner's MEDIA_CODEC_DENYLIST).
    #[arg(
        long,
        env = "MEDIA_CODEC_DENYLIST",
        default_value = "magicyuv",
        value_delimiter = ','
    )]
    pub codec_denylist: Vec<String>,
    /// First retry delay of the download, in milliseconds (doubles, capped at 30 s).
    #[arg(long, default_value_t = 2000)]
    pub retry_base_ms: u64,
    /// Never use a GPU, even when NVML finds one.
    #[arg(long, env = "ESUP_FORCE_CPU")]
    pub force_cpu: bool,
    /// URL policy of every fetch (source, dressing, mediapackage tracks and SMIL, each
    /// redirect): when set, only these hosts (and subdomains). Comma-separated. The operator
    /// passes the webhook's settings.
    #[arg(long, env = "ESUP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Hosts (and subdomains) allowed to resolve to private addresses. Comma-separated.
    #[arg(long, env = "ESUP_PRIVATE_HOSTS", value_delimiter = ',')]
    pub private_hosts: Vec<String>,
    /// Private networks allowed as fetch targets, e.g. 10.96.0.0/12. Comma-separated CIDRs.
    #[arg(long, env = "ESUP_PRIVATE_NETWORKS", value_delimiter = ',')]
    pub private_networks: Vec<esup_api::url_policy::IpNet>,
}

/// The task and attempt a run belongs to, from the environment the operator sets on runner
/// containers (`esup_api::runner::env`); each run logs them once, so that a runner's log
/// names its task. Unset when run by hand.
#[derive(Args, Debug, Clone, Default)]
pub struct LaunchInfo {
    #[arg(long = "task-kind", env = env::TASK_KIND, hide = true)]
    pub kind: Option<String>,
    #[arg(long = "task-namespace", env = env::TASK_NAMESPACE, hide = true)]
    pub namespace: Option<String>,
    #[arg(long = "task-name", env = env::TASK_NAME, hide = true)]
    pub name: Option<String>,
    #[arg(long = "task-uid", env = env::TASK_UID, hide = true)]
    pub uid: Option<String>,
    #[arg(long = "launch", env = env::LAUNCH, hide = true)]
    pub launch: Option<u32>,
    #[arg(long = "pool", env = env::POOL, hide = true)]
    pub pool: Option<String>,
}

impl TaskArgs {
    /// The URL policy of this run's fetches.
    pub fn url_policy(&self) -> esup_api::url_policy::UrlPolicy {
        let non_empty = |list: &[String]| {
            list.iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        esup_api::url_policy::UrlPolicy {
            allowed_hosts: non_empty(&self.allowed_hosts),
            private_hosts: non_empty(&self.private_hosts),
            private_networks: self.private_networks.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use esup_api::TaskType;
    use esup_api::runner::RunnerArgs;

    use super::{Cli, Command};

    /// The operator renders the runner's command line from `esup_api::runner::RunnerArgs`:
    /// this parser must take what it renders, for every task type.
    #[test]
    fn the_operators_command_line_parses() {
        for task_type in [
            TaskType::Encoding,
            TaskType::Studio,
            TaskType::Transcription,
        ] {
            let args = RunnerArgs {
                task_type,
                source: "https://pod.example/media/a.mp4".into(),
                spec_json: "{\"k\": 1}".into(),
                out: "/scratch/out".into(),
                work: "/scratch/work".into(),
            };
            let cli = Cli::try_parse_from(
                std::iter::once("esup-runner".to_owned()).chain(args.to_args()),
            )
            .unwrap_or_else(|e| panic!("{task_type:?}: {e}"));
            let (task, parsed_type) = match &cli.command {
                Command::Encode(t) => (t, TaskType::Encoding),
                Command::Studio(t) => (t, TaskType::Studio),
                Command::Transcribe(t) => (&t.task, TaskType::Transcription),
            };
            assert_eq!(parsed_type, task_type);
            assert_eq!(task.source, args.source);
            assert_eq!(task.spec.as_deref(), Some(args.spec_json.as_str()));
            assert_eq!(task.out, std::path::PathBuf::from(&args.out));
            assert_eq!(task.work, Some(std::path::PathBuf::from(&args.work)));
        }
    }
}
