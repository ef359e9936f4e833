//! `wardgate demo`: placeholder replaced below.
#[derive(clap::Args)]
pub struct DemoOptions {}
pub async fn run(_o: DemoOptions) -> anyhow::Result<std::process::ExitCode> { Ok(std::process::ExitCode::SUCCESS) }
