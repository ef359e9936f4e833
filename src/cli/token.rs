//! `wardgate token`: JWTs for trying wardgate out, signed with the demo identity provider's key
//! (or, knowingly, another), and the JWKS that verifies them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use wardgate::demo::tokens::{MintError, SigningKey, TokenClaims};

#[derive(Subcommand)]
pub enum TokenCommand {
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

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Mint {
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
        } => {
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
            mint(claims, key, &kid, i_know_this_is_not_production)
        }
        TokenCommand::Jwks { key, kid } => jwks(key, &kid),
    }
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
