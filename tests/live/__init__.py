"""The /index page driven in a real headless Chromium."""
