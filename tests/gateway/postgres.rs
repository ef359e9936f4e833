//! A real PostgreSQL server for the shared-store tests: a throwaway cluster made with
//! Debian's `initdb` in a temporary directory, listening on loopback with TLS (a certificate
//! from the test CA), stopped when dropped. `.ci/run` installs the `postgresql` package.
//! PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Pki;

pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    tls_files: Option<(PathBuf, PathBuf)>,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect(
        "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/initdb): \
         `apt-get install postgresql`, as .ci/run does",
    )
}

fn output(command: &mut Command) -> String {
    let out = command.output().expect("run a command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")) == "0"
}

/// `program` run as the `postgres` user when we are root (`setpriv` execs in place, so the
/// child's pid is the server's).
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_server_user(path: &Path) {
    if running_as_root() {
        output(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path),
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PostgresServer {
    /// A new cluster with TLS on (certificate for 127.0.0.1 from the test CA) and trust
    /// authentication for the `wardgate` user from loopback.
    pub fn start(pki: &Pki) -> PostgresServer {
        let bin = bin_dir();
        // In /tmp whatever TMPDIR says: the server's user must be able to reach the folder.
        let dir = tempfile::Builder::new()
            .prefix("wardgate-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        let tls = pki
            .ca
            .issue_server(dir.path(), "postgres", &["127.0.0.1", "localhost"])
            .unwrap();
        give_to_server_user(dir.path());
        output(
            as_server_user(&bin.join("initdb"))
                .args(["--auth=trust", "--username=wardgate", "--no-sync", "-D"])
                .arg(&data),
        );
        // The server wants its key readable by its owner only.
        output(Command::new("chmod").arg("600").arg(&tls.key));
        let mut server = PostgresServer {
            dir,
            bin,
            child: None,
            tls_files: Some((tls.cert, tls.key)),
            port: free_port(),
        };
        server.run();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn run(&mut self) {
        let (cert, key) = self.tls_files.clone().unwrap();
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = as_server_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (a fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A file holding the connection string, for `shared_store.postgres.url_file`.
    pub fn url_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("postgres-url");
        std::fs::write(
            &path,
            format!(
                "postgresql://wardgate@127.0.0.1:{}/postgres?sslmode=require\n",
                self.port
            ),
        )
        .unwrap();
        path
    }

    /// The config section that points a gateway at this server, trusting the test CA.
    pub fn config_section(&self, pki: &Pki) -> String {
        format!(
            "shared_store:\n  postgres:\n    url_file: {}\n    tls:\n      ca: {}\n    timeout: 2s\n",
            self.url_file(pki.dir.path()).display(),
            pki.ca_cert.display()
        )
    }

    /// A client program of the server's (psql, pg_dump, pg_restore) connected over TLS.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command
            .args(["-h", "127.0.0.1", "-U", "wardgate", "-d", "postgres"])
            .args(["-p", &self.port.to_string()])
            .env("PGSSLMODE", "require");
        command
    }

    /// Runs SQL with psql and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        output(self.client("psql").args(["-X", "-A", "-t", "-c", sql]))
    }

    /// `pg_dump` of wardgate's schema, in the custom format, to `file`.
    pub fn dump(&self, file: &Path) {
        output(
            self.client("pg_dump")
                .args(["--format=custom", "--schema=wardgate", "--file"])
                .arg(file),
        );
    }

    /// `pg_restore` of a dump made by [`PostgresServer::dump`].
    pub fn restore(&self, file: &Path) {
        output(self.client("pg_restore").arg("--exit-on-error").arg(file));
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}
