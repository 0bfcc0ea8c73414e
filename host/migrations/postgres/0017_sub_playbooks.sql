-- Sub-playbooks: a run started by another's `playbook(name, input)` names its parent run and
-- the parent's step that started it. One child per step: a start taken again after a crash
-- finds the child it made, and never makes a second.
ALTER TABLE runs ADD COLUMN parent_run TEXT;
ALTER TABLE runs ADD COLUMN parent_step BIGINT;
CREATE UNIQUE INDEX runs_by_parent ON runs (parent_run, parent_step);
