DROP TABLE alert_observables;
DROP TABLE alerts;
DROP TABLE case_comments;
DROP TABLE case_tags;
DROP TABLE cases;
DROP TABLE sources;
