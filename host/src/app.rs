//! Wires the boxes together: config → vault → store → plugin runtime. The CLI and the
//! server both start from an [`App`], so they see the same state the same way.

use crate::capability::Capabilities;
use crate::config::Config;
use crate::playbook::Playbooks;
use crate::plugin::{PluginError, RefreshReport, Runtime, RuntimeOptions};
use crate::runs::Executor;
use crate::store::audit::Actor;
use crate::store::{Store, StoreError};
use crate::vault::{
    CHECKPOINT_KEY_SECRET, CheckpointKey, KeyCheck, KeySource, MASTER_KEY_ENV, SERVER_SECRET_OWNER, Vault,
    VaultError,
};
use secrecy::SecretString;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(
        "the master key ({source_desc}) is not the key this database's secrets were sealed with; restore the original key file or {MASTER_KEY_ENV}"
    )]
    WrongKey { source_desc: String },
    #[error(
        "this database was upgraded by a newer Osprey (its key check is {version}); run that version or newer"
    )]
    NewerDatabase { version: String },
    #[error("{0}")]
    Invalid(String),
}

/// Everything a command needs.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub vault: Arc<Vault>,
    pub runtime: Runtime,
    /// What loading the installed plugins reported.
    pub load_report: RefreshReport,
    /// The playbooks in `playbooks_dir`.
    pub playbooks: Playbooks,
    /// Playbook folders that failed to load, with why.
    pub playbook_errors: Vec<String>,
    /// Runs playbooks.
    pub executor: Arc<Executor>,
    /// Committed alerts on their way to pre-processing (and the lag it reports).
    pub handoff: Arc<crate::preprocess::Handoff>,
    /// Woken when mail is queued in the outbox (by `humans`), so the sender sends it at once.
    pub mail_queued: Arc<tokio::sync::Notify>,
    /// API token lookups of the last second.
    pub tokens: crate::auth::TokenCache,
    /// Questions to people, their links and mails.
    pub humans: Arc<crate::humans::Humans>,
    /// The Prometheus metrics (`GET /metrics`); the runtime counts into the same ones.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl App {
    /// Open the vault, the store (migrating it, and chaining audit entries with the vault's
    /// audit key), check the master key against the store (rechaining a log written before
    /// the chain was keyed, once), and load the runtime with every installed plugin.
    pub async fn open(config: Config) -> Result<App, AppError> {
        let env_key = std::env::var(MASTER_KEY_ENV).ok();
        let (vault, source) = Vault::open(env_key.as_deref(), &config.master_key_file())?;
        let store = Store::open(&config.database_url(), vault.audit_chain_key())
            .await?
            .with_incident_types(config.incidents.clone());
        let source_desc = match &source {
            KeySource::Environment => MASTER_KEY_ENV.to_owned(),
            KeySource::File(p) => format!("key file {}", p.display()),
            KeySource::Created(p) => format!("new key file {}", p.display()),
        };
        if let KeySource::Created(p) = &source {
            tracing::warn!(path = %p.display(), "created a new master key; back it up: secrets cannot be read without it");
        }
        let check = store.init_vault_key_check(&vault.key_check()).await?;
        match vault.read_key_check(&check) {
            None => return Err(AppError::WrongKey { source_desc }),
            Some(KeyCheck::Newer(version)) => return Err(AppError::NewerDatabase { version }),
            Some(KeyCheck::KeyedAuditChain) => {}
            Some(KeyCheck::UnkeyedAuditChain) => {
                if let Some(done) = store.rechain_audit_log(&check, &vault.key_check()).await? {
                    match &done.legacy {
                        crate::store::audit::Verification::Intact { .. } => {
                            tracing::info!(entries = done.entries, "audit log rechained with the audit key")
                        }
                        crate::store::audit::Verification::Broken { seq, reason } => tracing::warn!(
                            entries = done.entries,
                            broken_at = seq,
                            reason,
                            "audit log rechained with the audit key; it was already broken (recorded in its audit.rechain entry)"
                        ),
                    }
                }
            }
        }
        let link_key = match store
            .secret(SERVER_SECRET_OWNER, crate::vault::LINK_KEY_SECRET)
            .await?
        {
            Some(sealed) => crate::vault::LinkKey::open(&vault, &sealed)?,
            None => {
                let (_, sealed) = crate::vault::LinkKey::generate(&vault);
                let stored = store
                    .init_secret(
                        SERVER_SECRET_OWNER,
                        crate::vault::LINK_KEY_SECRET,
                        &sealed,
                        &Actor::system(),
                    )
                    .await?;
                crate::vault::LinkKey::open(&vault, &stored)?
            }
        };
        let mail_queued = Arc::new(tokio::sync::Notify::new());
        let humans = Arc::new(crate::humans::Humans::new(
            config.humans.clone(),
            config.listen,
            link_key,
            config.mail.enabled(),
            mail_queued.clone(),
        ));
        let vault = Arc::new(vault);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let runtime = Runtime::new(
            RuntimeOptions {
                plugins_dir: config.plugins_dir(),
                cache_dir: config.cache_dir(),
                limits: config.limits,
                max_instances: config.runtime.max_instances,
                max_memory_mib: config.runtime.max_memory_mib,
                metrics: metrics.clone(),
            },
            store.clone(),
            vault.clone(),
        )?;
        if config.runs.workers > config.runtime.max_instances as usize {
            tracing::warn!(
                workers = config.runs.workers,
                max_instances = config.runtime.max_instances,
                "runs.workers is above runtime.max_instances: when more runs than that call plugins at once, \
                 the calls past the limit fail as `unavailable` and their runs retry later"
            );
        }
        let load_report = runtime.load_all().await;
        let (playbooks, errors) = Playbooks::load_dir(&config.playbooks_dir);
        let playbook_errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let run_limits = config
            .run_limits()
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let executor = Executor::new(
            store.clone(),
            runtime.clone(),
            playbooks.clone(),
            run_limits,
            config.runs,
            config.lists.max_entries,
            humans.clone(),
        );
        // Room for the requests already admitted when the backpressure limit is reached; past
        // it, alerts are left to the store scan.
        let handoff = crate::preprocess::Handoff::new(config.intake.max_undecided.saturating_mul(2));
        Ok(App {
            config,
            store,
            vault,
            runtime,
            load_report,
            playbooks,
            playbook_errors,
            executor,
            handoff: Arc::new(handoff),
            mail_queued,
            tokens: Default::default(),
            humans,
            metrics,
        })
    }

    /// What the mail sender works with.
    pub fn mail_sender(&self) -> crate::mail::sender::Sender {
        crate::mail::sender::Sender {
            config: self.config.mail.clone(),
            store: self.store.clone(),
            vault: self.vault.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Store a secret for `plugin`, sealed with the master key.
    pub async fn set_secret(
        &self,
        plugin: &str,
        name: &str,
        value: &SecretString,
        actor: &Actor,
    ) -> Result<(), AppError> {
        crate::plugin::manifest::validate_name(plugin).map_err(|e| AppError::Invalid(e.to_string()))?;
        validate_secret_name(name)?;
        let sealed = self.vault.seal(plugin, name, value);
        self.store.put_secret(plugin, name, &sealed, actor).await?;
        // This process's calls use the new value at once; other processes within their
        // `runtime.policy_refresh`.
        if let Err(e) = self.runtime.reload_policies().await {
            tracing::warn!(plugin, error = %e, "the secret is stored; reloading the policies failed, the next refresh takes it");
        }
        Ok(())
    }

    /// The key that signs audit checkpoints, made (and audited as `secret.set`) the first
    /// time it is asked for.
    pub async fn checkpoint_key(&self) -> Result<CheckpointKey, AppError> {
        if let Some(key) = self.existing_checkpoint_key().await? {
            return Ok(key);
        }
        let (_, sealed) = CheckpointKey::generate(&self.vault)?;
        let stored = self
            .store
            .init_secret(
                SERVER_SECRET_OWNER,
                CHECKPOINT_KEY_SECRET,
                &sealed,
                &Actor::system(),
            )
            .await?;
        Ok(CheckpointKey::open(&self.vault, &stored)?)
    }

    /// The key that signs audit checkpoints, if one was made.
    pub async fn existing_checkpoint_key(&self) -> Result<Option<CheckpointKey>, AppError> {
        match self
            .store
            .secret(SERVER_SECRET_OWNER, CHECKPOINT_KEY_SECRET)
            .await?
        {
            Some(sealed) => Ok(Some(CheckpointKey::open(&self.vault, &sealed)?)),
            None => Ok(None),
        }
    }

    /// Audit the playbooks loaded now against those last recorded (new, changed, removed).
    pub async fn audit_playbooks(&self) -> Result<(), AppError> {
        let loaded: Vec<(String, String)> = self
            .playbooks
            .list()
            .iter()
            .map(|p| (p.name().to_owned(), p.version.clone()))
            .collect();
        for (name, action) in self
            .store
            .record_playbook_versions(&loaded, &Actor::system())
            .await?
        {
            tracing::info!(playbook = %name, action, "playbook version recorded");
        }
        Ok(())
    }

    /// The operator's grant of `plugin` (empty if none).
    pub async fn grant(&self, plugin: &str) -> Result<Capabilities, AppError> {
        Ok(self.store.grant(plugin).await?.unwrap_or_default())
    }

    /// Replace the grant of `plugin`, refusing secret names that are not names and limits the
    /// runtime cannot give (the CLI's `osprey plugin grant` and the API's grant alike).
    pub async fn set_grant(&self, plugin: &str, grant: &Capabilities, actor: &Actor) -> Result<(), AppError> {
        for s in &grant.secrets {
            validate_secret_name(s)?;
        }
        if let Some(mib) = grant.limits.memory_mib {
            let max = self.config.runtime.max_memory_mib;
            if mib > max || mib == 0 {
                return Err(AppError::Invalid(format!(
                    "a memory limit of {mib} MiB is outside what this server allows (1 to {max} MiB, runtime.max_memory_mib)"
                )));
            }
        }
        self.store.set_grant(plugin, grant, actor).await?;
        Ok(())
    }
}

/// Secret names: 1 to 64 of letters, digits, `_`, `-` and `.`.
pub fn validate_secret_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "secret name '{name}' must be 1-64 letters, digits, '_', '-' or '.'"
        )))
    }
}
