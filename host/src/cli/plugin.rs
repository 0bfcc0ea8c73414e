use super::render;
use crate::app::App;
use crate::capability::{Capabilities, HttpPattern};
use crate::config::Config;
use crate::install::{self, Approval, GrantChoice, InstallPlan, Mode, Origin, Source};
use crate::pack::Signer;
use crate::plugin::{CallContext, LoadedPlugin};
use crate::store::audit::Actor;
use anyhow::{Context as _, bail};
use ipnet::IpNet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// List installed plugins.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's actions with their schemas, and its requested and granted
    /// capabilities side by side.
    Inspect {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin from a pack (a file, or in an OCI registry) or a folder holding
    /// plugin.toml and its component, or replace an installed version.
    ///
    /// A pack must be signed by a publisher you trust (`osprey trust`). The component is
    /// compiled and checked before anything is copied. What it requests is shown (and, over an
    /// installed version, what changed in its requests and actions, and whether the playbooks
    /// that call it still pass their offline tests against it); nothing is granted unless you
    /// say so. `osprey plugin upgrade NAME SOURCE` does the same and checks that SOURCE holds
    /// NAME.
    #[command(after_help = "\
Examples:
  osprey plugin install ipinfo-0.1.0.ospack                    a signed pack
  osprey plugin install oci://registry.example.com/acme/ipinfo:0.1.0
  osprey plugin install oci://registry.example.com/acme/ipinfo@sha256:DIGEST
  osprey plugin install plugins/dist/ipinfo                    review, then grant separately
  osprey plugin install plugins/dist/ipinfo --grant-requested  install and grant what it asks for

A registry is spoken to over HTTPS, except one on loopback (127.0.0.0/8, localhost) or
with --insecure, over plain HTTP.")]
    Install {
        /// A pack file (`osprey pack build`), a pack in an OCI registry
        /// (oci://HOST[:PORT]/REPO:TAG or oci://HOST[:PORT]/REPO@sha256:DIGEST, as
        /// `osprey pack push` puts it there), or a plugin folder (with plugin.toml).
        source: PathBuf,
        /// Also grant everything the plugin requests (added to any existing grant), without
        /// asking: for scripts (`--yes` says the same).
        #[arg(long, visible_alias = "yes")]
        grant_requested: bool,
        /// Install a pack that no trusted publisher signed (recorded in the audit log).
        #[arg(long)]
        allow_unsigned: bool,
        /// Replace an installed version although playbooks that call it fail their offline
        /// tests against the new one (recorded in the audit log, with what failed).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: super::pack::RegistryArgs,
    },
    /// Upgrade an installed plugin to the version in SOURCE (as install takes it), checked
    /// first against the playbooks that call it.
    ///
    /// Shows who signed it, what it requests that the installed version did not (and what it
    /// no longer requests), and which actions were added, removed or changed their input or
    /// output schema. The playbooks that call the plugin are checked against the new version:
    /// every `invoke` naming an action it no longer has, and their offline tests
    /// (tests/*.toml) run with each call checked against its actions and input schemas. A
    /// failure stops the upgrade unless --force. Nothing new is granted unless you say so.
    #[command(after_help = "\
Examples:
  osprey plugin upgrade ipinfo ipinfo-0.2.0.ospack             review, then grant separately
  osprey plugin upgrade ipinfo oci://registry.example.com/acme/ipinfo:0.2.0 --yes
  osprey plugin upgrade ipinfo plugins/dist/ipinfo --force     although playbooks would break

The replaced version is kept: `osprey plugin rollback NAME` returns to it.")]
    Upgrade {
        /// The installed plugin to upgrade.
        name: String,
        /// A pack file, a pack in an OCI registry (oci://...), or a plugin folder, holding a
        /// version of NAME.
        source: PathBuf,
        /// Also grant everything the new version requests (added to the existing grant),
        /// without asking (`--yes` says the same).
        #[arg(long, visible_alias = "yes")]
        grant_requested: bool,
        /// Install a pack that no trusted publisher signed (recorded in the audit log).
        #[arg(long)]
        allow_unsigned: bool,
        /// Upgrade although playbooks that call the plugin fail the check (recorded in the
        /// audit log with what failed).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: super::pack::RegistryArgs,
    },
    /// Remove an installed plugin (and the previous version kept for a rollback). Its grant,
    /// settings, secrets and kv data stay, so a reinstall picks up where it left off, unless
    /// --purge.
    #[command(after_help = "\
Examples:
  osprey plugin remove ipinfo            keeps its grant, settings, secrets and kv data
  osprey plugin remove ipinfo --purge    deletes them too (also after a plain remove)")]
    Remove {
        name: String,
        /// Also delete the plugin's kv data, secrets, grant and settings (recorded in the
        /// audit log, by count).
        #[arg(long)]
        purge: bool,
    },
    /// Return to the version an upgrade replaced, with the grant that was in force then. The
    /// version rolled back from is kept in turn, so a second rollback returns to it.
    Rollback { name: String },
    /// Call one action, as a playbook would, and print its output (for plugin authors and
    /// operators checking a grant).
    #[command(after_help = "\
Examples:
  osprey plugin call ipinfo lookup --input '{\"ip\":\"8.8.8.8\"}'
  osprey plugin call ipinfo lookup --input @request.json
  echo '{\"ip\":\"1.1.1.1\"}' | osprey plugin call ipinfo lookup --input -

Exit status: 0 on success, 1 when the call fails (the error kind and message go to stderr).")]
    Call {
        name: String,
        action: String,
        /// The input object: JSON text, @FILE, or - for stdin.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Print the outcome (output or error, duration, outbound requests) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Grant capabilities to a plugin (added to what it already has).
    #[command(after_help = "\
Examples:
  osprey plugin grant ipinfo --requested                       everything plugin.toml asks for
  osprey plugin grant ipinfo --http https://ipinfo.io --secret token
  osprey plugin grant unifi --http https://unifi.home.lan:8443 --private-range 192.168.1.0/24
  osprey plugin grant ipinfo --timeout 10s --memory-mib 32 --kv-quota 65536

HTTP patterns are scheme://host[:port][/path-prefix]; *.example.com matches names below
example.com. Loopback, private and link-local addresses are refused unless a pattern names the
address (http://127.0.0.1:9000) or --private-range covers what a host name resolves to.")]
    Grant {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Take capabilities away from a plugin.
    #[command(after_help = "\
Examples:
  osprey plugin revoke ipinfo --http https://ipinfo.io
  osprey plugin revoke ipinfo --secret token
  osprey plugin revoke ipinfo --all                            back to nothing granted")]
    Revoke {
        name: String,
        #[arg(long = "http", value_name = "PATTERN")]
        http: Vec<HttpPattern>,
        #[arg(long = "private-range", value_name = "CIDR")]
        private_ranges: Vec<IpNet>,
        #[arg(long = "secret", value_name = "NAME")]
        secrets: Vec<String>,
        /// Stop handing /hooks/NAME requests to the plugin.
        #[arg(long)]
        webhooks: bool,
        /// Revoke everything, including limit overrides.
        #[arg(long)]
        all: bool,
    },
    /// Show a plugin's settings, or set them (KEY=VALUE) or clear them (--unset KEY).
    Config {
        name: String,
        /// Settings to set, as KEY=VALUE.
        settings: Vec<String>,
        /// Settings to clear (back to the default from plugin.toml).
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
    },
    /// Put a plugin in mock mode (its actions answered from canned cases or generated data,
    /// no vendor reached), show its mock, or take it off (--off). Audited.
    Mock(super::plugin_mock::MockArgs),
    /// Start a plugin project of your own: a folder that builds, packs and installs as it is,
    /// with an example action, a test against canned vendor answers, and a README.
    New(super::plugin_new::NewArgs),
}

#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// Grant everything the plugin's plugin.toml requests.
    #[arg(long)]
    requested: bool,
    /// Allow outbound HTTP matching PATTERN (repeatable).
    #[arg(long = "http", value_name = "PATTERN")]
    http: Vec<HttpPattern>,
    /// Allow host names to resolve into this non-public range (repeatable).
    #[arg(long = "private-range", value_name = "CIDR")]
    private_ranges: Vec<IpNet>,
    /// Allow reading the secret NAME (repeatable).
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
    /// Hand the vendor's requests to /hooks/NAME/... to the plugin (unauthenticated by
    /// Osprey: the plugin checks the vendor's signature).
    #[arg(long)]
    webhooks: bool,
    /// Room in the plugin's kv store, in bytes.
    #[arg(long, value_name = "BYTES")]
    kv_quota: Option<u64>,
    /// Wall-clock deadline of one call, such as 10s or 2m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Memory cap of one call, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u32>,
    /// Largest HTTP response body one call may receive, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_response_bytes: Option<u64>,
    /// Outbound HTTP requests per call.
    #[arg(long, value_name = "N")]
    max_requests: Option<u32>,
    /// Largest output of one call, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_output_bytes: Option<u64>,
}

pub async fn run(cmd: PluginCommand, config: Config) -> anyhow::Result<i32> {
    // A new project needs no data directory: written before anything opens.
    let cmd = match cmd {
        PluginCommand::New(args) => return super::plugin_new::run(&args),
        cmd => cmd,
    };
    let app = App::open(config).await?;
    match cmd {
        PluginCommand::New(_) => unreachable!("answered before the app opens"),
        PluginCommand::List { json } => list(&app, json),
        PluginCommand::Inspect { name, json } => inspect(&app, &name, json).await,
        PluginCommand::Install {
            source,
            grant_requested,
            allow_unsigned,
            force,
            registry,
        } => {
            let args = InstallArgs {
                source: &source,
                yes: grant_requested,
                allow_unsigned,
                force,
                registry: &registry,
            };
            install(&app, args, Mode::Install).await
        }
        PluginCommand::Upgrade {
            name,
            source,
            grant_requested,
            allow_unsigned,
            force,
            registry,
        } => {
            let args = InstallArgs {
                source: &source,
                yes: grant_requested,
                allow_unsigned,
                force,
                registry: &registry,
            };
            install(&app, args, Mode::Upgrade { name }).await
        }
        PluginCommand::Remove { name, purge } => remove(&app, &name, purge).await,
        PluginCommand::Rollback { name } => super::plugin_kept::rollback(&app, &name).await,
        PluginCommand::Call {
            name,
            action,
            input,
            json,
        } => call(&app, &name, &action, &input, json).await,
        PluginCommand::Grant { name, grant } => grant_cmd(&app, &name, grant).await,
        PluginCommand::Revoke {
            name,
            http,
            private_ranges,
            secrets,
            webhooks,
            all,
        } => revoke(&app, &name, http, private_ranges, secrets, webhooks, all).await,
        PluginCommand::Config {
            name,
            settings,
            unset,
        } => config_cmd(&app, &name, settings, unset).await,
        PluginCommand::Mock(args) => super::plugin_mock::run(&app, &args).await,
    }
}

fn report_load_failures(app: &App) {
    for (name, error) in &app.load_report.failed {
        eprintln!("warning: plugin '{name}' failed to load: {error}");
    }
}

fn list(app: &App, json: bool) -> anyhow::Result<i32> {
    report_load_failures(app);
    let plugins = app.runtime.list();
    if json {
        let v: Vec<_> = plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.manifest.name,
                    "version": p.manifest.version,
                    "contract": p.contract().as_str(),
                    "description": p.description.description,
                    "actions": p.description.actions.iter().map(|a| &a.name).collect::<Vec<_>>(),
                    "granted": p.policy().granted,
                    "mock": p.mock(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if plugins.is_empty() {
        println!(
            "no plugins installed in {}; install one with `osprey plugin install DIR`",
            app.runtime.options().plugins_dir.display()
        );
        return Ok(0);
    }
    println!(
        "{:<20} {:<10} {:<8} {:<10} {:<6} DESCRIPTION",
        "NAME", "VERSION", "ACTIONS", "GRANT", "MODE"
    );
    for p in plugins {
        let policy = p.policy();
        let missing = policy.grant.missing_from(&p.manifest.requests);
        let grant = if !policy.granted {
            "none"
        } else if missing.is_empty() {
            "ok"
        } else {
            "partial"
        };
        let mode = if p.mock().is_some() { "MOCK" } else { "live" };
        println!(
            "{:<20} {:<10} {:<8} {:<10} {:<6} {}",
            p.manifest.name,
            p.manifest.version,
            p.description.actions.len(),
            grant,
            mode,
            p.description.description
        );
    }
    Ok(0)
}

async fn inspect(app: &App, name: &str, json: bool) -> anyhow::Result<i32> {
    let p = app.runtime.get(name)?;
    let policy = p.policy();
    let secrets_set = app.store.secret_names(name).await?;
    if json {
        let v = serde_json::json!({
            "name": p.manifest.name,
            "version": p.manifest.version,
            "description": p.description.description,
            "folder": p.dir,
            "contract": p.contract().as_str(),
            "component_sha256": p.component_hash,
            "imports": p.imports,
            "actions": p.description.actions,
            "requested": p.manifest.requests,
            "granted": if policy.granted { serde_json::to_value(&*policy.grant)? } else { serde_json::Value::Null },
            "limits_in_force": policy.limits,
            "config": policy.config,
            "secrets_set": secrets_set.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "mock": p.mock(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("{} {}", p.manifest.name, p.manifest.version);
    println!("  {}", p.description.description);
    println!("  folder:    {}", p.dir.display());
    println!("  component: sha256 {}", p.component_hash);
    println!("  contract:  osprey:plugin@{}", p.contract().as_str());
    if let Some(m) = p.mock() {
        println!("  {}", super::plugin_mock::summary(&m));
        println!("  (no call reaches the vendor; `osprey plugin mock {name} --off` ends it)");
    }
    println!("\nActions:");
    for a in &p.description.actions {
        println!("  {} — {}", a.name, a.description);
        println!("    input:  {}", schema_summary(&a.input_schema));
        println!("    output: {}", schema_summary(&a.output_schema));
    }
    println!("\nCapabilities (the grant is what Osprey enforces):");
    print!(
        "{}",
        render::capabilities(
            &p.manifest.requests,
            &policy.grant,
            policy.granted,
            &policy.limits
        )
    );
    println!("\nSecrets (names only):");
    if secrets_set.is_empty() && p.manifest.requests.secrets.is_empty() {
        println!("  (none)");
    }
    for s in &p.manifest.requests.secrets {
        let set = secrets_set.iter().find(|(n, _)| n == s);
        match set {
            Some((_, at)) => println!("  {s:<24} set {}", render::time(*at)),
            None => println!("  {s:<24} NOT SET (osprey secret set {name} {s})"),
        }
    }
    for (s, at) in secrets_set
        .iter()
        .filter(|(n, _)| !p.manifest.requests.secrets.contains(n))
    {
        println!(
            "  {s:<24} set {} (not requested by the plugin)",
            render::time(*at)
        );
    }
    if !p.manifest.config.is_empty() {
        println!("\nSettings:");
        print_settings(&p, &app.store.plugin_config(name).await?);
    }
    println!("\nImports: {}", p.imports.join(", "));
    Ok(0)
}

/// `{ip: string (required)}`-style one-line summary of an object schema.
fn schema_summary(schema: &serde_json::Value) -> String {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return schema.get("type").map_or_else(|| "any".into(), |t| t.to_string());
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let fields: Vec<String> = props
        .iter()
        .map(|(k, v)| {
            let ty = v.get("type").map_or_else(
                || "any".to_string(),
                |t| match t {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            );
            let req = if required.contains(&k.as_str()) { "" } else { "?" };
            format!("{k}{req}: {ty}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn print_settings(p: &LoadedPlugin, set: &std::collections::BTreeMap<String, String>) {
    for (key, def) in &p.manifest.config {
        let value = match (set.get(key), &def.default) {
            (Some(v), _) => v.to_string(),
            (None, Some(d)) => format!("{d} (default)"),
            (None, None) => "(not set)".into(),
        };
        println!("  {key:<20} {value:<40} {}", def.description);
    }
}

/// How `osprey plugin install` and `upgrade` were asked to go about it.
struct InstallArgs<'a> {
    source: &'a Path,
    yes: bool,
    allow_unsigned: bool,
    force: bool,
    registry: &'a super::pack::RegistryArgs,
}

/// `osprey plugin install SOURCE` (`Mode::Install`) and `osprey plugin upgrade NAME SOURCE`:
/// read the source, show the plan, ask (or take --yes), apply it.
async fn install(app: &App, args: InstallArgs<'_>, mode: Mode) -> anyhow::Result<i32> {
    let source = Source::parse(args.source)?;
    let trusted = match &source {
        Source::Folder(_) => Vec::new(),
        _ => super::trust::trusted_keys(app).await?,
    };
    if let Source::Oci(oci) = &source {
        println!("pulling {oci}");
    }
    let origin = install::fetch(&source, &trusted, args.allow_unsigned, &args.registry.access()).await?;
    if let Origin::Pack(unpacked) = &origin {
        print_signer(unpacked);
    }
    // Compiling a large component (a Python one is about 18 MB) takes seconds; say so first.
    eprintln!("checking and compiling the component (later loads use the compiled cache)...");
    let plan = install::prepare(app, origin, mode).await?;
    print_plan(app, &plan);
    if let Some(impact) = plan.impact.as_ref().filter(|i| i.blocks()) {
        if !args.force {
            bail!(
                "not upgraded: {} playbook check(s) fail with {} {} (listed above). Fix the playbooks first, or upgrade anyway with --force (audited)",
                impact.failures.len(),
                plan.name(),
                plan.manifest().version
            );
        }
        eprintln!(
            "\nWARNING: --force: upgrading although {} playbook check(s) fail; they will fail when they run. This upgrade is recorded in the audit log with what failed.\n",
            impact.failures.len()
        );
    }

    let mut grant = if args.yes {
        GrantChoice::Requested
    } else {
        GrantChoice::Nothing
    };
    if !args.yes && !plan.not_granted().is_empty() && std::io::stdin().is_terminal() {
        print!("\nGrant what it requests? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            grant = GrantChoice::Requested;
        }
    }
    let name = plan.name().to_owned();
    let approval = Approval {
        grant,
        force: args.force,
    };
    let applied = install::apply(app, plan, &approval, &Actor::cli()).await?;
    print_applied(&name, &applied);
    Ok(0)
}

/// Who signed a pack, or the loud warning when no trusted publisher did.
fn print_signer(unpacked: &install::Unpacked) {
    match &unpacked.signer {
        Signer::Trusted { name, key_id } => println!(
            "{}: signed by '{name}' (key id {key_id}), a trusted publisher",
            unpacked.origin
        ),
        signer => eprintln!(
            "\nWARNING: --allow-unsigned: installing {} with no trusted signature ({}). Nothing proves who made this plugin. This install is recorded in the audit log as such.\n",
            unpacked.origin,
            install::source::signer_text(signer)
        ),
    }
}

/// The plugin, who signed it, what changes since the installed version, and what it requests
/// next to what is granted.
fn print_plan(app: &App, plan: &InstallPlan) {
    let m = plan.manifest();
    let checked = &plan.checked;
    println!("{} {} — {}", m.name, m.version, checked.description.description);
    for a in &checked.description.actions {
        println!("  action {} — {}", a.name, a.description);
    }
    println!("  signed: {}", plan.signed_by());
    if let (Some(prev), Some(caps), Some(actions)) =
        (&plan.previous, &plan.capability_diff, &plan.action_diff)
    {
        println!(
            "\nUpgrading from {} {}. Changes in what it requests:",
            m.name, prev.version
        );
        if caps.is_empty() {
            println!("  (none)");
        }
        for a in &caps.added {
            println!("  + {a}");
        }
        for d in &caps.removed {
            println!("  - {d}");
        }
        println!("Changes in its actions:");
        if actions.is_empty() {
            println!("  (none)");
        }
        for a in &actions.added {
            println!("  + action {a}");
        }
        for a in &actions.removed {
            println!("  - action {a}");
        }
        for a in &actions.input_changed {
            println!("  ~ action {a}: its input schema changed");
        }
        for a in &actions.output_changed {
            println!("  ~ action {a}: its output schema changed");
        }
    }
    if let Some(impact) = &plan.impact {
        print_impact(impact);
    }
    println!("\nIt requests:");
    let limits = app.config.limits.with_grant(&plan.grant);
    print!(
        "{}",
        render::capabilities(&m.requests, &plan.grant, plan.granted_before, &limits)
    );
}

/// The playbooks that call the plugin, and what fails against the new version.
fn print_impact(impact: &install::Impact) {
    if impact.playbooks.is_empty() {
        println!("\nNo playbook calls it.");
        return;
    }
    println!(
        "\nPlaybooks that call it: {} ({} test case(s) run against this version)",
        impact.playbooks.join(", "),
        impact.cases
    );
    if impact.failures.is_empty() {
        println!("  every check passes");
    }
    for f in &impact.failures {
        println!("  FAILED  {f}");
    }
}

/// Where the plugin went, what was kept, and what is still not granted or set.
fn print_applied(name: &str, applied: &install::Applied) {
    let p = &applied.plugin;
    println!(
        "\ninstalled {} {} into {}",
        name,
        p.manifest.version,
        p.dir.display()
    );
    if let Some(kept) = &applied.kept {
        println!("kept {kept} with its grant: `osprey plugin rollback {name}` returns to it");
    }
    if applied.granted {
        println!("granted what it requests");
    } else if !applied.not_granted.is_empty() {
        println!(
            "not granted yet: {}. Grant with `osprey plugin grant {name} --requested` (or item by item).",
            applied.not_granted.join(", ")
        );
    }
    for s in &applied.secrets_unset {
        println!("secret '{s}' is not set: `osprey secret set {name} {s}`");
    }
}

async fn remove(app: &App, name: &str, purge: bool) -> anyhow::Result<i32> {
    let installed = app.runtime.get(name);
    let installed = match installed {
        Ok(p) => Some(p),
        // Purging what a plain removal kept needs no installed plugin.
        Err(_) if purge => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(p) = &installed {
        std::fs::remove_dir_all(&p.dir).with_context(|| format!("removing {}", p.dir.display()))?;
        crate::install::kept::discard(&app.runtime.options().plugins_dir, name)?;
        app.store
            .record_remove(name, &p.manifest.version.to_string(), &Actor::cli())
            .await?;
        println!("removed plugin '{name}' ({})", p.dir.display());
    }
    if !purge {
        println!(
            "its grant, settings, secrets and kv data are kept; `osprey plugin remove {name} --purge` deletes them"
        );
        return Ok(0);
    }
    let purged = app.store.purge_plugin(name, &Actor::cli()).await?;
    println!(
        "purged '{name}': {} kv entries, {} secrets, {} settings, {}",
        purged.kv_entries,
        purged.secrets,
        purged.settings,
        if purged.grant { "its grant" } else { "no grant" }
    );
    Ok(0)
}

async fn call(app: &App, name: &str, action: &str, input: &str, json: bool) -> anyhow::Result<i32> {
    report_load_failures(app);
    let input = super::read_json(input)?;
    let run_id = format!("manual-{}", crate::store::now_ms());
    let ctx = CallContext {
        idempotency_key: format!("{run_id}:1"),
        run_id,
    };
    let result = app.runtime.call(name, action, &input, ctx).await;
    if json {
        let v = match &result {
            Ok(ok) => serde_json::json!({ "ok": ok }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if result.is_ok() { 0 } else { 1 });
    }
    match result {
        Ok(ok) => {
            println!("{}", serde_json::to_string_pretty(&ok.output)?);
            if ok.mocked {
                eprintln!("  MOCK: answered by {name}'s mock; nothing was sent");
            }
            for ev in &ok.http {
                eprintln!("  {} {} → {} ({} ms)", ev.method, ev.url, ev.outcome, ev.millis);
            }
            Ok(0)
        }
        Err(e) => {
            for ev in &e.http {
                eprintln!("  {} {} → {} ({} ms)", ev.method, ev.url, ev.outcome, ev.millis);
            }
            let retry = if e.retryable { " (retryable)" } else { "" };
            let mock = if e.mocked { " (MOCK)" } else { "" };
            eprintln!("error{mock}: {}{retry}: {}", e.kind, e.message);
            Ok(1)
        }
    }
}

async fn grant_cmd(app: &App, name: &str, args: GrantArgs) -> anyhow::Result<i32> {
    let manifest = app.runtime.get(name).ok().map(|p| p.manifest.clone());
    let mut grant = app.grant(name).await?;
    if args.requested {
        let Some(m) = &manifest else {
            bail!(
                "plugin '{name}' is not installed, so there is no request to grant; name the capabilities instead"
            );
        };
        grant.union_with(&m.requests);
    }
    let extra = Capabilities {
        http: args.http,
        private_ranges: args.private_ranges,
        secrets: args.secrets.into_iter().collect(),
        webhooks: args.webhooks,
        kv_quota_bytes: args.kv_quota,
        limits: crate::capability::LimitOverrides {
            timeout: args.timeout,
            memory_mib: args.memory_mib,
            max_response_bytes: args.max_response_bytes,
            max_requests: args.max_requests,
            max_output_bytes: args.max_output_bytes,
        },
    };
    grant.union_with(&extra);
    app.set_grant(name, &grant, &Actor::cli()).await?;
    println!("grant of '{name}' updated");
    show_grant(app, name, manifest.as_ref().map(|m| &m.requests), &grant);
    Ok(0)
}

async fn revoke(
    app: &App,
    name: &str,
    http: Vec<HttpPattern>,
    private_ranges: Vec<IpNet>,
    secrets: Vec<String>,
    webhooks: bool,
    all: bool,
) -> anyhow::Result<i32> {
    let manifest = app.runtime.get(name).ok().map(|p| p.manifest.clone());
    let mut grant = app.grant(name).await?;
    if all {
        grant = Capabilities::default();
    } else {
        if http.is_empty() && private_ranges.is_empty() && secrets.is_empty() && !webhooks {
            bail!(
                "say what to revoke: --http PATTERN, --private-range CIDR, --secret NAME, --webhooks, or --all"
            );
        }
        for p in &http {
            if !grant.http.contains(p) {
                bail!(
                    "'{p}' is not granted to '{name}'; granted: {}",
                    list_or_none(grant.http.iter())
                );
            }
        }
        for s in &secrets {
            if !grant.secrets.contains(s) {
                bail!("secret '{s}' is not granted to '{name}'");
            }
        }
        grant.http.retain(|p| !http.contains(p));
        grant.private_ranges.retain(|r| !private_ranges.contains(r));
        grant.secrets.retain(|s| !secrets.contains(s));
        grant.webhooks &= !webhooks;
    }
    app.set_grant(name, &grant, &Actor::cli()).await?;
    println!("grant of '{name}' updated");
    show_grant(app, name, manifest.as_ref().map(|m| &m.requests), &grant);
    Ok(0)
}

fn list_or_none<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let v: Vec<String> = items.map(|i| i.to_string()).collect();
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

fn show_grant(app: &App, name: &str, requested: Option<&Capabilities>, grant: &Capabilities) {
    let empty = Capabilities::default();
    let limits = app.config.limits.with_grant(grant);
    print!(
        "{}",
        render::capabilities(requested.unwrap_or(&empty), grant, true, &limits)
    );
    if requested.is_none() {
        println!("(plugin '{name}' is not installed; the grant applies once it is)");
    }
}

async fn config_cmd(app: &App, name: &str, settings: Vec<String>, unset: Vec<String>) -> anyhow::Result<i32> {
    let p = app.runtime.get(name)?;
    let declared = &p.manifest.config;
    let check = |key: &str| -> anyhow::Result<()> {
        if !declared.contains_key(key) {
            let known: Vec<&String> = declared.keys().collect();
            bail!(
                "plugin '{name}' has no setting '{key}'; it has: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                }
            );
        }
        Ok(())
    };
    let mut parsed = Vec::new();
    for s in &settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("'{s}' is not KEY=VALUE"))?;
        check(k)?;
        parsed.push((k.to_owned(), v.to_owned()));
    }
    for k in &unset {
        check(k)?;
    }
    for (k, v) in &parsed {
        app.store
            .set_plugin_config(name, k, Some(v), &Actor::cli())
            .await?;
    }
    for k in &unset {
        app.store.set_plugin_config(name, k, None, &Actor::cli()).await?;
    }
    if !parsed.is_empty() || !unset.is_empty() {
        println!("settings of '{name}' updated");
    }
    print_settings(&p, &app.store.plugin_config(name).await?);
    Ok(0)
}
