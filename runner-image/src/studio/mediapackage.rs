//! Opencast mediapackages as Esup-Pod's studio recorder writes them (protocol §3.2), pure:
//! the presenter and presentation tracks, the `presenter` layout attribute, the SMIL
//! cutting catalog, where relative URLs point, and the recording once downloaded.

use std::path::{Path, PathBuf};

use esup_api::encoding::StudioLayout;

/// A studio recording, downloaded.
#[derive(Debug)]
pub struct Recording {
    pub package: Mediapackage,
    /// (role, local path): the presentation first.
    pub tracks: Vec<(&'static str, PathBuf)>,
    /// SMIL window (begin, end) in seconds.
    pub cut: Option<(f64, Option<f64>)>,
}

/// A SMIL time beyond five days is refused, as the reference runner refuses it.
pub const MAX_SMIL_SECONDS: f64 = 5.0 * 24.0 * 3600.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediapackageError {
    #[error("the mediapackage is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the XML root is <{0}>, not <mediapackage>")]
    NotAMediapackage(String),
    #[error("the mediapackage has no presenter/source nor presentation/source track with a URL")]
    NoTrack,
    #[error("unknown presenter layout {0:?} (expected mid, piph or pipb)")]
    UnknownLayout(String),
    #[error("{what} URL {reference:?} cannot be used: {why}")]
    BadUrl {
        what: &'static str,
        reference: String,
        why: String,
    },
}

impl MediapackageError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::BadUrl { .. } => "InvalidMediapackageUrl",
            _ => "InvalidMediapackage",
        }
    }
}

/// What the mediapackage asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Mediapackage {
    /// `presenter/source` (camera) track URL, as written.
    pub presenter: Option<String>,
    /// `presentation/source` (screen) track URL, as written.
    pub presentation: Option<String>,
    /// The root's `presenter` attribute; absent: `mid`.
    pub layout: StudioLayout,
    /// The `smil/cutting` catalog's URL.
    pub smil: Option<String>,
}

fn text_of(node: roxmltree::Node<'_, '_>, child: &str) -> Option<String> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == child)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Elements are matched by local name, so a package with or without Opencast's namespace
/// reads the same.
pub fn parse(xml: &str) -> Result<Mediapackage, MediapackageError> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| MediapackageError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "mediapackage" {
        return Err(MediapackageError::NotAMediapackage(
            root.tag_name().name().to_owned(),
        ));
    }
    let layout = match root.attribute("presenter").map(str::trim) {
        None | Some("") => StudioLayout::SideBySide,
        Some(v) => layout(v).ok_or_else(|| MediapackageError::UnknownLayout(v.to_owned()))?,
    };
    let mut presenter = None;
    let mut presentation = None;
    let mut smil = None;
    for node in root.descendants().filter(roxmltree::Node::is_element) {
        let kind = node.attribute("type").map(str::trim);
        match (node.tag_name().name(), kind) {
            ("track", Some("presenter/source")) if presenter.is_none() => {
                presenter = text_of(node, "url");
            }
            ("track", Some("presentation/source")) if presentation.is_none() => {
                presentation = text_of(node, "url");
            }
            ("catalog", Some("smil/cutting")) if smil.is_none() => smil = text_of(node, "url"),
            _ => {}
        }
    }
    if presenter.is_none() && presentation.is_none() {
        return Err(MediapackageError::NoTrack);
    }
    Ok(Mediapackage {
        presenter,
        presentation,
        layout,
        smil,
    })
}

/// Opencast's layout names.
pub fn layout(name: &str) -> Option<StudioLayout> {
    match name.trim().to_ascii_lowercase().as_str() {
        "mid" => Some(StudioLayout::SideBySide),
        "piph" => Some(StudioLayout::PresenterTopRight),
        "pipb" => Some(StudioLayout::PresenterBottomRight),
        _ => None,
    }
}

