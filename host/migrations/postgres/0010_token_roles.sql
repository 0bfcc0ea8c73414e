-- API tokens carry a role (admin, operator, engineer, analyst, auditor, requester; see
-- rbac.rs) besides, or instead of, scopes.
ALTER TABLE api_tokens ADD COLUMN role TEXT;
