-- Login attempts per username and per client address in fixed windows, shared by every auth
-- replica. An attempt is counted before its password is checked; rows of ended windows are deleted
-- by the auth service as it goes.
CREATE TABLE login_attempts (
    key            text PRIMARY KEY,
    window_started timestamptz NOT NULL,
    attempts       integer NOT NULL CHECK (attempts >= 0)
);
CREATE INDEX login_attempts_window_idx ON login_attempts (window_started);
