"""Test fixtures shared by every service: real Postgres, NATS, S3 and a JWKS issuer."""
