//! Lien integration test harness.
