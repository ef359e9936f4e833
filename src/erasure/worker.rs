//! The erasure worker: moves approved requests through execution and verification. Every
//! attempt is audited and its result stored before the next one, so a gateway killed at any
//! point resumes without repeating a finished step or skipping one (a deletion repeated after
//! a crash is answered 404, which counts as done). Failed attempts back off exponentially with
//! jitter, up to `erasure.retry.max_attempts`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::Rng;

use super::receipt::Receipt;
use super::store::{now_ms, Request, Step};
use super::Erasure;
use crate::audit::AuditRecord;
use crate::config::Durability;
use crate::server::Shared;

/// Starts the worker on a thread and runtime of its own: its store calls block (the store may
/// be a database across the network) and must never hold up the threads serving requests.
/// It stops with the gateway.
pub fn spawn(shared: &Arc<Shared>) {
    if shared.erasure.is_none() {
        return;
    }
    let weak = Arc::downgrade(shared);
    let started = std::thread::Builder::new()
        .name("wardgate-erasure".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(weak)),
                Err(err) => tracing::error!("cannot start the erasure worker: {err}"),
            }
        });
    if let Err(err) = started {
        tracing::error!("cannot start the erasure worker: {err}");
    }
}

async fn run(shared: Weak<Shared>) {
    // Said once when the store stops answering, and once when it is back: not every poll.
    let mut unreachable = false;
    loop {
        let (erasure, stop) = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let Some(erasure) = shared.erasure.clone() else {
                return;
            };
            (erasure, shared.graceful.clone())
        };
        if let Some(shared) = shared.upgrade() {
            // With replicas sharing the store, one of them moves requests on; every replica
            // learns whom the others erased.
            let polled = erasure.store.leads_worker().and_then(|leads| {
                erasure.refresh_erased()?;
                Ok((leads, erasure.store.counts()?))
            });
            match polled {
                Ok((leads, counts)) => {
                    if std::mem::take(&mut unreachable) {
                        tracing::info!("the erasure store answers again");
                    }
                    publish_counts(&shared, counts);
                    if leads {
                        advance_all(&shared, &erasure).await;
                    }
                }
                Err(err) if !unreachable => {
                    unreachable = true;
                    tracing::warn!("the erasure store cannot be reached; erasures wait: {err}");
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            () = erasure.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => return,
        }
    }
}

fn publish_counts(shared: &Shared, (by_state, overdue): (Vec<(String, i64)>, i64)) {
    shared.metrics.erasure_requests.reset();
    for (state, count) in by_state {
        shared
            .metrics
            .erasure_requests
            .with_label_values(&[state.as_str()])
            .set(count);
    }
    shared.metrics.erasure_overdue.set(overdue);
}

async fn advance_all(shared: &Shared, erasure: &Erasure) {
    let Ok(active) = erasure.store.active() else {
        return;
    };
    for id in active {
        if let Err(err) = advance(shared, erasure, &id).await {
            tracing::error!(
                request = id.as_str(),
                "erasure step could not be stored: {err}"
            );
        }
    }
}

async fn advance(
    shared: &Shared,
    erasure: &Erasure,
    id: &str,
) -> Result<(), crate::store::StoreError> {
    let Some(mut request) = erasure.store.get(id)? else {
        return Ok(());
    };
    if request.state == "approved" {
        erasure
            .store
            .transition(id, &["approved"], "executing", None, None)?;
        audit_step(
            shared,
            &Whose::of(&request),
            "erasure",
            "start",
            "executing",
            None,
        )
        .await;
        request.state = "executing".to_owned();
    }
    let now = now_ms();
    let max_attempts = erasure.config.retry.max_attempts.max(1);
    let patient_id = request.patient_id.clone().unwrap_or_default();
    let whose = Whose::of(&request);
    match request.state.as_str() {
        "executing" => {
            for step in request.steps.iter_mut() {
                if step.state != "pending" || step.next_attempt > now {
                    continue;
                }
                let result = execute(shared, erasure, &whose, &patient_id, step).await;
                let probed = step.kind == "http"
                    && erasure
                        .connectors
                        .iter()
                        .any(|c| c.system == step.system && c.has_probe());
                settle(
                    shared,
                    erasure,
                    step,
                    result,
                    if probed { "deleted" } else { "done" },
                    max_attempts,
                );
                erasure.store.update_step(&whose.id, step)?;
                audit_step(
                    shared,
                    &whose,
                    &step.system,
                    "delete",
                    &step.state,
                    step.last_error.clone(),
                )
                .await;
            }
            if request.steps.iter().all(|step| step.state != "pending") {
                erasure
                    .store
                    .transition(id, &["executing"], "verifying", None, None)?;
            }
        }
        "verifying" => {
            for step in request.steps.iter_mut() {
                if step.state != "deleted" || step.next_attempt > now {
                    continue;
                }
                let result = match erasure.connectors.iter().find(|c| c.system == step.system) {
                    Some(connector) => connector.verify(&erasure.client, &patient_id).await,
                    None => Err("the system is no longer configured".to_owned()),
                };
                settle(shared, erasure, step, result, "verified", max_attempts);
                erasure.store.update_step(&whose.id, step)?;
                audit_step(
                    shared,
                    &whose,
                    &step.system,
                    "verify",
                    &step.state,
                    step.last_error.clone(),
                )
                .await;
            }
            if request.steps.iter().all(|step| step.state != "deleted") {
                finish(shared, erasure, &request).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Records an attempt's result on the step: `success_state` with what was seen, or one more
/// failed attempt (retried later with backoff, or failed for good).
fn settle(
    shared: &Shared,
    erasure: &Erasure,
    step: &mut Step,
    result: Result<String, String>,
    success_state: &str,
    max_attempts: u32,
) {
    step.attempts += 1;
    match result {
        Ok(detail) => {
            step.state = success_state.to_owned();
            step.detail = Some(detail);
            step.last_error = None;
            step.done_at = Some(now_ms());
            // Verification gets its own budget of attempts.
            if success_state == "deleted" {
                step.attempts = 0;
            }
        }
        Err(error) => {
            shared
                .metrics
                .erasure_step_failures
                .with_label_values(&[step.system.as_str()])
                .inc();
            tracing::warn!(
                system = step.system.as_str(),
                attempt = step.attempts,
                "erasure step failed: {error}"
            );
            step.last_error = Some(error);
            if step.attempts >= max_attempts {
                step.state = "failed".to_owned();
            } else {
                step.next_attempt = now_ms() + backoff(&erasure.config.retry, step.attempts);
            }
        }
    }
}

/// Exponential backoff with jitter (half to all of the doubled delay), in milliseconds.
fn backoff(retry: &crate::config::RetryConfig, attempts: u32) -> i64 {
    let base =
        retry.initial_backoff.0.as_millis() as f64 * 2f64.powi(attempts.saturating_sub(1) as i32);
    let capped = base.min(retry.max_backoff.0.as_millis() as f64);
    let jittered = capped * rand::thread_rng().gen_range(0.5..=1.0);
    jittered as i64
}

/// One step's work; `Ok(what was done)`.
async fn execute(
    shared: &Shared,
    erasure: &Erasure,
    whose: &Whose,
    patient_id: &str,
    step: &Step,
) -> Result<String, String> {
    let (request_id, patient_ref) = (whose.id.as_str(), whose.patient_ref.as_str());
    match step.kind.as_str() {
        "tombstone" => {
            // The ledger first: from here on no restored backup can bring the patient back.
            if let Some(ledger) = &erasure.ledger {
                ledger.append(patient_ref).map_err(|err| err.to_string())?;
            }
            erasure
                .store
                .tombstone(patient_ref, request_id)
                .map_err(|err| err.to_string())?;
            erasure.mark_erased(patient_ref);
            Ok("requests for the patient's data answer 410 Gone".to_owned())
        }
        "shred_key" => match &shared.keys {
            None => Ok("no field protection configured: no data key to shred".to_owned()),
            Some(keys) => {
                let keys = keys.clone();
                let patient = patient_ref.to_owned();
                match tokio::task::spawn_blocking(move || keys.shred(&patient)).await {
                    Ok(Ok(true)) => Ok(
                        "data key destroyed: every ciphertext of the patient is unreadable"
                            .to_owned(),
                    ),
                    Ok(Ok(false)) => {
                        Ok("no data key existed; a tombstone stops one being made".to_owned())
                    }
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err("the key store task failed".to_owned()),
                }
            }
        },
        "purge_caches" => {
            shared.grants.revoke_patient(patient_id);
            Ok(
                "break-glass grants for the patient revoked; key cache emptied with the key"
                    .to_owned(),
            )
        }
        _ => match erasure.connectors.iter().find(|c| c.system == step.system) {
            Some(connector) => connector
                .delete(&erasure.client, patient_id)
                .await
                .map(|status| format!("deleted ({status})")),
            None => Err("the system is no longer configured".to_owned()),
        },
    }
}

async fn finish(
    shared: &Shared,
    erasure: &Erasure,
    request: &Request,
) -> Result<(), crate::store::StoreError> {
    let Some(current) = erasure.store.get(&request.id)? else {
        return Ok(());
    };
    let failed: Vec<String> = current
        .steps
        .iter()
        .filter(|step| step.state == "failed")
        .map(|step| {
            format!(
                "{}: {}",
                step.system,
                step.last_error.clone().unwrap_or_default()
            )
        })
        .collect();
    let outcome = if !failed.is_empty() {
        "failed"
    } else if current.steps.iter().any(|step| step.state == "retained") {
        "partially_retained"
    } else {
        "completed"
    };
    let finished = now_ms();
    let receipt = Receipt::of(&current, outcome, finished, &erasure.signing_key);
    erasure.store.set_receipt(&request.id, &receipt.to_json())?;
    let note = (!failed.is_empty()).then(|| failed.join("; "));
    erasure
        .store
        .transition(&request.id, &["verifying"], outcome, None, note.as_deref())?;
    audit_step(
        shared,
        &Whose::of(&current),
        "erasure",
        "finish",
        outcome,
        note.clone(),
    )
    .await;
    tracing::info!(
        request = request.id.as_str(),
        outcome,
        "erasure request finished"
    );
    Ok(())
}

/// The request an audit record is about.
struct Whose {
    id: String,
    patient_ref: String,
    approved_by: Option<String>,
}

impl Whose {
    fn of(request: &Request) -> Whose {
        Whose {
            id: request.id.clone(),
            patient_ref: request.patient_ref.clone(),
            approved_by: request.approved_by.clone(),
        }
    }
}

/// One audit record per attempt: who (the erasure worker, for the approver), which patient
/// (pseudonym), which system and action, and how it went.
async fn audit_step(
    shared: &Shared,
    request: &Whose,
    system: &str,
    action: &str,
    outcome: &str,
    error: Option<String>,
) {
    let now = std::time::SystemTime::now();
    let record = AuditRecord {
        time: humantime::format_rfc3339_millis(now).to_string(),
        time_ms: now_ms(),
        request_id: request.id.clone(),
        subject: Some("wardgate-erasure".to_owned()),
        roles: Vec::new(),
        auth_method: None,
        client: "internal".to_owned(),
        method: "ERASE".to_owned(),
        route: Some(format!("erasure:{system}")),
        template: None,
        patient: Some(request.patient_ref.clone()),
        resource: Some("erasure".to_owned()),
        action: Some(action.to_owned()),
        decision: if outcome == "failed" || error.is_some() {
            "error"
        } else {
            "allow"
        }
        .to_owned(),
        rule: request
            .approved_by
            .as_ref()
            .map(|by| format!("approved by {by}")),
        reason: error.or_else(|| Some(outcome.to_owned())),
        status: 0,
        ..AuditRecord::default()
    };
    if shared
        .audit
        .submit(record, Durability::Durable, None)
        .await
        .is_err()
    {
        tracing::error!(
            request = request.id.as_str(),
            "an erasure step could not be audited"
        );
    }
}
