"""The auth service: sign-up, login, JWT issue. Owns the `users` table."""
