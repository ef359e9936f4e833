//! `wardgate demo`: every curl line it prints works as printed and shows what it says.

use std::net::SocketAddr;

use wardgate::demo::{Demo, DemoOptions};

#[tokio::test]
async fn every_printed_curl_line_works() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let demo = Demo::start(&DemoOptions {
        listen: any,
        admin: any,
        backend: any,
    })
    .await
    .unwrap();
    let instructions = demo.instructions();
    let lines: Vec<String> = instructions
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("curl "))
        .map(str::to_owned)
        .collect();
    let expected = [
        "Li Wei",
        "stable angina",
        "The tightness is gone today.",
        "The tightness is gone today.",
        "no route matches the request",
        "percent-encoded dot segment",
        "strict-transport-security: max-age=31536000",
        "wardgate_requests_total{method=\"GET\",route=\"patient\",status_class=\"2xx\"} 2",
    ];
    assert_eq!(lines.len(), expected.len(), "{instructions}");
    for (line, want) in lines.iter().zip(expected) {
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(want),
            "{line}\nexpected {want:?} in:\n{stdout}"
        );
    }
    demo.stop().await;
}

#[tokio::test]
async fn ctrl_c_stops_the_demo_and_removes_its_files() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut files = None;
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("files") {
            files = rest.split_whitespace().next().map(std::path::PathBuf::from);
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let files = files.expect("the demo prints its folder");
    assert!(files.join("demo.yaml").exists());
    let interrupted = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!files.exists(), "the demo's temporary folder is removed");
    drop(stdout);
}