/// A SMIL clock value: `12.5`, `12.5s` or `HH:MM:SS(.fff)`; negative, non-finite or over
/// five days: none.
pub fn smil_time(value: &str) -> Option<f64> {
    let v = value.trim();
    let seconds = if let Some(s) = v.strip_suffix('s') {
        s.trim().parse::<f64>().ok()?
    } else if v.contains(':') {
        let parts: Vec<&str> = v.split(':').collect();
        let [h, m, s] = parts.as_slice() else {
            return None;
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || !digits(m) {
            return None;
        }
        let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
        if !digits(whole) || !digits(frac) {
            return None;
        }
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?
    } else {
        v.parse::<f64>().ok()?
    };
    (seconds.is_finite() && (0.0..=MAX_SMIL_SECONDS).contains(&seconds)).then_some(seconds)
}

/// The first `<video clipBegin clipEnd>` of a SMIL cutting document, as (begin, end) in
/// seconds. A begin without end keeps the rest; nothing usable (or a document that cannot
/// be read, as the reference runner treats it) means no cut.
pub fn smil_cut(smil: &str) -> Option<(f64, Option<f64>)> {
    let doc = roxmltree::Document::parse(smil).ok()?;
    let video = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "video")?;
    let begin = video.attribute("clipBegin").and_then(smil_time);
    let end = video.attribute("clipEnd").and_then(smil_time);
    match (begin, end) {
        (None, None) => None,
        (b, Some(e)) if e <= b.unwrap_or(0.0) => None,
        (b, e) => Some((b.unwrap_or(0.0), e)),
    }
}

/// Where the mediapackage came from: relative track URLs resolve against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Url(url::Url),
    /// A local file (by hand, tests): its directory.
    Directory(PathBuf),
}

impl Origin {
    pub fn of(source: &str) -> Result<Self, MediapackageError> {
        if crate::naming::is_http_url(source) {
            url::Url::parse(source)
                .map(Self::Url)
                .map_err(|e| MediapackageError::BadUrl {
                    what: "mediapackage",
                    reference: source.to_owned(),
                    why: e.to_string(),
                })
        } else {
            let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
            Ok(Self::Directory(
                path.parent().map_or_else(PathBuf::new, Path::to_path_buf),
            ))
        }
    }

