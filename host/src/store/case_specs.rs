//! The store's side of a case request (`cases::IncidentSpec`, `IncidentChanges`, `TaskSpec`,
//! read from a playbook, the CLI or the API): the records to create or the update to apply.

use super::incidents::{IncidentUpdate, NewIncident};
use super::tasks::NewTask;
use crate::cases::{self, CaseError, IncidentChanges, IncidentSpec, TaskSpec};

impl IncidentSpec {
    /// The incident to store, with a fresh id, as a child of `parent` if given.
    pub fn into_new(self, parent: Option<&str>) -> Result<NewIncident, CaseError> {
        let severity = match &self.severity {
            Some(s) => cases::severity(s)?,
            None => crate::intake::Severity::Medium,
        };
        crate::names::check("incident type", &self.kind)?;
        let mut new = NewIncident::new(&self.kind, &self.title, severity);
        new.owner = self.owner;
        new.role = self.role;
        new.fields = self.fields;
        new.parent_id = parent.map(str::to_owned);
        if let Some(key) = &self.dedup_key
            && (key.trim().is_empty() || key.chars().count() > 200)
        {
            return Err(CaseError::DedupKey(key.clone()));
        }
        new.dedup_key = self.dedup_key;
        Ok(new)
    }
}

impl IncidentChanges {
    /// The update to store (the status is applied on its own).
    pub fn update(&self) -> Result<IncidentUpdate, CaseError> {
        Ok(IncidentUpdate {
            severity: self.severity.as_deref().map(cases::severity).transpose()?,
            owner: self.owner.clone(),
            role: self.role.clone(),
            title: self.title.clone(),
            fields: self.fields.clone(),
        })
    }
}

impl TaskSpec {
    /// The task to store, on `incident` unless the spec names one.
    pub fn into_new(self, incident: Option<&str>) -> Result<NewTask, CaseError> {
        Ok(NewTask {
            incident_id: self.incident.or(incident.map(str::to_owned)),
            title: self.title,
            description: self.description,
            assignee: self.user,
            role: self.role,
            due_ms: self.due.as_deref().map(cases::duration_ms).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dedup_key: Option<&str>) -> IncidentSpec {
        let mut v = serde_json::json!({ "title": "Tune signature 2019401", "type": "signature-tuning" });
        if let Some(k) = dedup_key {
            v["dedup_key"] = k.into();
        }
        cases::parse("incident_spawn", &v).unwrap()
    }

    #[test]
    fn a_dedup_key_is_kept_and_must_be_1_to_200_characters() {
        let new = spec(Some("tuning:ids:2019401"))
            .into_new(Some("i-parent"))
            .unwrap();
        assert_eq!(new.dedup_key.as_deref(), Some("tuning:ids:2019401"));
        assert_eq!(new.parent_id.as_deref(), Some("i-parent"));
        assert_eq!(spec(None).into_new(None).unwrap().dedup_key, None);
        for bad in [" ".to_owned(), "k".repeat(201)] {
            let e = spec(Some(&bad)).into_new(None).unwrap_err();
            assert!(matches!(e, CaseError::DedupKey(_)), "{e}");
            assert!(e.to_string().contains("1 to 200 characters"), "{e}");
        }
    }
}
