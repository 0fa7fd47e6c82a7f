//! A mock Authentik that serves events with the real server's semantics.
