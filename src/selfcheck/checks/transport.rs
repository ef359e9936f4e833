//! Transport items: the listener's certificate (usable, its expiry), the TLS versions,
//! upstream TLS, HSTS, and, against the running gateway, the handshakes its listener completes.

use super::{item, now_ms, Live, DAY_MS};
use crate::config::Config;
use crate::selfcheck::{Item, Status};

pub(super) fn transport(config: &Config, items: &mut Vec<Item>) {
    match crate::tls::server_config(&config.server.tls) {
        Err(problems) => items.push(item(
            "transport.certificate",
            Status::Fail,
            format!(
                "the listener's certificate or key cannot be used: {}",
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "install a valid certificate and key (server.tls)",
        )),
        Ok(tls) => {
            let suites: Vec<String> = tls
                .config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|suite| format!("{:?}", suite.suite()))
                .collect();
            // CBC modes, static RSA key exchange (no forward secrecy) and SHA-1 MACs.
            let weak = suites
                .iter()
                .any(|s| s.contains("CBC") || s.starts_with("TLS_RSA_") || s.ends_with("_SHA"));
            items.push(item(
                "transport.protocols",
                if weak { Status::Fail } else { Status::Pass },
                format!(
                    "TLS 1.3 and 1.2 only; suites offered: {}",
                    suites.join(", ")
                ),
                "offer only AEAD suites with forward secrecy",
            ));
            match tls.cert_not_after {
                None => items.push(item(
                    "transport.certificate",
                    Status::Warn,
                    "the certificate's expiry could not be read",
                    "check server.tls.cert",
                )),
                Some(not_after) => {
                    let days = (not_after * 1000 - now_ms()) / DAY_MS;
                    let status = match days {
                        d if d < 0 => Status::Fail,
                        d if d < 14 => Status::Fail,
                        d if d < 30 => Status::Warn,
                        _ => Status::Pass,
                    };
                    items.push(item(
                        "transport.certificate",
                        status,
                        format!("the listener's certificate expires in {days} days"),
                        "renew the certificate, then `systemctl reload wardgate` (SIGHUP)",
                    ));
                }
            }
        }
    }
    let plain: Vec<&String> = config
        .upstreams
        .iter()
        .filter(|(_, upstream)| {
            upstream.url.starts_with("http://")
                && !["http://127.", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|local| upstream.url.starts_with(local))
        })
        .map(|(name, _)| name)
        .collect();
    let mutual = config
        .upstreams
        .values()
        .filter(|u| u.tls.as_ref().is_some_and(|t| t.client_cert.is_some()))
        .count();
    items.push(item(
        "transport.upstreams",
        if plain.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        if plain.is_empty() {
            format!(
                "every remote upstream uses TLS; {mutual} of {} with a client certificate (mTLS)",
                config.upstreams.len()
            )
        } else {
            format!(
                "upstreams reached over plain HTTP across the network: {}",
                plain
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        "use https:// (and a client certificate) for upstreams on other hosts",
    ));
    let hsts = config.security_headers.strict_transport_security.as_deref();
    items.push(item(
        "transport.hsts",
        if hsts.is_some_and(|v| v.contains("max-age=") && !v.contains("max-age=0")) {
            Status::Pass
        } else {
            Status::Fail
        },
        match hsts {
            Some(value) => format!("responses carry Strict-Transport-Security: {value}"),
            None => "responses carry no Strict-Transport-Security".to_owned(),
        },
        "set security_headers.strict_transport_security (max-age of a year)",
    ));
}

pub(super) fn live_transport(live: Option<&Live>, items: &mut Vec<Item>) {
    let Some(handshakes) = live.and_then(|live| live.handshakes.as_ref()) else {
        items.push(item(
            "transport.handshake",
            Status::Warn,
            "not checked: give the running gateway's listener (--proxy) to handshake with it",
            "run selfcheck against the running gateway",
        ));
        return;
    };
    let tls13 = handshakes.iter().find(|(v, _)| *v == "TLS 1.3");
    let ok = tls13.is_some_and(|(_, result)| result.is_ok());
    let found = handshakes
        .iter()
        .map(|(version, result)| match result {
            Ok(suite) => format!("{version}: {suite}"),
            Err(err) => format!("{version}: refused ({err})"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    items.push(item(
        "transport.handshake",
        if ok { Status::Pass } else { Status::Fail },
        format!("handshakes with the listener: {found}"),
        "the listener must complete a TLS 1.3 handshake with the configured certificate",
    ));
}
