//! The webhook's HTML pages in a real headless Chromium, checked with axe-core. The webhook's
//! routes run without a cluster (`docs_preview`, as e2e/fuzz/docs-screenshot does). Ignored by
//! a plain `cargo test`: `make browser-test` installs chromium and axe-core, then runs it.
//! `/` answers JSON, so `/admin` is the only HTML page that needs nothing from a CDN.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests fail loudly by design

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use esup_e2e::browser::Browser;
use esup_e2e::{free_loopback_port, repo_root, target_dir};

/// `docs_preview`, killed when dropped.
struct Preview {
    _child: tokio::process::Child,
    base: String,
}

async fn preview() -> Preview {
    let bin = target_dir().join("debug/examples/docs_preview");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p esup-webhook --example docs_preview` (make browser-test does)",
        bin.display()
    );
    let port = free_loopback_port().expect("a free port");
    let child = tokio::process::Command::new(&bin)
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("docs_preview starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "docs_preview not listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Preview {
        _child: child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

#[tokio::test]
#[ignore = "needs chromium and axe-core: make browser-test"]
async fn admin_page_renders_and_passes_axe() {
    let web = preview().await;
    let browser = Browser::start().await.expect("the browser starts");
    browser
        .goto(&format!("{}/admin", web.base))
        .await
        .expect("/admin loads");

    let heading = browser
        .eval("return document.querySelector('h1')?.textContent ?? null")
        .await
        .expect("the heading is read");
    assert_eq!(heading, "esup-runner-operator");
    let links = browser
        .eval("return [...document.querySelectorAll('a')].map(a => a.textContent)")
        .await
        .expect("the links are read");
    for link in ["Swagger UI", "ReDoc", "OpenAPI document", "docs/"] {
        assert!(
            links
                .as_array()
                .is_some_and(|l| l.iter().any(|t| t == link)),
            "no {link} link in {links}"
        );
    }

    let violations = browser.axe().await.expect("axe-core runs");
    let severe: Vec<_> = violations.iter().filter(|v| v.is_severe()).collect();
    assert!(
        severe.is_empty(),
        "serious or critical axe-core violations on /admin: {severe:#?}"
    );
    if !violations.is_empty() {
        eprintln!("minor axe-core findings on /admin: {violations:#?}");
    }

    let shot = repo_root().join("target/browser/admin.png");
    std::fs::create_dir_all(shot.parent().expect("a parent")).expect("target/browser");
    browser.screenshot(&shot).await.expect("a screenshot");
    assert!(std::fs::metadata(&shot).expect("the screenshot").len() > 1000);
    browser.close().await.expect("the session closes");
}
