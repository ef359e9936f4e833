//! The `wardgate` command: parses arguments, then hands over to library functions.
//! Errors are printed with their causes; config problems exit with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wardgate::config;
use wardgate::demo::tokens::{MintError, SigningKey, TokenClaims};

/// jemalloc rather than glibc's malloc, whose fast-bin consolidation and frees across threads
/// (requests allocate records that the audit writer frees) were about 14% of the full
/// pipeline's CPU; jemalloc's share is about 3% (bench/README.md, "The allocator").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Loads a config for an offline command, or returns from the command with exit status 2
/// (the problems printed by `load_config`).
macro_rules! config_or_exit {
    ($path:expr) => {
        match load_config($path) {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        }
    };
}

#[derive(Parser)]
#[command(
    name = "wardgate",
    version,
    about = "Privacy and security gateway for hospital online consultation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    Run {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Check a config file and every file it references; prints `ok` or `file:line:col: problem`.
    Check {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Start a demo consultation backend with the gateway in front of it, on loopback.
    Demo(wardgate::demo::DemoOptions),
    /// Tokens for trying wardgate out.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Questions about the access policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit trail: query it, verify it, make its keys.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Field encryption keys: the key ring and the per-patient data keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Patient erasure requests, through the admin API of a running gateway.
    Erasure(ErasureArgs),
    /// The semiannual permission review: the report, sign-off, history.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Ask a running gateway's admin listener whether it is alive (`GET /healthz`): exit 0
    /// when it answers 200 within 3 s, 1 otherwise. For container health checks.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Copy every store of the data directory (a consistent snapshot of each, taken while
    /// the gateway runs) into a new folder, and touch `recovery.backup_marker`.
    Backup {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        /// A new folder for the copy.
        #[arg(long)]
        out: PathBuf,
    },
    /// Self-inspection of the deployment: one line per item, PASS, WARN or FAIL, with the
    /// evidence and the fix; exit 1 when anything fails.
    Selfcheck(SelfcheckArgs),
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Write the review report for a period: HTML (one self-contained file), and CSV or JSON.
    Report {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        /// A date (2026-05-01), a time (RFC 3339) or a duration back from now (183d).
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// A folder for one CSV file per section.
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
        /// en or zh-CN (default: review.language in the config).
        #[arg(long)]
        language: Option<String>,
    },
    /// Record a sign-off: the reviewer, the report's hash and each decision (keep, revoke,
    /// follow_up) from a YAML file `decisions: [{grant, decision, note}]`.
    Sign {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        #[arg(long)]
        report: PathBuf,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        decisions: PathBuf,
    },
    /// Past sign-offs, newest first.
    History {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct ErasureArgs {
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
enum ErasureCommand {
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
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key ring (mode 0600, never overwrites) at `--file`, or where the config says.
    Init {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Add a ring version and rewrap every data key under it; backend data is untouched.
    Rotate {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Ring versions and how many data keys each wraps; never key bytes.
    List {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Destroy a patient's data key: every ciphertext of theirs becomes unreadable, for good.
    Shred {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        /// The patient id as the hospital knows it.
        #[arg(long)]
        patient: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk every chain and checkpoint; exit 0 when intact, 1 at the first sign of tampering.
    Verify {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        /// Start at this sequence number (its link to the one before is not checked).
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Who accessed a patient's data (or what a subject did), when, and was it allowed.
    Query {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
        /// The patient id as the hospital knows it; its pseudonym is computed here. Without
        /// --patient or --subject, --since is required and the whole period is scanned.
        #[arg(long, required_unless_present_any = ["subject", "since"])]
        patient: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// A date (2026-11-01), a time (RFC 3339) or a duration back from now (48h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// allow, deny, unauthenticated, unmatched, rejected or unavailable.
        #[arg(long)]
        decision: Option<String>,
        /// Only break-glass accesses.
        #[arg(long)]
        break_glass: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: wardgate::audit::query::Format,
    },
    /// Make the pseudonym key and the checkpoint signing key in a folder (never overwrites).
    Keygen {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign a JWT with the demo identity provider's key (or, knowingly, another key).
    Mint {
        /// A role of the principal; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        patient: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, such as 15m or 8h.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// A PEM private key (Ed25519, P-256 or RSA) instead of the demo key.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = wardgate::demo::tokens::DEMO_KID)]
        kid: String,
        #[arg(long, default_value = wardgate::demo::tokens::DEMO_ISSUER)]
        issuer: String,
        #[arg(long, default_value = wardgate::demo::tokens::DEMO_AUDIENCE)]
        audience: String,
        /// Required with --key: minting with a real key is not what this command is for.
        #[arg(long)]
        i_know_this_is_not_production: bool,
    },
    /// Print the JWKS (public keys) that verifies the tokens `mint` signs: the demo key's, or
    /// the public half of --key, for `identity.jwt.jwks_file`.
    Jwks {
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = wardgate::demo::tokens::DEMO_KID)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Show how a request would be routed, identified and decided, and by which rule.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// The bearer token (without "Bearer "); none for an anonymous request.
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request path, with its query if any.
        #[arg(long)]
        path: String,
        /// Extra request headers, as `name: value` (such as the break-glass header).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => block_on(check(config)),
        Command::Run { config } => block_on(run(config)),
        Command::Demo(options) => block_on(wardgate::demo::run(options)),
        Command::Token(TokenCommand::Mint {
            roles,
            sub,
            department,
            patient,
            name,
            ttl,
            key,
            kid,
            issuer,
            audience,
            i_know_this_is_not_production,
        }) => {
            let claims = TokenClaims {
                subject: sub,
                roles,
                department,
                patient_id: patient,
                name,
                ttl: ttl.into(),
                issuer,
                audience,
            };
            report(mint(claims, key, &kid, i_know_this_is_not_production))
        }
        Command::Token(TokenCommand::Jwks { key, kid }) => report(jwks(key, &kid)),
        Command::Policy(PolicyCommand::Explain {
            config,
            token,
            method,
            path,
            headers,
        }) => block_on(explain(config, token, method, path, headers)),
        Command::Audit(AuditCommand::Verify { config, from }) => {
            report(audit_verify(&config, from))
        }
        Command::Audit(AuditCommand::Query {
            config,
            patient,
            subject,
            since,
            until,
            decision,
            break_glass,
            format,
        }) => report(audit_query(
            &config,
            patient,
            subject,
            since,
            until,
            decision,
            break_glass,
            format,
        )),
        Command::Audit(AuditCommand::Keygen { dir }) => report(audit_keygen(&dir)),
        Command::Keys(command) => report(keys(command)),
        Command::Erasure(args) => block_on(erasure(args)),
        Command::Review(command) => report(review(command)),
        Command::Backup { config, out } => report(backup(&config, &out)),
        Command::Health { url } => block_on(health(url)),
        Command::Selfcheck(args) => block_on(selfcheck(args)),
    }
}

#[derive(clap::Args)]
struct SelfcheckArgs {
    #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
    config: PathBuf,
    /// The running gateway's admin listener, to inspect it live.
    #[arg(long)]
    admin: Option<String>,
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The running gateway's proxy listener, to handshake with (default: server.listen,
    /// when it names a port).
    #[arg(long)]
    proxy: Option<std::net::SocketAddr>,
    /// Also write the items as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the inspection as one HTML page.
    #[arg(long)]
    out: Option<PathBuf>,
    /// en or zh-CN (default: review.language in the config).
    #[arg(long)]
    language: Option<String>,
}

async fn selfcheck(args: SelfcheckArgs) -> anyhow::Result<ExitCode> {
    use wardgate::selfcheck::{self, Status};
    let SelfcheckArgs {
        config,
        admin,
        token_file,
        proxy,
        json,
        out,
        language,
    } = args;
    let loaded = config_or_exit!(&config);
    let live = match admin {
        None => None,
        Some(url) => {
            let token = token_file.ok_or_else(|| anyhow::anyhow!("--admin needs --token-file"))?;
            let client = wardgate::admin::client::AdminClient::new(&url, &token)?;
            let listen = loaded.config.server.listen;
            let proxy = proxy.or_else(|| {
                (listen.port() != 0).then(|| {
                    let ip = if listen.ip().is_unspecified() {
                        std::net::IpAddr::from([127, 0, 0, 1])
                    } else {
                        listen.ip()
                    };
                    std::net::SocketAddr::new(ip, listen.port())
                })
            });
            let handshakes = match proxy {
                Some(addr) => selfcheck::handshakes(&loaded.config, addr).await,
                None => None,
            };
            Some(selfcheck::Live {
                metrics: client
                    .call(http::Method::GET, "/metrics", None)
                    .await
                    .map_err(|err| err.to_string()),
                handshakes,
            })
        }
    };
    let language = language.unwrap_or_else(|| loaded.config.review.language.clone());
    let inspection =
        tokio::task::spawn_blocking(move || selfcheck::inspect(&loaded.config, live.as_ref()))
            .await?;
    let items = &inspection.items;
    for item in items {
        println!("{item}");
    }
    let count = |status| items.iter().filter(|i| i.status == status).count();
    println!(
        "\n{} items: {} pass, {} warn, {} fail",
        items.len(),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
    match &inspection.changes {
        Some(changes) => println!(
            "since the previous inspection: fixed {:?}, new {:?}, still open {}",
            changes.fixed,
            changes.new,
            changes.still_open.len()
        ),
        None => println!("first inspection recorded"),
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(items)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = out {
        let page = selfcheck::html::render(
            items,
            inspection.changes.as_ref(),
            &language,
            inspection.at_ms,
        );
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if count(Status::Fail) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn review(command: ReviewCommand) -> anyhow::Result<ExitCode> {
    use wardgate::review;
    let now = std::time::SystemTime::now();
    let now_ms = wardgate::erasure::store::now_ms();
    match command {
        ReviewCommand::Report {
            config,
            since,
            until,
            out,
            csv,
            json,
            language,
        } => {
            let loaded = config_or_exit!(&config);
            let time = |text: &str, what: &str| {
                wardgate::audit::query::parse_time(text, now)
                    .map_err(|err| anyhow::anyhow!("--{what}: {err}"))
            };
            let since_ms = time(&since, "since")?;
            let until_ms = match until {
                Some(until) => time(&until, "until")?,
                None => now_ms,
            };
            let started = std::time::Instant::now();
            let report = review::build(&loaded.config, since_ms, until_ms, now_ms)?;
            let words = review::html::words(
                language
                    .as_deref()
                    .unwrap_or(&loaded.config.review.language),
            );
            std::fs::write(&out, review::html::render(&report, words))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "report: {} ({} audit records, {} subjects, {} grants never used, {} break-glass uses) in {:.1?}",
                out.display(),
                report.records,
                report.subjects.len(),
                report.grants.iter().filter(|g| g.uses == 0).count(),
                report.break_glass.len(),
                started.elapsed()
            );
            if let Some(dir) = csv {
                let files = review::write_csv(&report, &dir)?;
                println!("csv: {} files in {}", files.len(), dir.display());
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("json: {}", path.display());
            }
        }
        ReviewCommand::Sign {
            config,
            report,
            reviewer,
            decisions,
        } => {
            let loaded = config_or_exit!(&config);
            let id = review::sign(
                &wardgate::store::Location::for_tools(&loaded.config)?,
                &report,
                &reviewer,
                &decisions,
                now_ms,
            )?;
            println!("review {id} signed by {reviewer}");
        }
        ReviewCommand::History { config } => {
            let loaded = config_or_exit!(&config);
            let reviews =
                review::store::history(&wardgate::store::Location::for_tools(&loaded.config)?)?;
            if reviews.is_empty() {
                println!("no signed review yet");
            }
            for past in reviews {
                let revoked = past
                    .decisions
                    .iter()
                    .filter(|d| d.decision == "revoke")
                    .count();
                println!(
                    "{}  {}  by {}  period {} .. {}  {} decisions ({} revocations)  report sha256 {}",
                    past.id,
                    review::rows::date(past.signed_at),
                    past.reviewer,
                    &review::rows::date(past.since)[..10],
                    &review::rows::date(past.until)[..10],
                    past.decisions.len(),
                    revoked,
                    &past.report_hash[..16]
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn erasure(args: ErasureArgs) -> anyhow::Result<ExitCode> {
    use http::Method;
    use serde_json::json;
    if let ErasureCommand::VerifyReceipt { file, config } = &args.command {
        let loaded = config_or_exit!(config);
        let key = wardgate::audit::load_signing_key(&loaded.config.audit.signing_key_file)
            .map_err(anyhow::Error::msg)?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        return Ok(
            match wardgate::erasure::receipt::Receipt::verify(&text, &key.verifying_key()) {
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
            },
        );
    }
    let client = wardgate::admin::client::AdminClient::new(&args.admin, &args.token_file)?;
    let base = "/admin/erasure-requests";
    let field = |text: &str, name: &str| -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        value[name].as_str().map(str::to_owned)
    };
    if let ErasureCommand::Receipt { id, wait } = &args.command {
        if *wait > 0 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(*wait);
            loop {
                match client
                    .call(Method::GET, &format!("{base}/{id}/receipt"), None)
                    .await
                {
                    Ok(receipt) => {
                        println!("{receipt}");
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(wardgate::admin::client::ClientError::Refused { status, .. })
                        if status == http::StatusCode::CONFLICT
                            && std::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
    let (method, path, body) = match &args.command {
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
            base.to_owned(),
            Some(
                json!({"patient_id": patient, "requester": requester, "channel": channel,
                        "reason": reason, "verification_ref": verification_ref,
                        "submitted_by": submitted_by}),
            ),
        ),
        ErasureCommand::List { .. } => (Method::GET, base.to_owned(), None),
        ErasureCommand::Show { id } => (Method::GET, format!("{base}/{id}"), None),
        ErasureCommand::Approve { id, approver } => (
            Method::POST,
            format!("{base}/{id}/approve"),
            Some(json!({ "approver": approver })),
        ),
        ErasureCommand::Reject { id, by, reason } => (
            Method::POST,
            format!("{base}/{id}/reject"),
            Some(json!({ "by": by, "reason": reason })),
        ),
        ErasureCommand::Cancel { id, by, reason } => (
            Method::POST,
            format!("{base}/{id}/cancel"),
            Some(json!({ "by": by, "reason": reason })),
        ),
        ErasureCommand::Receipt { id, .. } => (Method::GET, format!("{base}/{id}/receipt"), None),
        ErasureCommand::VerifyReceipt { .. } => return Ok(ExitCode::FAILURE),
    };
    let answer = client.call(method, &path, body).await?;
    match &args.command {
        ErasureCommand::Submit { id_only: true, .. } => {
            println!("{}", field(&answer, "id").unwrap_or_default());
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

fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    use wardgate::crypto::manage;
    let config_of = |path: &std::path::Path| load_config(path).map(|loaded| loaded.config);
    match command {
        KeysCommand::Init { config, file } => {
            let path = match file {
                Some(file) => file,
                None => match config_of(&config) {
                    Ok(config) => manage::configured_ring_file(&config)?,
                    Err(code) => return Ok(code),
                },
            };
            let version = manage::init(&path)?;
            println!(
                "key ring created: {} (version {}, mode 0600)",
                path.display(),
                version.version
            );
            println!("Back it up apart from the data directory: without it no field can be read; with the data directory it undoes crypto-shredding.");
        }
        KeysCommand::Rotate { config } => match config_of(&config) {
            Ok(config) => println!("{}", manage::rotate(&config)?),
            Err(code) => return Ok(code),
        },
        KeysCommand::List { config } => match config_of(&config) {
            Ok(config) => println!("{}", manage::list(&config)?),
            Err(code) => return Ok(code),
        },
        KeysCommand::Shred { config, patient } => match config_of(&config) {
            Ok(config) => {
                if manage::shred(&config, &patient)? {
                    println!("data key shredded: the patient's protected fields are unreadable everywhere, for good");
                } else {
                    println!("no data key existed for this patient; a tombstone now stops one being made");
                }
            }
            Err(code) => return Ok(code),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a config for an offline command; config problems exit 2.
fn load_config(path: &std::path::Path) -> Result<config::LoadedConfig, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

async fn health(url: String) -> anyhow::Result<ExitCode> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await;
    match answer {
        Ok(Ok(response)) if response.status().is_success() => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(response)) => {
            println!("{url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(err)) => {
            println!("{url}: {err}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!("{url}: no answer within 3 s");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn backup(path: &std::path::Path, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(path);
    let config = &loaded.config;
    if config.shared_store.is_some() {
        anyhow::bail!(
            "the stores are in the shared PostgreSQL database (shared_store): back it up with the \
             database's own tools (pg_dump of the `wardgate` schema, or point-in-time recovery); \
             docs/operations.md, \"Backups with a shared store\""
        );
    }
    let manifest = wardgate::store::backup::backup(&config.data_dir, out)?;
    for file in &manifest.files {
        println!(
            "{:<14} {:>12} bytes  sha256 {}",
            file.file, file.bytes, file.sha256
        );
    }
    if let Some(marker) = &config.recovery.backup_marker {
        std::fs::write(marker, format!("{}\n", manifest.taken_at))
            .with_context(|| format!("cannot touch the backup marker {}", marker.display()))?;
    }
    println!(
        "backup of {} written to {}",
        config.data_dir.display(),
        out.display()
    );
    println!("Back up the key ring and the erasure ledger too, each apart from this copy (docs/operations.md).");
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(path: &std::path::Path, from: u64) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(path);
    let key = wardgate::audit::load_signing_key(&loaded.config.audit.signing_key_file)
        .map_err(anyhow::Error::msg)?;
    let reader = wardgate::audit::store::AuditReader::open(wardgate::store::Location::for_tools(
        &loaded.config,
    )?)?;
    let verification = wardgate::audit::verify::verify(&reader, &key.verifying_key(), from)?;
    println!("{verification}");
    Ok(if verification.problem.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[allow(clippy::too_many_arguments)]
fn audit_query(
    path: &std::path::Path,
    patient: Option<String>,
    subject: Option<String>,
    since: Option<String>,
    until: Option<String>,
    decision: Option<String>,
    break_glass: bool,
    format: wardgate::audit::query::Format,
) -> anyhow::Result<ExitCode> {
    use wardgate::audit::query;
    let loaded = config_or_exit!(path);
    let key = wardgate::identity::read_secret(&loaded.config.audit.pseudonym_key_file, 32)
        .map_err(anyhow::Error::msg)?;
    let pseudonyms = wardgate::audit::Pseudonymizer::new(key);
    let now = std::time::SystemTime::now();
    let time = |text: Option<String>, what: &str| -> anyhow::Result<Option<i64>> {
        text.map(|t| query::parse_time(&t, now).map_err(|err| anyhow::anyhow!("--{what}: {err}")))
            .transpose()
    };
    let filter = wardgate::audit::store::QueryFilter {
        patient: patient.map(|id| pseudonyms.pseudonym(&id)),
        subject,
        since_ms: time(since, "since")?,
        until_ms: time(until, "until")?,
        decision,
        break_glass_only: break_glass,
        limit: None,
    };
    let reader = wardgate::audit::store::AuditReader::open(wardgate::store::Location::for_tools(
        &loaded.config,
    )?)?;
    let records = reader.query(&filter)?;
    print!("{}", query::render(&records, format));
    let summary = query::summary(&records);
    match format {
        query::Format::Table => println!("\n{summary}"),
        query::Format::Json | query::Format::Csv => eprintln!("{summary}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_keygen(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (pseudonym, signing) = wardgate::audit::keys::generate(dir)?;
    println!("pseudonym key:  {}", pseudonym.display());
    println!("signing key:    {}", signing.display());
    println!("Keep both with the config; back them up with the data directory (a lost signing key cannot sign new checkpoints, a lost pseudonym key makes patients unsearchable).");
    Ok(ExitCode::SUCCESS)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("wardgate: {err:#}");
        ExitCode::FAILURE
    })
}

fn mint(
    claims: TokenClaims,
    key: Option<PathBuf>,
    kid: &str,
    acknowledged: bool,
) -> anyhow::Result<ExitCode> {
    let signing_key = match key {
        None => SigningKey::demo()?,
        Some(path) if acknowledged => SigningKey::from_file(&path, kid)?,
        Some(path) => return Err(MintError::NotDemoKey(path.display().to_string()).into()),
    };
    println!("{}", signing_key.sign(&claims.to_json())?);
    Ok(ExitCode::SUCCESS)
}

fn jwks(key: Option<PathBuf>, kid: &str) -> anyhow::Result<ExitCode> {
    let signing_key = match key {
        None => SigningKey::demo()?,
        Some(path) => SigningKey::from_file(&path, kid)?,
    };
    println!("{}", signing_key.jwks()?);
    Ok(ExitCode::SUCCESS)
}

async fn explain(
    config: PathBuf,
    token: Option<String>,
    method: String,
    path: String,
    headers: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(&config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .context("invalid --method")?;
    let mut header_map = http::HeaderMap::new();
    for header in &headers {
        let (name, value) = header
            .split_once(':')
            .context("a --header is written as `name: value`")?;
        header_map.insert(
            http::HeaderName::from_bytes(name.trim().as_bytes()).context("invalid header name")?,
            http::HeaderValue::from_str(value.trim()).context("invalid header value")?,
        );
    }
    let report =
        wardgate::policy::explain(&loaded, token.as_deref(), &method, &path, &header_map).await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    // On one CPU a single-threaded scheduler does the same work without the bookkeeping
    // that lets idle workers steal tasks.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wardgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wardgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let result = match config::load(&path) {
        Ok(loaded) => wardgate::server::prepare(&loaded).await.map(|_| ()),
        Err(errors) => Err(errors),
    };
    Ok(match result {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
    })
}

async fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    wardgate::logging::init(&loaded.config.log);
    let signals = wardgate::server::Signals::install().context("cannot listen for signals")?;
    let gateway = match wardgate::RunningGateway::start(loaded).await {
        Ok(gateway) => gateway,
        Err(wardgate::StartError::Config(errors)) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
        Err(err) => return Err(err.into()),
    };
    gateway.run_until_signalled(signals).await;
    Ok(ExitCode::SUCCESS)
}
