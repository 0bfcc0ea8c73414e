use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::indicators::{Indicator, IndicatorKind, Verdict};
use clap::builder::PossibleValuesParser;

#[derive(Debug, clap::Subcommand)]
pub enum IndicatorCommand {
    /// List indicators, most recently seen first: kind, value, verdict, score, sightings.
    #[command(visible_alias = "ls")]
    #[command(after_help = "\
Examples:
  osprey indicator list
  osprey indicator list --verdict malicious --kind ip -n 100
  osprey indicator list --json | jq -r 'select(.sightings > 10) | .value'

Every alert's observables (IPs, domains, URLs, hashes, e-mail addresses) are counted as
sightings when pre-processing looks at the alert, dropped alerts too. Verdicts come from
playbooks (indicator_set), `osprey indicator set`, and later the API.")]
    List {
        /// Only indicators of this kind.
        #[arg(long, value_parser = PossibleValuesParser::new(IndicatorKind::NAMES))]
        kind: Option<String>,
        /// Only indicators with this verdict.
        #[arg(long, value_parser = PossibleValuesParser::new(Verdict::NAMES))]
        verdict: Option<String>,
        /// How many at most.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one indicator: verdict, score, what each source said, sightings.
    #[command(after_help = "\
Examples:
  osprey indicator show ip 203.0.113.66
  osprey indicator show domain Evil.Example.       (looked up as evil.example)
  osprey indicator show url https://evil.example/login --json

Kinds: ip, cidr, domain, url, hash (MD5, SHA-1 or SHA-256), email. The value is put in the
same canonical form as stored: 2001:DB8::1 is 2001:db8::1, 10.1.2.3/8 is 10.0.0.0/8, domains,
hashes and e-mail addresses are lower-case, URLs keep their scheme.")]
    Show {
        #[arg(value_parser = PossibleValuesParser::new(IndicatorKind::NAMES))]
        kind: String,
        value: String,
        /// The indicator as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a verdict on an indicator (created if it was never seen).
    #[command(after_help = "\
Examples:
  osprey indicator set ip 203.0.113.66 --verdict malicious --score 90 --source autofocus
  osprey indicator set domain intranet.example --verdict benign --source \"ticket 4711\"
  osprey indicator set hash 44d88612fea8a8f36de82e1278abb02f --verdict malicious

The verdict and score become the indicator's; the source's entry in its sources replaces that
source's previous word (the 20 latest sources are kept). The source defaults to you
(cli:USER). Every verdict is in the audit log as indicator.set.")]
    Set {
        #[arg(value_parser = PossibleValuesParser::new(IndicatorKind::NAMES))]
        kind: String,
        value: String,
        #[arg(long, value_parser = PossibleValuesParser::new(Verdict::NAMES))]
        verdict: String,
        /// 0 (harmless) to 100 (certainly bad).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=100))]
        score: Option<i64>,
        /// Who says so: a vendor, a feed, a ticket (default: you).
        #[arg(long)]
        source: Option<String>,
    },
}

pub async fn run(cmd: IndicatorCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        IndicatorCommand::List {
            kind,
            verdict,
            limit,
            json,
        } => {
            let found = app
                .store
                .indicators(kind.as_deref(), verdict.as_deref(), limit)
                .await?;
            if json {
                for i in &found {
                    println!("{}", serde_json::to_string(i)?);
                }
                return Ok(0);
            }
            if found.is_empty() {
                println!("no indicators; alerts' observables and verdicts from playbooks make them");
                return Ok(0);
            }
            println!(
                "{:<6} {:<40} {:<10} {:>5} {:>9}  LAST SEEN",
                "KIND", "VALUE", "VERDICT", "SCORE", "SIGHTINGS"
            );
            for i in found {
                println!(
                    "{:<6} {:<40} {:<10} {:>5} {:>9}  {}",
                    i.kind.as_str(),
                    i.value,
                    i.verdict.as_str(),
                    shown_score(i.score),
                    i.sightings,
                    super::render::time(i.last_seen)
                );
            }
        }
        IndicatorCommand::Show { kind, value, json } => {
            let Some(i) = app.store.indicator(&kind, &value).await? else {
                anyhow::bail!(
                    "no indicator {kind} '{value}': no alert showed it and no one gave it a verdict \
                     (see `osprey indicator list`)"
                );
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                print!("{}", describe(&i));
            }
        }
        IndicatorCommand::Set {
            kind,
            value,
            verdict,
            score,
            source,
        } => {
            let i = app
                .store
                .set_verdict(&kind, &value, &verdict, score, source.as_deref(), &Actor::cli())
                .await?;
            println!(
                "{} {} is {} (score {})",
                i.kind.as_str(),
                i.value,
                i.verdict.as_str(),
                shown_score(i.score)
            );
        }
    }
    Ok(0)
}

fn shown_score(s: Option<i64>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// An indicator for people: the verdict, the sightings, then each source.
fn describe(i: &Indicator) -> String {
    let mut out = format!(
        "{} {}\nverdict    {} (score {})\n",
        i.kind.as_str(),
        i.value,
        i.verdict.as_str(),
        shown_score(i.score)
    );
    if i.sightings > 0 {
        out.push_str(&format!(
            "sightings  {} (first {}, last {})\n",
            i.sightings,
            super::render::time(i.first_seen),
            super::render::time(i.last_seen)
        ));
    } else {
        out.push_str(&format!(
            "sightings  0 (recorded {})\n",
            super::render::time(i.first_seen)
        ));
    }
    if i.sources.is_empty() {
        out.push_str("sources    none yet\n");
    } else {
        out.push_str("sources\n");
        for s in i.sources.iter().rev() {
            out.push_str(&format!(
                "  {:<24} {:<10} {:>5}  {}\n",
                s.source,
                s.verdict.as_str(),
                shown_score(s.score),
                super::render::time(s.at)
            ));
        }
    }
    out
}
