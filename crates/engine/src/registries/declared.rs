//! Registries declared in a file (`registries_file`, docs/design.md §3.10): the file's entries
//! are made to be the declared registries. Entries the file adds are added, those it changes are
//! changed, declared entries it no longer lists are removed; registries made through the API are
//! never touched (an entry naming one is refused, and says so). An entry that cannot be applied as
//! written never stops the others: its error is logged and kept on its record.
//!
//! Reading the file and its secrets is the server's (it knows files and the environment); this
//! module gets each entry as the request it amounts to, or the reason it is unusable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use regkeep_domain::entities::RegistryRecord;
use regkeep_domain::wire::RegistryConfigurationRequest;
use regkeep_domain::{AccountName, RegistryName};
use regkeep_store::StoreError;
use tracing::{info, warn};

use super::{Registries, RegistrySpec};
use crate::EngineError;

/// One entry of the registries file, its secret already read.
#[derive(Debug)]
pub struct DeclaredEntry {
    /// The account, as the file writes it.
    pub account: String,
    /// The registry, as the file writes it.
    pub registry: String,
    /// The registry request the entry amounts to, or why it cannot be used as written (a
    /// secret that cannot be read, an unknown account, a field the file must not hold).
    pub request: Result<RegistryConfigurationRequest, String>,
    /// Check the credentials against the registry before storing (default true).
    pub validate: bool,
}

/// What a reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// One line per entry that could not be applied as written (also logged, and kept on the
    /// entry's record when it has one).
    pub failed: Vec<String>,
    /// Another replica was reconciling: nothing was done (try again later).
    pub skipped: bool,
}

/// The lease that lets one replica at a time reconcile (the ECR minting leases' table: a lease
/// is a key, a holder and a deadline).
const LEASE_KEY: &str = "reconcile:registries_file";
/// Long enough for a reconciliation that validates many entries.
const LEASE: Duration = Duration::from_secs(300);

impl Registries {
    /// Makes the declared registries what `entries` (the file `file`'s) say.
    ///
    /// # Errors
    /// Storage errors only: an entry's own problems are in the report.
    pub async fn reconcile_declared(
        &self,
        file: &str,
        entries: Vec<DeclaredEntry>,
    ) -> Result<ReconcileReport, EngineError> {
        if !self.ecr_tokens.try_lease(LEASE_KEY, LEASE).await {
            return Ok(ReconcileReport {
                skipped: true,
                ..ReconcileReport::default()
            });
        }
        // The lease ends however this ends (an error included), so another replica can apply.
        let result = self.reconcile_leased(file, entries).await;
        self.ecr_tokens.end_lease(LEASE_KEY).await;
        result
    }

