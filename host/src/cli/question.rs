use crate::app::App;
use crate::config::Config;
use crate::store::questions::{QuestionRecord, QuestionStatus};

#[derive(Debug, clap::Subcommand)]
pub enum QuestionCommand {
    /// List the questions playbooks asked people (`ask`, `approve`, `form`), newest first.
    #[command(after_help = "\
Examples:
  osprey question list --status open      what is waiting for an answer
  osprey question list --for alice        what alice may answer (hers and her roles')

People answer from the links mailed to them, or from their inbox (/inbox).")]
    List {
        /// open, answered, timed_out or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only questions this user may answer (addressed to them or to one of their roles).
        #[arg(long = "for", value_name = "USER")]
        for_user: Option<String>,
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show a question: what was asked, to whom, its answer, and each link that was mailed
    /// (who it was for, whether and when it was used, from which address and user agent).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

fn line(q: &QuestionRecord) -> String {
    let answer = match (&q.answer, q.status) {
        (Some(a), _) => format!(" → {} by {}", a["value"], q.answered_by.as_deref().unwrap_or("?")),
        (None, QuestionStatus::Open) => q
            .due_at
            .map(|d| format!(" (due {})", super::render::time(d)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "{}  {:<8} {:<10} {:<24} {}{answer}",
        q.id,
        q.kind.as_str(),
        q.status,
        q.addressee(),
        q.title
    )
}

pub async fn run(cmd: QuestionCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        QuestionCommand::List {
            status,
            for_user,
            limit,
            json,
        } => {
            let status = status
                .as_deref()
                .map(|s| {
                    QuestionStatus::parse(s).ok_or_else(|| {
                        anyhow::anyhow!(
                            "'{s}' is not a question status: {}",
                            QuestionStatus::NAMES.join(", ")
                        )
                    })
                })
                .transpose()?;
            let questions = app.store.questions(status, for_user.as_deref(), limit).await?;
            if json {
                for q in &questions {
                    println!("{}", serde_json::to_string(q)?);
                }
            } else if questions.is_empty() {
                println!("no questions");
            } else {
                for q in &questions {
                    println!("{}", line(q));
                }
            }
        }
        QuestionCommand::Show { id, json } => {
            let Some(q) = app.store.question(&id).await? else {
                anyhow::bail!("no question '{id}' (see `osprey question list`)");
            };
            let links = app.store.question_links(&id).await?;
            if json {
                let v = serde_json::json!({ "question": q, "links": links });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!("{}", line(&q));
            if !q.body.is_empty() {
                println!("\n{}\n", q.body);
            }
            println!("asked      {}", super::render::time(q.created_at));
            if let Some(run) = &q.run_id {
                println!("run        {run}");
            }
            if let Some(i) = &q.incident_id {
                println!("incident   {i}");
            }
            if let Some(at) = q.answered_at {
                println!(
                    "closed     {} ({}, via {})",
                    super::render::time(at),
                    q.status,
                    q.answered_via.as_deref().unwrap_or("?")
                );
            }
            if let Some(a) = &q.answer {
                println!("answer     {}", a["value"]);
                if a["comment"].as_str().is_some_and(|c| !c.is_empty()) {
                    println!("comment    {}", a["comment"].as_str().unwrap_or_default());
                }
            }
            if q.reminders_sent > 0 {
                println!("reminders  {}", q.reminders_sent);
            }
            for l in &links {
                let used = match l.used_at {
                    Some(at) => format!(
                        "used {} from {} ({})",
                        super::render::time(at),
                        l.used_from.as_deref().unwrap_or("?"),
                        l.used_agent.as_deref().unwrap_or("no user agent")
                    ),
                    None => format!("unused, valid until {}", super::render::time(l.expires_at)),
                };
                println!("link       {:<32} {used}", l.recipient);
            }
        }
    }
    Ok(0)
}
