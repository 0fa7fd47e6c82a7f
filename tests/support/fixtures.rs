//! The captured Authentik responses in `../shared/fixtures/`.