    async fn reconcile_leased(
        &self,
        file: &str,
        entries: Vec<DeclaredEntry>,
    ) -> Result<ReconcileReport, EngineError> {
        let mut report = ReconcileReport::default();
        let declared: BTreeMap<(AccountName, RegistryName), RegistryRecord> = self
            .store
            .list_declared_registries()
            .await?
            .into_iter()
            .map(|r| ((r.account.clone(), r.registry.clone()), r))
            .collect();
        let mut listed = BTreeSet::new();
        for entry in entries {
            let name = format!("{} in account {}", entry.registry, entry.account);
            let (account, registry) = match (
                entry.account.parse::<AccountName>(),
                entry.registry.parse::<RegistryName>(),
            ) {
                (Ok(a), Ok(r)) => (a, r),
                (Err(e), _) => {
                    self.entry_failed(&mut report, &name, &e.to_string(), None)
                        .await;
                    continue;
                }
                (_, Err(e)) => {
                    self.entry_failed(&mut report, &name, &e.to_string(), None)
                        .await;
                    continue;
                }
            };
            // Listed: never removed for an error in its new version.
            if !listed.insert((account.clone(), registry.clone())) {
                let why = "listed twice in the file: only the first entry is applied";
                self.entry_failed(&mut report, &name, why, None).await;
                continue;
            }
            let existing = declared.get(&(account.clone(), registry.clone()));
            match self.apply(file, &account, &registry, entry, existing).await {
                Ok(Applied::Added) => report.added += 1,
                Ok(Applied::Changed) => report.changed += 1,
                Ok(Applied::Unchanged) => report.unchanged += 1,
                Err(why) => {
                    let on = existing.map(|_| (&account, &registry));
                    self.entry_failed(&mut report, &name, &why, on).await;
                }
            }
        }
        for ((account, registry), record) in &declared {
            if listed.contains(&(account.clone(), registry.clone())) {
                continue;
            }
            match self.store.delete_registry(account, registry).await {
                Ok(()) | Err(StoreError::NotFound) => {
                    info!(account = %account, registry = %registry, file, "declared registry removed: the file no longer lists it");
                    report.removed += 1;
                    if let Some(key) = &record.token_key {
                        self.release_token(key).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if report.added + report.changed + report.removed > 0 || !report.failed.is_empty() {
            self.registries_changed().await;
        }
        info!(
            file,
            added = report.added,
            changed = report.changed,
            removed = report.removed,
            unchanged = report.unchanged,
            failed = report.failed.len(),
            "registries file applied"
        );
        Ok(report)
    }

    /// Logs an entry that could not be applied, and keeps why on its record when it has one.
    async fn entry_failed(
        &self,
        report: &mut ReconcileReport,
        name: &str,
        why: &str,
        record: Option<(&AccountName, &RegistryName)>,
    ) {
        warn!(
            entry = name,
            error = why,
            "a registries file entry was not applied"
        );
        report.failed.push(format!("{name}: {why}"));
        if let Some((account, registry)) = record {
            if let Err(e) = self
                .store
                .set_declaration_error(account, registry, Some(why))
                .await
            {
                warn!(error = %e, "could not keep a registries file entry's error on its record");
            }
        }
    }

    /// Applies one entry. `Err`: why it was not applied as written (a validation failure is not
    /// such an error: the entry is stored with it, so its record shows it).
    async fn apply(
        &self,
        file: &str,
        account: &AccountName,
        registry: &RegistryName,
        entry: DeclaredEntry,
        declared: Option<&RegistryRecord>,
    ) -> Result<Applied, String> {
        let request = entry.request?;
        let spec = RegistrySpec::parse(request).map_err(entry_error)?;
        if &spec.registry != registry {
            return Err(format!(
                "the entry's registry reads as {} once parsed: write it that way",
                spec.registry
            ));
        }
        let ecr = self.check_type_rules(&spec).map_err(entry_error)?;
        let existing = match declared {
            Some(record) => Some(record.clone()),
            None => match self.store.get_registry(account, registry).await {
                Ok(_) => {
                    return Err(
                        "the account has this registry already, added through the API: the file's entry is not applied (delete the API's entry to let the file manage it)"
                            .into(),
                    )
                }
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(stored_error(e)),
            },
        };
        if let Some(record) = &existing {
            let same_secret = self
                .store
                .registry_password(account, registry)
                .await
                .is_ok_and(|stored| stored == spec.registry_pass);
            let same = same_secret
                && record.registry_user == spec.registry_user
                && record.registry_type == spec.registry_type
                && record.registry_verify == spec.registry_verify
                && record.registry_name == spec.registry_name
                && record.declared_in.as_deref() == Some(file);
            // An entry that failed before is checked again (the registry may be fixed now).
            if same && record.declaration_error.is_none() {
                return Ok(Applied::Unchanged);
            }
        } else {
            crate::check_quota(
                self.quotas.registries,
                crate::QuotaKind::Registries,
                account,
                self.store.count_registries(account),
            )
            .await
            .map_err(entry_error)?;
        }
        // A refusal by the registry or AWS is kept on the record; the entry is stored anyway, so
        // fixing the registry and reloading is all it takes.
        let (last_validated, error) =
            match self.validated_at(&spec, ecr.as_ref(), entry.validate).await {
                Ok(at) => (at, None),
                Err(e) => (None, Some(entry_error(e))),
            };
        if let Some(why) = &error {
            warn!(account = %account, registry = %registry, error = %why, "a registries file entry's credentials were refused; stored with the error");
        }
        let now = self.clock.now();
        let token_key = ecr.map(|r| r.key);
        match existing {
            None => {
                let record = RegistryRecord {
                    account: account.clone(),
                    registry: registry.clone(),
                    registry_name: spec.registry_name.clone(),
                    registry_user: spec.registry_user.clone(),
                    registry_type: spec.registry_type,
                    registry_verify: spec.registry_verify,
                    created_at: now,
                    last_updated: now,
                    last_validated,
                    token_key,
                    token_status: None,
                    declared_in: Some(file.to_owned()),
                    declaration_error: error,
                };
                self.store
                    .insert_registry(&record, &spec.registry_pass)
                    .await
                    .map_err(stored_error)?;
                info!(account = %account, registry = %registry, file, "declared registry added");
                Ok(Applied::Added)
            }
            Some(old) => {
                let previous_key = old.token_key.clone();
                let record = RegistryRecord {
                    registry_name: spec.registry_name.clone(),
                    registry_user: spec.registry_user.clone(),
                    registry_type: spec.registry_type,
                    registry_verify: spec.registry_verify,
                    last_updated: now,
                    last_validated,
                    token_key,
                    declared_in: Some(file.to_owned()),
                    declaration_error: error,
                    ..old
                };
                self.store
                    .update_registry(&record, &spec.registry_pass)
                    .await
                    .map_err(stored_error)?;
                if let Some(old_key) =
                    previous_key.filter(|old| record.token_key.as_ref() != Some(old))
                {
                    self.release_token(&old_key).await;
                }
                info!(account = %account, registry = %registry, file, "declared registry changed");
                Ok(Applied::Changed)
            }
        }
    }

    /// No registries file is configured: every declared registry becomes an ordinary one, which
    /// the API may change and remove.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn undeclare_all(&self) -> Result<u64, EngineError> {
        let count = self.store.undeclare_registries().await?;
        if count > 0 {
            info!(count, "no registries file is configured: the registries it declared are now managed through the API");
            self.registries_changed().await;
        }
        Ok(count)
    }
}

/// An engine error, for an entry's record: what the entry or the registry got wrong as it is;
/// the server's own failures as a generic sentence (the cause goes to the log).
fn entry_error(e: EngineError) -> String {
    match e {
        EngineError::Internal(_)
        | EngineError::Unavailable(_)
        | EngineError::StorageFull
        | EngineError::Busy => {
            warn!(error = %e, "a registries file entry could not be applied");
            "the server could not apply this entry now (its log says why); it is tried again at the next application".into()
        }
        other => other.to_string(),
    }
}

/// A storage failure, for an entry's record (every user of the account reads it): a generic
/// sentence; the cause goes to the log.
fn stored_error(e: StoreError) -> String {
    warn!(error = %e, "a registries file entry could not be stored");
    "the server could not store this entry (its log says why); it is tried again at the next application".into()
}

enum Applied {
    Added,
    Changed,
    Unchanged,
}

#[cfg(test)]
mod tests;
