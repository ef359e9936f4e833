//! `wardgate demo`: every curl line it prints works as printed and shows what it says.

use std::net::SocketAddr;

use wardgate::demo::{Demo, DemoOptions};

#[tokio::test]
async fn every_printed_curl_line_works() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut demo = Demo::start(&DemoOptions {
        listen: any,
        admin: any,
        backend: any,
    })
    .await
    .unwrap();
    demo.wardgate = env!("CARGO_BIN_EXE_wardgate").into();
    let instructions = demo.instructions().unwrap();
    // Exactly what a user pastes: the export lines, then each curl line as printed.
    let exports: String = instructions
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("export "))
        .map(|line| format!("{line}\n"))
        .collect();
    let wardgate = env!("CARGO_BIN_EXE_wardgate");
    let printed: Vec<&str> = instructions
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("curl ") || line.starts_with(wardgate))
        .collect();
    let examples = demo.examples();
    assert_eq!(
        exports.lines().count(),
        7,
        "one token per role:\n{instructions}"
    );
    assert_eq!(printed.len(), examples.len(), "{instructions}");
    for (line, example) in printed.iter().zip(&examples) {
        assert_eq!(*line, example.command);
        let script = format!("{exports}{line}");
        let output = crate::support::run_shell(&script).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}\n{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&example.expect),
            "{}: {line}\nexpected {:?} in:\n{stdout}",
            example.what,
            example.expect
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
