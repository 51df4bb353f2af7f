//! Input and output names (protocol §3.0–§3.1). Pure.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Extensions the reference runner accepts for a media source.
pub const MEDIA_EXTENSIONS: [&str; 19] = [
    "3gp", "avi", "divx", "flv", "m2p", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "wmv",
    "mp3", "ogg", "wav", "wma", "webm", "ts",
];

/// Whether a source (or asset) is downloaded over http(s); anything else is a local file
/// (by hand, tests).
pub fn is_http_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name of a source. For an http(s) URL, as the reference runner takes it: the
/// path percent-decoded first (invalid UTF-8 replaced by U+FFFD; `+` stays `+`), then its last
/// segment, query and fragment dropped. For a local path, its last component. Backslashes and
/// control characters become `_`, so the name is always a plain file name in one directory.
pub fn source_file_name(source: &str) -> String {
    let without_query = source.split(['?', '#']).next().unwrap_or(source);
    let decoded = if is_http_url(source) {
        percent_encoding::percent_decode_str(without_query).decode_utf8_lossy()
    } else {
        std::borrow::Cow::Borrowed(without_query)
    };
    let last = decoded.rsplit('/').next().unwrap_or(&decoded);
    last.chars()
        .map(|c| if c == '\\' || c.is_control() { '_' } else { c })
        .collect()
}

/// The lowercase extension of a file name, when it is an accepted media extension.
pub fn media_extension(file_name: &str) -> Option<String> {
    let (_, ext) = file_name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    MEDIA_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// `sanitize_filename`: accents stripped (NFD, combining marks removed), spaces to `_`.
/// Characters that cannot live in a result path (`/`, `\`, `?`, `#`, `%`, controls) also
/// become `_`, so that every output passes `safe_result_path`.
pub fn sanitize(base: &str) -> String {
    let cleaned: String = base
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            ' ' | '/' | '\\' | '?' | '#' | '%' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "video".to_owned(),
        _ => cleaned,
    }
}

/// `<base>`: the sanitised file name without its extension.
pub fn output_base(file_name: &str) -> String {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    sanitize(stem)
}

/// Names of every output of an encoding, for one base.
#[derive(Clone, Copy, Debug)]
pub struct Names<'a>(pub &'a str);

impl Names<'_> {
    pub fn hls_playlist(&self, height: u32) -> String {
        format!("{height}p_{}.m3u8", self.0)
    }
    pub fn hls_segment(&self, height: u32) -> String {
        format!("{height}p_{}.ts", self.0)
    }
    pub fn mp4(&self, height: u32) -> String {
        format!("{height}p_{}.mp4", self.0)
    }
    pub fn mp3(&self) -> String {
        format!("audio_192k_{}.mp3", self.0)
    }
    pub fn m4a(&self) -> String {
        format!("audio_192k_{}.m4a", self.0)
    }
    pub fn thumbnail(&self, i: usize) -> String {
        format!("{}_{i}.png", self.0)
    }
}

pub const OVERVIEW_SPRITE: &str = "overview.png";
pub const OVERVIEW_VTT: &str = "overview.vtt";
pub const INFO_JSON: &str = "info_video.json";
pub const ENCODING_LOG: &str = "encoding.log";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_and_extensions() {
        assert_eq!(
            source_file_name("https://pod.test/media/a/Cours 1.mp4?x=1#t"),
            "Cours 1.mp4"
        );
        // Decoded as the reference runner decodes the URL path, then sanitised into the base.
        let cases = [
            (
                "http://pod/media/videos/Cours%20(1)%20%C3%A9t%C3%A9.mp4",
                "Cours (1) été.mp4",
                "Cours_(1)_ete",
            ),
            ("http://pod/v/a+b.mp4", "a+b.mp4", "a+b"),
            (
                "http://pod/v/100%25%20s%C3%BBr.mp4",
                "100% sûr.mp4",
                "100__sur",
            ),
            (
                "http://pod/v/clip%2Fname.mp4?token=a%2Fb#t=3",
                "name.mp4",
                "name",
            ),
            (
                "http://pod/v/%FF%FEbad.mp4",
                "\u{fffd}\u{fffd}bad.mp4",
                "\u{fffd}\u{fffd}bad",
            ),
            ("http://pod/v/a%5Cb%00c.mp4", "a_b_c.mp4", "a_b_c"),
            ("/tmp/x/Cours%20(1).mp4", "Cours%20(1).mp4", "Cours_20(1)"),
        ];
        for (url, name, base) in cases {
            let file = source_file_name(url);
            assert_eq!(file, name, "{url}");
            assert_eq!(output_base(&file), base, "{url}");
            assert!(
                esup_api::runner::safe_result_path(&Names(base).mp4(360)).is_ok(),
                "{url}"
            );
        }
        assert_eq!(source_file_name("/tmp/x/clip.webm"), "clip.webm");
        assert_eq!(source_file_name("clip.MKV"), "clip.MKV");
        assert_eq!(media_extension("clip.MKV").as_deref(), Some("mkv"));
        assert_eq!(media_extension("lecture.webm").as_deref(), Some("webm"));
        assert_eq!(media_extension("doc.pdf"), None);
        assert_eq!(media_extension("noext"), None);
    }

    #[test]
    fn bases_are_sanitised_like_the_reference_runner() {
        assert_eq!(output_base("Cours d'été n°1.mp4"), "Cours_d'ete_n°1");
        assert_eq!(output_base("Ça va.webm"), "Ca_va");
        assert_eq!(output_base("my lecture.tar.mp4"), "my_lecture.tar");
        assert_eq!(output_base("a%b#c?.mp4"), "a_b_c_");
        assert_eq!(output_base(".mp4"), "video");
        assert_eq!(output_base("..mp4"), "video");
        let n = Names("my_lecture");
        assert_eq!(n.hls_playlist(720), "720p_my_lecture.m3u8");
        assert_eq!(n.hls_segment(1080), "1080p_my_lecture.ts");
        assert_eq!(n.mp4(360), "360p_my_lecture.mp4");
        assert_eq!(n.mp3(), "audio_192k_my_lecture.mp3");
        assert_eq!(n.m4a(), "audio_192k_my_lecture.m4a");
        assert_eq!(n.thumbnail(2), "my_lecture_2.png");
        for name in [n.hls_playlist(720), n.mp3(), output_base("é è/x.mp4")] {
            assert!(esup_api::runner::safe_result_path(&name).is_ok(), "{name}");
        }
    }
}
