"""The experiment model: config schema and loading, assignment, state, and the outcome record and store."""
