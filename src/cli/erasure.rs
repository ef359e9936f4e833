//! `wardgate erasure`: patient erasure requests through the admin API of a running gateway
//! (submit, list, show, approve, reject, cancel, the signed receipt), and a receipt's signature
//! checked offline with the gateway's key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use http::{Method, StatusCode};
use serde_json::json;

use wardgate::admin::client::{AdminClient, ClientError};
use wardgate::erasure::receipt::Receipt;

#[derive(clap::Args)]
pub struct ErasureArgs {
    /// The admin listener of the running gateway.
    #[arg(long, global = true, default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// The file holding the admin token (admin.token_file).
    #[arg(
        long,
        global = true,
        default_value = "/etc/wardgate/secrets/admin-token"
    )]
    token_file: PathBuf,
    #[command(subcommand)]
    command: ErasureCommand,
}

#[derive(Subcommand)]
pub enum ErasureCommand {
    /// Submit a request; printed once it is stored (202).
    Submit {
        #[arg(long)]
        patient: String,
        /// Who asks: the patient, a guardian, ...
        #[arg(long)]
        requester: String,
        /// How the request came in: app, counter, mail, ...
        #[arg(long)]
        channel: String,
        #[arg(long)]
        reason: String,
        /// A reference to the identity verification done for the requester.
        #[arg(long)]
        verification_ref: String,
        /// The staff member entering it.
        #[arg(long)]
        submitted_by: String,
        /// Print only the new request's id (for scripts).
        #[arg(long)]
        id_only: bool,
    },
    /// Every request, newest first.
    List {
        /// Print only the ids, one per line.
        #[arg(long)]
        ids: bool,
    },
    /// One request, with each system's step.
    Show { id: String },
    /// Approve (the two-person rule: not by the submitter).
    Approve {
        id: String,
        #[arg(long)]
        approver: String,
    },
    Reject {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    Cancel {
        id: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// The signed receipt of a finished request.
    Receipt {
        id: String,
        /// Wait up to this many seconds for the request to finish.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Check a receipt's signature with the gateway's key (from the config); exit 1 if it fails.
    VerifyReceipt {
        file: PathBuf,
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Where the admin API keeps erasure requests.
const BASE: &str = "/admin/erasure-requests";

pub async fn run(args: ErasureArgs) -> anyhow::Result<ExitCode> {
    let client = || AdminClient::new(&args.admin, &args.token_file);
    let (method, path, body) = match &args.command {
        ErasureCommand::VerifyReceipt { file, config } => return verify_receipt(file, config),
        ErasureCommand::Receipt { id, wait } if *wait > 0 => {
            return wait_for_receipt(&client()?, id, Duration::from_secs(*wait)).await;
        }
        ErasureCommand::Submit {
            patient,
            requester,
            channel,
            reason,
            verification_ref,
            submitted_by,
            ..
        } => (
            Method::POST,
            BASE.to_owned(),
            Some(
                json!({"patient_id": patient, "requester": requester, "channel": channel,
                        "reason": reason, "verification_ref": verification_ref,
                        "submitted_by": submitted_by}),
            ),
        ),
        ErasureCommand::List { .. } => (Method::GET, BASE.to_owned(), None),
        ErasureCommand::Show { id } => (Method::GET, format!("{BASE}/{id}"), None),
        ErasureCommand::Approve { id, approver } => (
            Method::POST,
            format!("{BASE}/{id}/approve"),
            Some(json!({ "approver": approver })),
        ),
        ErasureCommand::Reject { id, by, reason } => (
            Method::POST,
            format!("{BASE}/{id}/reject"),
            Some(json!({ "by": by, "reason": reason })),
        ),
        ErasureCommand::Cancel { id, by, reason } => (
            Method::POST,
            format!("{BASE}/{id}/cancel"),
            Some(json!({ "by": by, "reason": reason })),
        ),
        ErasureCommand::Receipt { id, .. } => (Method::GET, format!("{BASE}/{id}/receipt"), None),
    };
    let answer = client()?.call(method, &path, body).await?;
    match &args.command {
        ErasureCommand::Submit { id_only: true, .. } => {
            let request: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            println!("{}", request["id"].as_str().unwrap_or_default());
        }
        ErasureCommand::List { ids: true } => {
            let list: Vec<serde_json::Value> = serde_json::from_str(&answer).unwrap_or_default();
            for request in list {
                println!("{}", request["id"].as_str().unwrap_or_default());
            }
        }
        _ => println!("{answer}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks for the receipt every 250 ms while the request is still running (409), for at most
/// `wait`.
async fn wait_for_receipt(
    client: &AdminClient,
    id: &str,
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + wait;
    loop {
        match client
            .call(Method::GET, &format!("{BASE}/{id}/receipt"), None)
            .await
        {
            Ok(receipt) => {
                println!("{receipt}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(ClientError::Refused { status, .. })
                if status == StatusCode::CONFLICT && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Checks a receipt's signature offline, with the signing key the config names.
fn verify_receipt(file: &Path, config: &Path) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(config);
    let key = wardgate::audit::load_signing_key(&loaded.config.audit.signing_key_file)
        .map_err(anyhow::Error::msg)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(match Receipt::verify(&text, &key.verifying_key()) {
        Ok(receipt) => {
            println!(
                "ok: receipt of {} ({}, {} systems, {} retained), signed by {}",
                receipt.request_id,
                receipt.outcome,
                receipt.systems.len(),
                receipt.retained.len(),
                receipt.signer
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("FAILED: {err}");
            ExitCode::FAILURE
        }
    })
}
