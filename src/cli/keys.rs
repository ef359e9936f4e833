//! `wardgate keys`: the field encryption key ring (create, rotate, list) and crypto-shredding of
//! one patient's data key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use wardgate::crypto::manage;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key ring (mode 0600, never overwrites) at `--file`, or where the config says.
    Init {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Add a ring version and rewrap every data key under it; backend data is untouched.
    Rotate {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Ring versions and how many data keys each wraps; never key bytes.
    List {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Destroy a patient's data key: every ciphertext of theirs becomes unreadable, for good.
    Shred {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The patient id as the hospital knows it.
        #[arg(long)]
        patient: String,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init { config, file } => {
            let path = match file {
                Some(file) => file,
                None => manage::configured_ring_file(&config_or_exit!(&config).config)?,
            };
            let version = manage::init(&path)?;
            println!(
                "key ring created: {} (version {}, mode 0600)",
                path.display(),
                version.version
            );
            println!("Back it up apart from the data directory: without it no field can be read; with the data directory it undoes crypto-shredding.");
        }
        KeysCommand::Rotate { config } => {
            println!("{}", manage::rotate(&config_or_exit!(&config).config)?);
        }
        KeysCommand::List { config } => {
            println!("{}", manage::list(&config_or_exit!(&config).config)?);
        }
        KeysCommand::Shred { config, patient } => {
            if manage::shred(&config_or_exit!(&config).config, &patient)? {
                println!("data key shredded: the patient's protected fields are unreadable everywhere, for good");
            } else {
                println!(
                    "no data key existed for this patient; a tombstone now stops one being made"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
