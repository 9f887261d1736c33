-- Usernames are unique regardless of case: `Alice` and `alice` would otherwise be two accounts that
-- look the same in `created_by`. Existing clashes cannot be resolved for the owners (which account
-- keeps the name is a human decision), so this migration refuses to go on and names each of them:
-- rename all but one account of each group (UPDATE users SET username = ... WHERE id = ...), then
-- migrate again. Nothing is changed until then.
DO $$
DECLARE
    clashes text;
BEGIN
    SELECT string_agg(format('%s (%s)', spellings, ids), '; ')
      INTO clashes
      FROM (SELECT string_agg(username, ', ' ORDER BY username) AS spellings,
                   string_agg(id::text, ', ' ORDER BY username) AS ids
              FROM users
             GROUP BY lower(username)
            HAVING count(*) > 1) AS clash;
    IF clashes IS NOT NULL THEN
        RAISE EXCEPTION 'usernames that differ only in case: %', clashes
            USING HINT = 'rename all but one account of each group, then migrate again';
    END IF;
END
$$;

CREATE UNIQUE INDEX users_username_any_case_key ON users (lower(username));