    /// What `reference` (as written in the package) names. A package fetched over http(s)
    /// may only name http(s) URLs: never a file of the runner's own disk.
    pub fn resolve(
        &self,
        what: &'static str,
        reference: &str,
    ) -> Result<String, MediapackageError> {
        let bad = |why: String| MediapackageError::BadUrl {
            what,
            reference: reference.to_owned(),
            why,
        };
        let absolute_http = crate::naming::is_http_url(reference);
        match self {
            Self::Url(base) => {
                let url = base.join(reference).map_err(|e| bad(e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(bad(format!(
                        "a package served over http(s) may only name http(s) URLs, not {}",
                        url.scheme()
                    )));
                }
                Ok(url.into())
            }
            Self::Directory(_) if absolute_http => url::Url::parse(reference)
                .map(String::from)
                .map_err(|e| bad(e.to_string())),
            Self::Directory(dir) => {
                if reference.contains("://") && !reference.starts_with("file://") {
                    return Err(bad("only http(s) URLs and local paths".into()));
                }
                let path = Path::new(reference.strip_prefix("file://").unwrap_or(reference));
                Ok(dir.join(path).to_string_lossy().into_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<mediapackage xmlns="http://mediapackage.opencastproject.org" id="abc" presenter="piph">
  <media>
    <track id="t1" type="presenter/source">
      <mimetype>video/webm</mimetype>
      <url>presenter.webm</url>
    </track>
    <track id="t2" type="presentation/source">
      <url> https://pod.test/media/screen.webm?a=1&amp;b=2 </url>
    </track>
  </media>
  <metadata>
    <catalog id="c" type="smil/cutting"><url>cut.smil</url></catalog>
  </metadata>
</mediapackage>"#;

    #[test]
    fn tracks_layout_and_catalog() {
        let p = parse(PACKAGE).unwrap();
        assert_eq!(p.presenter.as_deref(), Some("presenter.webm"));
        assert_eq!(
            p.presentation.as_deref(),
            Some("https://pod.test/media/screen.webm?a=1&b=2")
        );
        assert_eq!(p.layout, StudioLayout::PresenterTopRight);
        assert_eq!(p.smil.as_deref(), Some("cut.smil"));
        let bare = "<mediapackage><media><track type='presentation/source'><url>a.mp4</url></track></media></mediapackage>";
        let p = parse(bare).unwrap();
        assert_eq!(
            (p.presenter, p.layout, p.smil),
            (None, StudioLayout::SideBySide, None)
        );
        assert_eq!(
            parse(&bare.replace("<mediapackage>", "<mediapackage presenter='PIPB'>"))
                .unwrap()
                .layout,
            StudioLayout::PresenterBottomRight
        );
    }

    #[test]
    fn bad_packages() {
        let e = parse("<mediapackage><media>").unwrap_err();
        assert!(matches!(e, MediapackageError::Malformed(_)), "{e}");
        assert_eq!(e.category(), "InvalidMediapackage");
        assert_eq!(
            parse("<html/>").unwrap_err(),
            MediapackageError::NotAMediapackage("html".into())
        );
        assert_eq!(
            parse("<mediapackage><media><track type='presenter/source'/></media></mediapackage>")
                .unwrap_err(),
            MediapackageError::NoTrack
        );
        assert!(matches!(
            parse(
                "<mediapackage presenter='side'><media><track type='presenter/source'><url>a.mp4</url></track></media></mediapackage>"
            ),
            Err(MediapackageError::UnknownLayout(_))
        ));
        assert!(parse("not xml at all").is_err());
    }

    #[test]
    fn smil_times() {
        assert_eq!(smil_time("12.5s"), Some(12.5));
        assert_eq!(smil_time("7"), Some(7.0));
        assert_eq!(smil_time("01:02:03.250"), Some(3723.25));
        assert_eq!(smil_time("00:00:04"), Some(4.0));
        assert_eq!(smil_time("-1s"), None);
        assert_eq!(smil_time("1:2"), None);
        assert_eq!(smil_time("aa:00:01"), None);
        assert_eq!(smil_time("nan"), None);
        assert_eq!(smil_time("500000s"), None);
        assert_eq!(smil_time(""), None);
    }

    #[test]
    fn smil_cuts() {
        let smil = r#"<smil xmlns="http://www.w3.org/ns/SMIL"><body><par>
            <video src="presenter.webm" clipBegin="1.5s" clipEnd="00:00:04.000"/>
            <video src="presentation.webm" clipBegin="9s" clipEnd="10s"/>
        </par></body></smil>"#;
        assert_eq!(smil_cut(smil), Some((1.5, Some(4.0))));
        assert_eq!(
            smil_cut("<smil><video clipBegin='2s'/></smil>"),
            Some((2.0, None))
        );
        assert_eq!(
            smil_cut("<smil><video clipBegin='5s' clipEnd='3s'/></smil>"),
            None
        );
        assert_eq!(smil_cut("<smil><audio/></smil>"), None);
        assert_eq!(smil_cut("<smil"), None);
    }

    #[test]
    fn relative_urls() {
        let remote = Origin::of("https://pod.test/studio/12/mediapackage.xml").unwrap();
        assert_eq!(
            remote.resolve("presenter", "presenter.webm").unwrap(),
            "https://pod.test/studio/12/presenter.webm"
        );
        assert_eq!(
            remote.resolve("presenter", "/media/a.webm").unwrap(),
            "https://pod.test/media/a.webm"
        );
        let e = remote
            .resolve("presenter", "file:///etc/passwd")
            .unwrap_err();
        assert_eq!(e.category(), "InvalidMediapackageUrl");
        let local = Origin::of("/tmp/rec/mp.xml").unwrap();
        assert_eq!(
            local.resolve("presenter", "a.webm").unwrap(),
            "/tmp/rec/a.webm"
        );
        assert_eq!(
            local
                .resolve("presenter", "http://127.0.0.1:9/a.webm")
                .unwrap(),
            "http://127.0.0.1:9/a.webm"
        );
        assert!(local.resolve("presenter", "ftp://x/a.webm").is_err());
    }
}
