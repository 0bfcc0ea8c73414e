//! An incident with everything about it, read in one place for the API and the console.

use super::{Store, StoreError};

/// An incident with everything about it: what `GET /api/v1/incidents/{id}` answers and the
/// console's incident page shows.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    pub incident: super::incidents::IncidentRecord,
    /// The ids of its alerts, oldest link first.
    pub alerts: Vec<String>,
    /// Its events with the steps of its runs merged in by time.
    pub timeline: Vec<super::incidents::IncidentEvent>,
    pub tasks: Vec<super::tasks::TaskRecord>,
    pub sla: Vec<SlaTimerState>,
    pub children: Vec<super::incidents::IncidentRecord>,
    /// The ids of related incidents.
    pub related: Vec<String>,
}

/// An SLA timer and where it stands.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SlaTimerState {
    #[serde(flatten)]
    pub timer: super::sla::SlaTimer,
    /// `breached` (even if it stopped later), `met`, `paused` or `running`.
    pub state: String,
}

/// The most tasks an incident's detail lists.
pub const MAX_DETAIL_TASKS: i64 = 500;

/// Incident `id` with everything about it, if there is one.
impl Store {
    pub async fn incident_detail(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        let Some(incident) = self.incident(id).await? else {
            return Ok(None);
        };
        let sla = self
            .sla_timers(id)
            .await?
            .into_iter()
            .map(|timer| SlaTimerState {
                state: timer.state().to_owned(),
                timer,
            })
            .collect();
        Ok(Some(IncidentDetail {
            incident,
            alerts: self.incident_alert_ids(id).await?,
            timeline: self.incident_timeline(id).await?,
            tasks: self.tasks(None, Some(id), None, MAX_DETAIL_TASKS).await?,
            sla,
            children: self.child_incidents(id).await?,
            related: self.related_incidents(id).await?,
        }))
    }
}
